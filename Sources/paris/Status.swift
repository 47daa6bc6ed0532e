import ArgumentParser
import Foundation
import ParisRun
import ParisLaunch
import ParisTraining

/// `paris status --run R`
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every job of a run: steps, loss, images/s, state, last checkpoint (from the files alone).",
        discussion: """
            States: not started, running (a trainer process holds the job's lock), stopped (a checkpoint after \
            a signal or --stop-after, or the process is gone), finished, failed. Works from any machine that \
            sees the run folder. When the run was started with `paris launch`, the scheduler's view follows: each \
            job's id and state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED…) with Slurm's reason.
            """)

    @Option(name: .customLong("run"), help: "The run folder (holds run.json).")
    var runFolder: String

    @Flag(help: "Print the report as JSON (for scripts).")
    var json = false

    @Flag(help: "(Re)write expert_<k>/loss.png, monolith/loss.png, router/loss.png and router/accuracy.png.")
    var plots = false

    func run() throws {
        let folder = URL(fileURLWithPath: runFolder)
        let report = try RunProgress.read(RunLayout(folder))
        if json {
            print(try report.json())
        } else {
            print(report.table(), terminator: "")
            let layout = RunLayout(folder)
            if FileManager.default.fileExists(atPath: layout.launch.appendingPathComponent("jobs.json").path) {
                let s = try Launcher.status(run: layout, environment: ProcessInfo.processInfo.environment)
                print("\nscheduler (\(s.backend?.rawValue ?? "not launched")):")
                print(s.table)
                if let message = s.failureMessage(run: layout) { print(message) }
            }
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
