import ArgumentParser
import Foundation
import ParisRun
import ParisTraining

/// `paris run ...`: run folders.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Create run folders and add experts to them.",
        subcommands: [RunInitCommand.self, RunAddExpert.self])
}

/// `paris run init --run R --data D --k K [--preset P | --config FILE] [--seed S] [--force]`
struct RunInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a run folder with its run.json (from a preset or a complete run.json file).",
        discussion: """
            Presets: \(RunPreset.all.map { "\($0.name) (\($0.description))" }.joined(separator: "; ")). \
            Every expert gets the preset's settings and seed S + k; edit run.json to make experts differ. \
            An existing run.json is replaced only with --force. See docs/training.md for every key.
            """)

    @Option(name: .customLong("run"), help: "The run folder to create.")
    var runFolder: String

    @Option(help: "The dataset folder (imagefolder) the partition will be made from.")
    var data: String?

    @Option(number: "K: the number of experts (clusters).")
    var k: Int?

    @Option(help: "Run preset: \(RunPreset.all.map(\.name).joined(separator: ", ")).")
    var preset: String = "cpu-tiny"

    @Option(help: "A complete run.json to copy (validated) instead of a preset.")
    var config: String?

    @Option(number: "Seed of expert 0 (expert k gets S + k).")
    var seed: UInt64 = 0

    @Flag(help: "Replace an existing run.json.")
    var force = false

    func run() throws {
        let options = RunInit.Options(run: URL(fileURLWithPath: runFolder), dataset: data, numExperts: k, preset: preset,
                                      configFile: config.map { URL(fileURLWithPath: $0) }, seed: seed, force: force)
        let created = try RunInit.create(options)
        let experts = created.experts.map(\.model)
        print("wrote \(RunLayout(URL(fileURLWithPath: runFolder)).runJSON.path): \(created.numExperts) experts "
            + "(\(Set(experts).sorted().joined(separator: ", "))), router \(created.router.model)")
        print("next:")
        for line in RunInit.nextSteps(created, run: runFolder) { print("  " + line) }
    }
}

/// `paris run add-expert --run R --data D [--like K]`
struct RunAddExpert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-expert",
        abstract: "Add a K + 1-th expert on new data: train it in isolation, then retrain only the router.",
        discussion: """
            --data is the new data as a one-cluster partition, made with the run's caption encoder (and --held-out \
            when the run holds images out): `paris partition --data D --out OUT --k 1 --held-out N`. Everything \
            happens in <run>/.add-expert/ first, a K + 1 run whose partition links the existing shards: the new \
            expert trains there on its shard alone (with expert --like's settings), then the router from scratch \
            for K + 1. Then the new shard, held-out shard, expert and router move into the run and run.json is \
            written for K + 1. The existing experts' weights are hashed before and after and never written. \
            Interrupted (SIGTERM, SIGINT), it stops after a checkpoint; the same command resumes it. The monolith, \
            trained on K shards, shows as stale in `paris status`. See docs/contributing-experts.md.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String

    @Option(help: "The new data: a one-cluster partition folder.")
    var data: String

    @Option(help: "The expert whose job settings the new one copies (default: the last).")
    var like: Int?

    @Option(name: .customLong("stop-after"), number: "End each training session with a checkpoint after N steps (resume later).")
    var stopAfter: Int?

    @OptionGroup var threads: ThreadsOption

    func run() throws {
        try threads.apply()
        let signals = StopSignals()
        signals.install()
        let output = TrainOutput(interactive: isatty(STDOUT_FILENO) != 0) { FileHandle.standardOutput.write(Data($0.utf8)) }
        let options = TrainOptions(shouldStop: { signals.stopRequested }, stopAfterSteps: stopAfter, output: output)
        let done = try ExpertAddition.run(run: URL(fileURLWithPath: runFolder), data: URL(fileURLWithPath: data),
                                          like: like, options: options) { print($0) }
        if !done, let sig = signals.receivedSignal { throw ExitCode(128 + sig) }
    }
}
