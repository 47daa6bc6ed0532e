import Foundation
import ParisRun

#if canImport(Glibc)
import Glibc
#endif

/// Runs a plan on this machine as child processes, at most `parallel` at once: every expert (each array index
/// is its own process), then the router once all experts succeeded, then evaluation. A failed expert does not
/// stop the other experts, but the router and eval are then cancelled with a clear reason. Each process writes
/// to `<run>/launch/logs/<name>.log`, and each line a running job writes there is also passed to `log`, prefixed with
/// the job's name (`expert-2 | [expert 2] step 200/1500 loss 0.41 …`), so a launch shows every expert's progress as
/// it trains; states go to `jobs.json` as they change, so `paris launch --status` works from another shell.
public struct LocalBackend: Sendable {
    public var parallel: Int
    /// The children's environment (the CLI passes its own).
    public var environment: [String: String]
    /// How often finished children are looked for.
    public var pollInterval: TimeInterval

    public init(parallel: Int, environment: [String: String], pollInterval: TimeInterval = 0.05) {
        self.parallel = max(1, parallel)
        self.environment = environment
        self.pollInterval = pollInterval
    }

    /// One process to run.
    struct Unit {
        var name: String
        var role: JobRole
        var expert: Int?
        var argv: [String]
        var cpus: Int
        var dependencies: [Int]
        var recordIndex: Int
    }

    /// Runs every job of `plan` to the end and returns the final states (also in `record` and `jobs.json`).
    @discardableResult
    public func run(_ plan: LaunchPlan, record: inout LaunchRecord,
                    log: (String) -> Void = { _ in }) throws -> [SubmittedJob] {
        let logs = plan.run.launch.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        var units: [Unit] = []
        var unitsOfJob: [String: [Int]] = [:]
        for job in plan.jobs {
            let deps = job.dependencies.flatMap { unitsOfJob[$0] ?? [] }
            let tasks: [Int?] = job.arrayIndices.map { $0.map { Optional($0) } } ?? [nil]
            for k in tasks {
                let name = k.map { "expert-\($0)" } ?? job.name
                let entry = SubmittedJob(name: name, role: job.role, experts: k.map { [$0] },
                                         jobId: "local-\(record.jobs.count)", state: .pending,
                                         log: "logs/\(name).log")
                record.jobs.append(entry)
                unitsOfJob[job.name, default: []].append(units.count)
                units.append(Unit(name: name, role: job.role, expert: k, argv: job.argv(index: k),
                                  cpus: job.resources.cpus, dependencies: deps, recordIndex: record.jobs.count - 1))
            }
        }
        try record.write(plan.run)

        var running: [(unit: Int, pid: pid_t)] = []
        var followers: [Int: LogFollower] = [:]
        func forward(_ u: Int) {
            for line in followers[u]?.newLines() ?? [] { log("\(units[u].name) | \(line)") }
        }
        func state(_ u: Int) -> SchedulerState { record.jobs[units[u].recordIndex].state ?? .pending }
        func update(_ u: Int, _ change: (inout SubmittedJob) -> Void) throws {
            change(&record.jobs[units[u].recordIndex])
            try record.write(plan.run)
        }
        // Cancels what can no longer run (units are in dependency order, so one pass reaches every dependent).
        func cancelBlocked() throws {
            for u in units.indices where state(u) == .pending {
                if let bad = units[u].dependencies.first(where: { state($0).isFailure }) {
                    let why = "DependencyNeverSatisfied: \(units[bad].name) \(state(bad).rawValue)"
                    try update(u) { $0.state = .cancelled; $0.reason = why }
                    log("\(units[u].name): cancelled (\(units[bad].name) did not succeed)")
                }
            }
        }
        while true {
            try cancelBlocked()
            for u in units.indices where running.count < parallel && state(u) == .pending
                && units[u].dependencies.allSatisfy({ state($0) == .completed }) {
                let unit = units[u]
                do {
                    let pid = try start(unit.argv, cpus: unit.cpus,
                                        log: logs.appendingPathComponent("\(unit.name).log"))
                    running.append((u, pid))
                    followers[u] = LogFollower(logs.appendingPathComponent("\(unit.name).log"))
                    let started = ProcessStart.of(pid)
                    try update(u) { $0.state = .running; $0.pid = pid; $0.pidStartTime = started; $0.reason = nil }
                    log("\(unit.name): started (pid \(pid)): \(unit.argv.map(Shell.quote).joined(separator: " "))")
                } catch {
                    try update(u) { $0.state = .failed; $0.reason = "could not start: \(error)" }
                    log("\(unit.name): could not start: \(error)")
                }
            }
            if running.isEmpty {
                try cancelBlocked()
                break
            }
            Thread.sleep(forTimeInterval: pollInterval)
            for (i, entry) in running.enumerated().reversed() {
                forward(entry.unit)
                guard let end = try Spawn.poll(entry.pid) else { continue }
                forward(entry.unit)
                followers[entry.unit] = nil
                running.remove(at: i)
                let signalled = end.signalled
                let code = end.code
                let final: SchedulerState = signalled ? .cancelled : (code == 0 ? .completed : .failed)
                let reason: String? = signalled ? "killed by signal \(code)" : (code == 0 ? nil : "NonZeroExitCode")
                try update(entry.unit) {
                    $0.state = final; $0.exitCode = code; $0.reason = reason; $0.pid = nil; $0.pidStartTime = nil
                }
                log("\(units[entry.unit].name): \(final.rawValue)"
                    + (code == 0 ? "" : " (\(reason ?? ""), exit \(code))"))
            }
        }
        return units.map { record.jobs[$0.recordIndex] }
    }

    /// Starts `argv` with stdout and stderr appended to `log`, and libtorch's threads set to the job's `cpus`
    /// (unless the environment already sets `OMP_NUM_THREADS`).
    func start(_ argv: [String], cpus: Int, log: URL) throws -> pid_t {
        guard let first = argv.first else { throw LaunchError("empty command") }
        var env = environment
        if env["OMP_NUM_THREADS"] == nil { env["OMP_NUM_THREADS"] = String(max(1, cpus)) }
        return try Spawn.start(try Executable.find(first, environment: environment), arguments: Array(argv.dropFirst()),
                               environment: env, stdout: log.path, stderr: log.path)
    }

    /// The state of every stage from `jobs.json` (a local launch records its children's states there).
    public static func status(record: LaunchRecord, config: RunConfig, progress: RunProgress) -> LaunchStatus {
        func entry(_ role: JobRole, _ k: Int?, _ job: SubmittedJob?, _ p: JobProgress?, finished: Bool) -> JobStatus {
            guard let job else {
                return JobStatus(role: role, expert: k, jobId: nil, state: finished ? .completed : .notSubmitted,
                                 reason: finished ? "finished before this launch" : nil, progress: p)
            }
            var state = job.state ?? .unknown
            var reason = job.reason
            // A child that is recorded as running but whose process is gone was stopped with its launcher.
            if state.isActive, let pid = job.pid, !ProcessStart.isRunning(pid, start: job.pidStartTime) {
                state = finished ? .completed : .cancelled
                reason = "the process \(pid) is gone (was paris launch stopped?)"
            }
            return JobStatus(role: role, expert: k, jobId: job.jobId, state: state, reason: reason,
                             exitCode: job.exitCode.map(String.init), progress: p)
        }
        var jobs = (0..<config.numExperts).map { k in
            entry(.experts, k, record.current(expert: k), progress.experts[k], finished: progress.experts[k].finished)
        }
        jobs.append(entry(.router, nil, record.current(.router), progress.router, finished: progress.router.finished))
        if let e = record.current(.eval) { jobs.append(entry(.eval, nil, e, nil, finished: progress.evalFinished)) }
        return LaunchStatus(backend: .local, jobs: jobs)
    }

    /// Stops a local launch: SIGTERM to the launcher, then to every running child recorded in `jobs.json`, each
    /// only if the process now holding its pid started at the recorded start time (`ProcessStart.signal`): a
    /// launcher that has ended, whose pid may now be another program's, is never signalled, nor a pid recorded
    /// without a start time. The launcher and the children's pids are then cleared from the record (rewritten
    /// atomically). Returns the process ids signalled.
    public static func cancel(record: inout LaunchRecord, run: RunLayout) throws -> [Int32] {
        var signalled: [Int32] = []
        if let pid = record.launcherPid, pid != getpid(),
           ProcessStart.signal(pid, start: record.launcherStartTime, SIGTERM) {
            signalled.append(pid)
        }
        record.launcherPid = nil
        record.launcherStartTime = nil
        for i in record.jobs.indices where record.jobs[i].state?.isActive == true {
            if let pid = record.jobs[i].pid, ProcessStart.signal(pid, start: record.jobs[i].pidStartTime, SIGTERM) {
                signalled.append(pid)
            }
            record.jobs[i].state = .cancelled
            record.jobs[i].reason = "cancelled by paris launch --cancel"
            record.jobs[i].pid = nil
            record.jobs[i].pidStartTime = nil
        }
        try record.write(run)
        return signalled
    }
}
