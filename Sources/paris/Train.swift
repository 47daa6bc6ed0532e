import ArgumentParser
import Foundation
import ParisRun
import ParisTraining
import Torch

/// `paris train ...`: the training jobs of a run.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the experts, the router, the monolith baseline or a LoRA of an expert.",
        subcommands: [TrainExpert.self, TrainMonolith.self, TrainRouter.self, TrainLoRA.self, TrainAutoencoder.self])
}

/// The options every training command of a run shares: the run folder and the session flags.
struct TrainSessionOptions: ParsableArguments {
    @Option(help: "The run folder (holds run.json).")
    var run: String

    @OptionGroup var flags: SessionFlags

    /// `SessionFlags.session`.
    func session(_ body: (TrainOptions) throws -> TrainResult) throws { try flags.session(body) }
}

/// The session flags of every training command (`--restart`, `--stop-after`, `--threads`, `--prefetch`).
struct SessionFlags: ParsableArguments {
    @Flag(help: "Discard this job's checkpoints, weights, metrics and samples and start from step 0.")
    var restart = false

    @Option(name: .customLong("stop-after"), number: "End this session with a checkpoint after N steps (resume later).")
    var stopAfter: Int?

    @OptionGroup var threads: ThreadsOption

    @Option(number: "Batches the loader prepares ahead on its own thread.")
    var prefetch: Int = 2

    func validate() throws {
        if let stopAfter, stopAfter <= 0 { throw ValidationError("--stop-after must be positive, not \(stopAfter)") }
        if prefetch < 0 { throw ValidationError("--prefetch must be ≥ 0, not \(prefetch)") }
    }

    /// Runs one training session with signal handling, and exits as documented in docs/training.md: 0 when the job
    /// finished (or had finished, or `--stop-after` ended the session), 128 + the signal's number when SIGTERM,
    /// SIGINT or SIGUSR1 stopped it (after writing a checkpoint).
    func session(_ body: (TrainOptions) throws -> TrainResult) throws {
        try threads.apply()
        let signals = StopSignals()
        signals.install()
        let interactive = isatty(STDOUT_FILENO) != 0
        let output = TrainOutput(interactive: interactive) { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        let options = TrainOptions(restart: restart, shouldStop: { signals.stopRequested }, stopAfterSteps: stopAfter,
                                   output: output, prefetch: prefetch)
        let result = try body(options)
        if result.outcome == .stopped, let sig = signals.receivedSignal {
            print("stopped by \(StopSignals.name(sig)) at step \(result.step) of \(result.steps); "
                + "run the same command to resume")
            throw ExitCode(128 + sig)
        }
    }
}

/// `paris train expert --run R [--expert K]`
struct TrainExpert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expert",
        abstract: "Train one expert on its own shard, in isolation (resumable).",
        discussion: """
            Reads run.json and shard K only; writes <run>/expert_K/ only. Without --expert the index comes from \
            SLURM_ARRAY_TASK_ID (a Slurm job array) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job). \
            Restarting the same command resumes from the last checkpoint; SIGTERM, SIGINT and SIGUSR1 write a \
            checkpoint and stop (exit status 128 + the signal number).
            """)

    @OptionGroup var session: TrainSessionOptions

    @Option(number: "The expert index k (default: $SLURM_ARRAY_TASK_ID, then $JOB_COMPLETION_INDEX).")
    var expert: Int?

    func run() throws {
        let (k, source) = try ArrayTaskIndex.expert(explicit: expert, environment: ProcessInfo.processInfo.environment)
        if source != "--expert" { print("expert index \(k) from \(source)") }
        try session.session { options in
            try ExpertTrainer.train(run: URL(fileURLWithPath: session.run), expert: k, options: options)
        }
    }
}

/// `paris train monolith --run R`
struct TrainMonolith: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monolith",
        abstract: "Train the compute-matched baseline: one model on all the shards (run.json's monolith entry).",
        discussion: "Writes <run>/monolith/ in the layout of an expert folder; resumable like `train expert`.")

    @OptionGroup var session: TrainSessionOptions

    func run() throws {
        try session.session { options in
            try MonolithTrainer.train(run: URL(fileURLWithPath: session.run), options: options)
        }
    }
}
