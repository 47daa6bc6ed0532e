import Dispatch
import Foundation
import ParisRun

/// Turns SIGTERM, SIGINT and SIGUSR1 into a stop request that a training loop polls between steps (it then writes
/// a checkpoint and returns). Slurm sends SIGTERM on preemption or `scancel` and, with `--signal=USR1@120`, SIGUSR1
/// before the time limit; Kubernetes sends SIGTERM. A second SIGINT (Ctrl-C twice) exits at once with status 130:
/// safe, because checkpoints are atomic. Install it from the command line, not from library code.
public final class StopSignals: @unchecked Sendable {
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGUSR1]
    private let lock = NSLock()
    private var received: Int32?
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "paris.signals")

    public init() {}

    /// Replaces the default actions of the handled signals by recording them. Call once, early.
    public func install() {
        for sig in Self.handled {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [weak self] in self?.receive(sig) }
            source.resume()
            sources.append(source)
        }
    }

    private func receive(_ sig: Int32) {
        lock.lock()
        let first = received == nil
        if first { received = sig }
        lock.unlock()
        if !first && sig == SIGINT {
            FileHandle.standardError.write(Data("\ninterrupted twice: exiting now (the last checkpoint is intact)\n".utf8))
            exit(130)
        }
    }

    /// The first signal received, if any.
    public var receivedSignal: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// Whether a stop was asked for.
    public var stopRequested: Bool { receivedSignal != nil }

    /// "SIGTERM", "SIGINT", "SIGUSR1" or "signal N".
    public static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGUSR1: "SIGUSR1"
        default: "signal \(sig)"
        }
    }
}
