import ArgumentParser
import Foundation
import ParisRun
import ParisTraining

/// `paris run ...`: run folders.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Create and inspect run folders.",
        subcommands: [RunInitCommand.self])
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
