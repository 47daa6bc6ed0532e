import Foundation
import ParisRun

/// Submits a plan to Slurm with its own commands (`sbatch --parsable`, `scontrol show job -o`, `scancel`),
/// keeping every batch script in `<run>/launch/`.
public struct SlurmBackend: Sendable {
    public var runner: any CommandRunning
    /// Array throttle (`--array=0-7%N`): at most N experts at once; nil leaves it to the scheduler.
    public var throttle: Int?

    public init(runner: any CommandRunning, throttle: Int? = nil) {
        self.runner = runner
        self.throttle = throttle
    }

    /// Writes the scripts and `submit.sh`, then submits the jobs in order, each router/eval job with
    /// `--dependency=afterok:` on the ids of the jobs it needs. Every submitted id is appended to `record` and
    /// written to `jobs.json` at once, so an error half-way leaves the ids of what was submitted.
    @discardableResult
    public func submit(_ plan: LaunchPlan, record: inout LaunchRecord) throws -> [SubmittedJob] {
        let launch = plan.run.launch
        let logs = launch.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        for job in plan.jobs {
            try TextFile.write(SlurmScript.render(job, runName: plan.runName, logs: logs, throttle: throttle),
                               to: launch.appendingPathComponent(SlurmScript.fileName(job)))
        }
        try TextFile.write(SlurmScript.submitScript(plan), to: launch.appendingPathComponent("submit.sh"),
                           executable: true)
        var ids: [String: String] = [:]
        var submitted: [SubmittedJob] = []
        for job in plan.jobs {
            let deps = try job.dependencies.map { name -> String in
                guard let id = ids[name] else { throw LaunchError("job \(job.name) depends on unknown job \(name)") }
                return id
            }
            let script = launch.appendingPathComponent(SlurmScript.fileName(job))
            var argv = ["sbatch", "--parsable"]
            if !deps.isEmpty { argv.append("--dependency=afterok:" + deps.joined(separator: ":")) }
            argv.append(script.path)
            let result = try runner.run(argv)
            let id = result.stdout.split(separator: "\n").last.map { String($0.split(separator: ";")[0]) } ?? ""
            guard result.status == 0, !id.isEmpty, id.allSatisfy(\.isNumber) else {
                let done = submitted.map { "\($0.name) \($0.jobId)" }.joined(separator: ", ")
                throw LaunchError("sbatch \(SlurmScript.fileName(job)) failed (exit \(result.status)): "
                    + result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
                    + (done.isEmpty ? "" : "\nalready submitted: \(done) (see `paris launch --status`, `--cancel`)"))
            }
            ids[job.name] = id
            let entry = SubmittedJob(name: job.name, role: job.role, experts: job.arrayIndices, jobId: id,
                                     script: SlurmScript.fileName(job), dependsOn: deps)
            submitted.append(entry)
            record.jobs.append(entry)
            try record.write(plan.run)
        }
        return submitted
    }

    /// `scontrol show job -o ID` for each id; ids Slurm no longer knows (finished longer ago than MinJobAge)
    /// are simply absent from the answer.
    public func query(_ ids: [String]) throws -> [SlurmJobInfo] {
        var out: [SlurmJobInfo] = []
        for id in ids {
            let r = try runner.run(["scontrol", "show", "job", "-o", id])
            if r.status != 0 {
                if r.stderr.contains("Invalid job id") { continue }
                throw LaunchError("scontrol show job \(id) failed (exit \(r.status)): "
                    + r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            out += SlurmJobInfo.parse(r.stdout)
        }
        return out
    }

    /// The state of every stage: Slurm's view of its current job, with the run folder's progress. A job Slurm
    /// no longer lists counts as COMPLETED when its stage finished, else UNKNOWN.
    public func status(record: LaunchRecord, config: RunConfig, progress: RunProgress) throws -> LaunchStatus {
        let current = record.currentJobs(numExperts: config.numExperts)
        let infos = try query(current.map(\.jobId))
        func lookup(_ job: SubmittedJob, task: Int?) -> SlurmJobInfo? {
            if let task {
                return infos.first { ($0.arrayJobId ?? $0.jobId) == job.jobId && ($0.arrayTasks ?? []).contains(task) }
            }
            return infos.first { $0.jobId == job.jobId }
        }
        func entry(_ role: JobRole, _ k: Int?, _ job: SubmittedJob?, _ p: JobProgress?, finished: Bool) -> JobStatus {
            guard let job else {
                return JobStatus(role: role, expert: k, jobId: nil, state: finished ? .completed : .notSubmitted,
                                 reason: finished ? "finished before this launch" : nil, progress: p)
            }
            let shownId = k.map { "\(job.jobId)_\($0)" } ?? job.jobId
            guard let info = lookup(job, task: k) else {
                return JobStatus(role: role, expert: k, jobId: shownId, state: finished ? .completed : .unknown,
                                 reason: "no longer listed by Slurm", progress: p)
            }
            return JobStatus(role: role, expert: k, jobId: shownId, state: info.state, reason: info.reason,
                             exitCode: info.exitCode, progress: p)
        }
        var jobs = (0..<config.numExperts).map { k in
            entry(.experts, k, record.current(expert: k), progress.experts[k], finished: progress.experts[k].finished)
        }
        jobs.append(entry(.router, nil, record.current(.router), progress.router, finished: progress.router.finished))
        if let e = record.current(.eval) { jobs.append(entry(.eval, nil, e, nil, finished: progress.evalFinished)) }
        return LaunchStatus(backend: .slurm, jobs: jobs)
    }

    /// `scancel` of every current job that is still pending or running; returns the ids cancelled.
    public func cancel(record: LaunchRecord, config: RunConfig) throws -> [String] {
        let current = record.currentJobs(numExperts: config.numExperts)
        let infos = try query(current.map(\.jobId))
        let active = current.map(\.jobId).filter { id in
            infos.contains { ($0.arrayJobId ?? $0.jobId) == id && $0.state.isActive }
        }
        guard !active.isEmpty else { return [] }
        let r = try runner.run(["scancel"] + active)
        guard r.status == 0 else {
            throw LaunchError("scancel \(active.joined(separator: " ")) failed (exit \(r.status)): "
                + r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return active
    }
}
