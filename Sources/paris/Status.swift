import ArgumentParser
import Foundation
import ParisTraining

/// `paris status --run R`
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every job of a run: steps, loss, images/s, state, last checkpoint (from the files alone).",
        discussion: """
            States: not started, running (its status or log changed within the last minute), stopped (a \
            checkpoint after a signal, or the process is gone), finished, failed. Works from any machine that \
            sees the run folder.
            """)

    @Option(name: .customLong("run"), help: "The run folder (holds run.json).")
    var runFolder: String

    @Flag(help: "Print the report as JSON (for scripts).")
    var json = false

    @Flag(help: "(Re)write expert_<k>/loss.png, monolith/loss.png, router/loss.png and router/accuracy.png.")
    var plots = false

    func run() throws {
        let folder = URL(fileURLWithPath: runFolder)
        let report = try RunStatus.report(run: folder)
        if json {
            print(try RunStatus.json(report))
        } else {
            print(RunStatus.table(report), terminator: "")
        }
        if plots {
            let config = try RunLayout(folder).config()
            let written = try RunPlots.writeAll(run: RunLayout(folder), numExperts: config.numExperts)
            let out = written.isEmpty ? "no metrics yet: no plots written\n"
                : "wrote " + written.map(\.path).joined(separator: ", ") + "\n"
            FileHandle.standardError.write(Data(out.utf8))
        }
    }
}
