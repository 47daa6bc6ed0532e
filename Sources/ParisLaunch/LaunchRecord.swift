import Foundation
import ParisRun
import Torch

/// Which engine runs the jobs.
public enum LaunchBackend: String, Codable, Sendable, CaseIterable {
    /// Child processes of `paris launch` on this machine, N at a time.
    case local
    /// A Slurm cluster, through `sbatch`, `scontrol` and `scancel`.
    case slurm
}

/// One submitted job (a Slurm job or array, or one local child process), as recorded in `jobs.json`.
public struct SubmittedJob: Codable, Sendable, Equatable {
    /// The plan's job name (`experts`, `experts-g1`, `router`, `eval`; local experts: `expert-<k>`).
    public var name: String
    public var role: JobRole
    /// Expert indices this job trains (array tasks); nil for the router and eval.
    public var experts: [Int]?
    /// Slurm's job id (the array id for an array); local: `local-<n>`.
    public var jobId: String
    /// The batch script, relative to `launch/` (Slurm only).
    public var script: String?
    /// Job ids it waits for (`afterok`).
    public var dependsOn: [String]
    /// ISO 8601 UTC.
    public var submittedAt: String
    /// Local backend only (Slurm keeps these itself): the state, process id, exit status, reason and log file.
    public var state: SchedulerState?
    public var pid: Int32?
    /// The start time of `pid` (`/proc/<pid>/stat` field 22, clock ticks since boot): `--cancel` signals `pid` only
    /// while the process holding it started at this time, so a reused pid is never signalled.
    public var pidStartTime: UInt64?
    public var exitCode: Int32?
    public var reason: String?
    public var log: String?

    public init(name: String, role: JobRole, experts: [Int]?, jobId: String, script: String? = nil,
                dependsOn: [String] = [], submittedAt: String = LaunchRecord.now(), state: SchedulerState? = nil,
                log: String? = nil) {
        self.name = name
        self.role = role
        self.experts = experts
        self.jobId = jobId
        self.script = script
        self.dependsOn = dependsOn
        self.submittedAt = submittedAt
        self.state = state
        self.log = log
    }

    enum CodingKeys: String, CodingKey {
        case name, role, experts, jobId = "job_id", script, dependsOn = "depends_on", submittedAt = "submitted_at"
        case state, pid, pidStartTime = "pid_start_time", exitCode = "exit_code", reason, log
    }
}

/// `<run>/launch/jobs.json`: every job `paris launch` submitted for a run, oldest first (a resume appends).
/// The newest job that covers an expert (or the router, or eval) is its current one.
public struct LaunchRecord: Codable, Sendable, Equatable {
    public static let fileName = "jobs.json"

    public var backend: LaunchBackend
    /// The run folder (absolute).
    public var run: String
    /// The paris binary the jobs run.
    public var paris: String
    /// Local backend: the process id of the `paris launch` that runs the jobs, while it runs (cleared when the
    /// launch ends, normally or by an error, and by `--cancel`).
    public var launcherPid: Int32?
    /// The start time of `launcherPid` (`/proc/<pid>/stat` field 22). `--cancel` signals the launcher only while
    /// the process holding `launcherPid` started at this time; a pid without it is never signalled.
    public var launcherStartTime: UInt64?
    public var jobs: [SubmittedJob]

    public init(backend: LaunchBackend, run: String, paris: String, launcherPid: Int32? = nil,
                launcherStartTime: UInt64? = nil, jobs: [SubmittedJob] = []) {
        self.backend = backend
        self.run = run
        self.paris = paris
        self.launcherPid = launcherPid
        self.launcherStartTime = launcherStartTime
        self.jobs = jobs
    }

    enum CodingKeys: String, CodingKey {
        case backend, run, paris, launcherPid = "launcher_pid", launcherStartTime = "launcher_start_time", jobs
    }

    /// The newest job that trains expert `k`.
    public func current(expert k: Int) -> SubmittedJob? {
        jobs.last { $0.role == .experts && ($0.experts ?? []).contains(k) }
    }

    /// The newest router or eval job.
    public func current(_ role: JobRole) -> SubmittedJob? { jobs.last { $0.role == role } }

    /// The current job of every stage, without duplicates, oldest first.
    public func currentJobs(numExperts: Int) -> [SubmittedJob] {
        var ids = Set<String>()
        var out: [SubmittedJob] = []
        let all = (0..<numExperts).compactMap { current(expert: $0) }
            + [current(.router), current(.eval)].compactMap { $0 }
        for j in all where ids.insert(j.jobId).inserted { out.append(j) }
        return out
    }

    /// Reads `<run>/launch/jobs.json`; nil when the run was never launched.
    public static func read(_ run: RunLayout) throws -> LaunchRecord? {
        let url = run.launch.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        do { return try JSONDecoder().decode(LaunchRecord.self, from: data) } catch {
            throw LaunchError("\(url.path): malformed launch record (\(error))")
        }
    }

    /// Writes `<run>/launch/jobs.json` atomically.
    public func write(_ run: RunLayout) throws {
        try FileManager.default.createDirectory(at: run.launch, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10],
                             to: run.launch.appendingPathComponent(Self.fileName))
    }

    /// The current time, ISO 8601 UTC.
    public static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }
}

/// Writes a text file atomically (batch scripts, submit.sh), optionally executable.
enum TextFile {
    static func write(_ text: String, to url: URL, executable: Bool = false) throws {
        try AtomicFile.write(Array(text.utf8), to: url)
        if executable {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
    }
}
