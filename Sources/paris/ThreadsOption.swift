import ArgumentParser
import Torch

/// `--threads N`: libtorch's CPU threads for one command (training, sampling, serving). On a machine whose cores
/// other processes keep busy, more intra-op threads than free cores make libtorch's OpenMP threads wait on each
/// other (docs/serving.md measured a 24× slowdown of a 16-image batch); `--threads 1` avoids it.
struct ThreadsOption: ParsableArguments {
    @Option(number: "CPU threads for libtorch (default: libtorch's choice).")
    var threads: Int?

    func validate() throws {
        if let threads {
            do { try Runtime.checkThreads(threads) } catch { throw ValidationError("--\(error)") }
        }
    }

    /// Sets libtorch's threads when `--threads` was given.
    func apply() throws {
        if let threads { try Runtime.setThreads(threads) }
    }
}
