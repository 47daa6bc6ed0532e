import ArgumentParser
@preconcurrency import Glibc
import Torch

/// The `paris` command line: a thin layer that turns arguments into library calls.
@main
struct Paris: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paris",
        abstract: "Decentralized diffusion training: isolated experts, a router, and their mixture.",
        version: "0.1.0",
        subcommands: [Doctor.self, Inspect.self, Convert.self, Models.self, DataCommand.self, RunCommand.self,
                      TrainCommand.self, LoRACommand.self, KeysCommand.self, ContributeCommand.self, Admit.self, ZKCommand.self, Launch.self, PartitionCommand.self, EncodeCommand.self, Sample.self, Serve.self, Export.self, Eval.self,
                      Status.self]
    )

    /// Line-buffered stdout, so progress reaches a log file (a Slurm job's output, `launch/logs/`) as it happens
    /// rather than in 4 KiB blocks.
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        main(nil)
    }
}
