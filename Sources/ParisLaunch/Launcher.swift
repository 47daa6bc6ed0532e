import Foundation
import ParisRun

/// How `paris launch` runs a run's jobs.
public struct LaunchOptions: Sendable {
    public var backend: LaunchBackend
    /// The paris binary the jobs run; absolute, since a cluster node runs it from the batch script.
    public var paris: String
    /// Plan `paris eval --run R` after the router.
    public var includeEval: Bool
    /// Allow a launch on top of an earlier one: submit only what has not finished.
    public var resume: Bool
    /// Local: processes at once (default 1). Slurm: the array throttle `%N` (default none).
    public var parallel: Int?
    /// Only these experts (a retry of one expert alone); nil: all that have not finished.
    public var experts: Set<Int>?
    /// The environment of the children and of the Slurm commands (the CLI passes its own).
    public var environment: [String: String]
    /// The process id of this launcher, recorded for `--cancel` of a local launch.
    public var launcherPid: Int32

    public init(backend: LaunchBackend, paris: String, includeEval: Bool = true, resume: Bool = false,
                parallel: Int? = nil, experts: Set<Int>? = nil, environment: [String: String] = [:],
                launcherPid: Int32 = getpid()) {
        self.backend = backend
        self.paris = paris
        self.includeEval = includeEval
        self.resume = resume
        self.parallel = parallel
        self.experts = experts
        self.environment = environment
        self.launcherPid = launcherPid
    }
}

/// What a launch did: the plan, the jobs submitted (Slurm) or run (local), and the run's state afterwards.
public struct LaunchOutcome: Sendable {
    public var plan: LaunchPlan
    public var submitted: [SubmittedJob]
    /// Local: the final state of every stage. Slurm: nil (the jobs have only just been queued).
    public var status: LaunchStatus?
}

/// `paris launch`: plans a run's jobs, hands them to a backend, and answers status and cancel requests from
/// `<run>/launch/jobs.json`.
public enum Launcher {
    /// Plans and submits (Slurm) or runs (local) every stage of `run` that has not finished.
    /// - Parameter runner: the Slurm command runner (tests pass a fake); default runs the real commands.
    public static func launch(run: RunLayout, options: LaunchOptions, runner: (any CommandRunning)? = nil,
                              log: (String) -> Void = { _ in }) throws -> LaunchOutcome {
        let config = try run.config()
        guard options.paris.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: options.paris) else {
            throw LaunchError("the paris binary '\(options.paris)' must be an absolute path to an executable file")
        }
        let commands = runner ?? ProcessRunner(environment: options.environment)
        let local = options.backend == .local
        var record = LaunchRecord(backend: options.backend, run: run.root.path, paris: options.paris,
                                  launcherPid: local ? options.launcherPid : nil,
                                  launcherStartTime: local ? ProcessStart.of(options.launcherPid) : nil)
        if let old = try LaunchRecord.read(run) {
            guard options.resume else {
                throw LaunchError("\(run.root.path) was launched before (\(run.launch.path)/jobs.json); "
                    + "use --status to see it, --resume to submit what has not finished, or --cancel")
            }
            let progress = RunProgress.read(run, config: config)
            let status = try status(of: old, config: config, progress: progress, runner: commands)
            let active = status.jobs.filter { $0.state.isActive }
            guard active.isEmpty else {
                throw LaunchError("cannot resume while jobs are still pending or running: "
                    + active.map { "\($0.label) (\($0.jobId ?? "-") \($0.state.rawValue))" }.joined(separator: ", ")
                    + "; wait for them, or stop them with `paris launch --run \(run.root.path) --cancel`")
            }
            if old.backend == options.backend {
                record.jobs = old.jobs
            } else {
                let archive = run.launch.appendingPathComponent("jobs-\(old.backend.rawValue).json")
                try? FileManager.default.removeItem(at: archive)
                try FileManager.default.moveItem(at: run.launch.appendingPathComponent(LaunchRecord.fileName),
                                                 to: archive)
                log("switching from \(old.backend.rawValue) to \(options.backend.rawValue); "
                    + "the old record is now \(archive.path)")
            }
        }
        let progress = RunProgress.read(run, config: config)
        let plan = try LaunchPlan.make(run: run, config: config, paris: options.paris,
                                       includeEval: options.includeEval, progress: progress, only: options.experts)
        for note in plan.skipped { log("skip \(note)") }
        guard !plan.jobs.isEmpty else {
            log("nothing to launch: every stage has finished")
            return LaunchOutcome(plan: plan, submitted: [], status: nil)
        }
        switch options.backend {
        case .slurm:
            _ = try Executable.find("sbatch", environment: options.environment)
            let submitted = try SlurmBackend(runner: commands, throttle: options.parallel).submit(plan, record: &record)
            for s in submitted {
                log("\(s.name): job \(s.jobId)" + (s.experts.map { " (experts \(ArrayRange.format($0)))" } ?? "")
                    + (s.dependsOn.isEmpty ? "" : " after \(s.dependsOn.joined(separator: ", "))"))
            }
            log("scripts: \(run.launch.path) (submit.sh resubmits them by hand)")
            return LaunchOutcome(plan: plan, submitted: submitted, status: nil)
        case .local:
            let backend = LocalBackend(parallel: options.parallel ?? 1, environment: options.environment)
            // The launcher's pid is in jobs.json only while it runs: once it has ended, the number may be given to
            // another process, which `--cancel` must not signal.
            func forgetLauncher() {
                record.launcherPid = nil
                record.launcherStartTime = nil
            }
            let done: [SubmittedJob]
            do {
                done = try backend.run(plan, record: &record, log: log)
            } catch {
                forgetLauncher()
                try? record.write(run)
                throw error
            }
            forgetLauncher()
            try record.write(run)
            let final = LocalBackend.status(record: record, config: config,
                                            progress: RunProgress.read(run, config: config))
            return LaunchOutcome(plan: plan, submitted: done, status: final)
        }
    }

    /// Every stage's scheduler state next to its training progress. A run never launched shows each stage as
    /// NOT_SUBMITTED (or COMPLETED when it has finished).
    public static func status(run: RunLayout, environment: [String: String],
                              runner: (any CommandRunning)? = nil) throws -> LaunchStatus {
        let config = try run.config()
        let progress = RunProgress.read(run, config: config)
        guard let record = try LaunchRecord.read(run) else {
            return LocalBackend.status(record: LaunchRecord(backend: .local, run: run.root.path, paris: ""),
                                       config: config, progress: progress).withBackend(nil)
        }
        return try status(of: record, config: config, progress: progress,
                          runner: runner ?? ProcessRunner(environment: environment))
    }

    static func status(of record: LaunchRecord, config: RunConfig, progress: RunProgress,
                       runner: any CommandRunning) throws -> LaunchStatus {
        switch record.backend {
        case .slurm: return try SlurmBackend(runner: runner).status(record: record, config: config, progress: progress)
        case .local: return LocalBackend.status(record: record, config: config, progress: progress)
        }
    }

    /// Stops what is still pending or running: `scancel` on Slurm, SIGTERM to the launcher and its children
    /// locally (each only while its pid is held by the process recorded with its start time). Returns the job or
    /// process ids stopped.
    public static func cancel(run: RunLayout, environment: [String: String],
                              runner: (any CommandRunning)? = nil) throws -> [String] {
        let config = try run.config()
        guard var record = try LaunchRecord.read(run) else {
            throw LaunchError("\(run.root.path) has not been launched (no \(run.launch.path)/jobs.json)")
        }
        switch record.backend {
        case .slurm:
            return try SlurmBackend(runner: runner ?? ProcessRunner(environment: environment))
                .cancel(record: record, config: config)
        case .local:
            return try LocalBackend.cancel(record: &record, run: run).map(String.init)
        }
    }

    /// Polls `status` until nothing is pending or running (tests, `paris launch --wait`).
    public static func wait(run: RunLayout, environment: [String: String], runner: (any CommandRunning)? = nil,
                            timeout: TimeInterval, interval: TimeInterval = 0.5) throws -> LaunchStatus {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let s = try status(run: run, environment: environment, runner: runner)
            if !s.isActive { return s }
            guard Date() < deadline else {
                throw LaunchError("jobs still active after \(Int(timeout)) s:\n\(s.table)")
            }
            Thread.sleep(forTimeInterval: interval)
        }
    }
}

extension LaunchStatus {
    func withBackend(_ b: LaunchBackend?) -> LaunchStatus { LaunchStatus(backend: b, jobs: jobs) }
}
