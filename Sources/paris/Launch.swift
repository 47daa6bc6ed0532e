import ArgumentParser
import Foundation
import ParisRun
import ParisLaunch
import ParisTraining

/// `paris launch`: runs a run's K expert jobs, then the router, then evaluation, on Slurm or on this machine.
struct Launch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the expert jobs, then the router, then evaluation, on Slurm or as local processes.",
        discussion: """
            Slurm: one job array per group of experts with identical resources (run.json's `resources`), the \
            router with --dependency=afterok on all of them, eval after the router. The batch scripts and \
            submit.sh stay in RUN/launch/, the job ids in RUN/launch/jobs.json, the logs in RUN/launch/logs/. \
            Local: the same commands as child processes, --parallel at a time. --resume submits only what has \
            not finished; --status shows each job's scheduler state; --cancel stops them.
            """)

    @Option(name: .customLong("run"), help: "The run folder (holds run.json).")
    var runFolder: String

    @Option(help: "local (child processes on this machine) or slurm (sbatch).")
    var backend: LaunchBackend = .local

    @Option(number: "Local: processes at once (default 1). Slurm: at most N array tasks at once (default: no limit).")
    var parallel: Int?

    @Option(name: .customLong("expert"), number: "Only this expert (repeatable): retry one expert alone.")
    var experts: [Int] = []

    @Flag(help: "Submit only the stages that have not finished, on top of an earlier launch.")
    var resume = false

    @Flag(help: "Leave out the evaluation job (`paris eval`).")
    var noEval = false

    @Flag(help: "Slurm: wait until every job has ended and print the final states.")
    var wait = false

    @Flag(help: "Print each stage's scheduler state and training progress, and submit nothing.")
    var status = false

    @Flag(help: "Cancel the run's pending and running jobs (scancel; locally, SIGTERM).")
    var cancel = false

    @Flag(help: "With --status: print JSON.")
    var json = false

    @Option(help: "The paris binary the jobs run (default: this one).")
    var paris: String?

    func validate() throws {
        if status && cancel { throw ValidationError("--status and --cancel exclude each other") }
        if let p = parallel, p < 1 { throw ValidationError("--parallel must be at least 1") }
    }

    func run() throws {
        let layout = RunLayout(URL(fileURLWithPath: runFolder))
        let env = ProcessInfo.processInfo.environment
        if status {
            let s = try Launcher.status(run: layout, environment: env)
            try printStatus(s, layout)
            return
        }
        if cancel {
            let ids = try Launcher.cancel(run: layout, environment: env)
            print(ids.isEmpty ? "nothing to cancel: no job is pending or running"
                : "cancelled \(ids.joined(separator: " "))")
            return
        }
        let options = LaunchOptions(backend: backend, paris: try parisPath(), includeEval: !noEval, resume: resume,
                                    parallel: parallel, experts: experts.isEmpty ? nil : Set(experts),
                                    environment: env)
        let outcome = try Launcher.launch(run: layout, options: options) { print($0) }
        var final = outcome.status
        if backend == .slurm && wait && !outcome.submitted.isEmpty {
            final = try Launcher.wait(run: layout, environment: env, timeout: .infinity, interval: 2)
        }
        if let final {
            try printStatus(final, layout)
            if !final.isComplete { throw ExitCode.failure }
        }
    }

    func printStatus(_ s: LaunchStatus, _ layout: RunLayout) throws {
        if json {
            print(try s.json())
            return
        }
        print("backend: \(s.backend?.rawValue ?? "not launched")")
        print(s.table)
        if let message = s.failureMessage(run: layout) { print(message) }
    }

    /// This executable, resolved (`/proc/self/exe` on Linux), unless --paris names another.
    func parisPath() throws -> String {
        if let paris { return URL(fileURLWithPath: paris).standardizedFileURL.path }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return exe }
        let arg0 = CommandLine.arguments[0]
        if arg0.contains("/") { return URL(fileURLWithPath: arg0).standardizedFileURL.resolvingSymlinksInPath().path }
        throw ValidationError("cannot tell where this paris binary is; pass --paris PATH")
    }
}

extension LaunchBackend: ExpressibleByArgument {}
