import Foundation
import ParisRun

/// A job's scheduler state, in Slurm's words (`squeue %T`, `scontrol … JobState=`), plus NOT_SUBMITTED and
/// UNKNOWN (the scheduler no longer lists the job).
public enum SchedulerState: String, Codable, Sendable, CaseIterable {
    case notSubmitted = "NOT_SUBMITTED"
    case pending = "PENDING"
    case running = "RUNNING"
    case suspended = "SUSPENDED"
    case completed = "COMPLETED"
    case failed = "FAILED"
    case cancelled = "CANCELLED"
    case timeout = "TIMEOUT"
    case outOfMemory = "OUT_OF_MEMORY"
    case nodeFail = "NODE_FAIL"
    case preempted = "PREEMPTED"
    case unknown = "UNKNOWN"

    /// Maps every Slurm job state onto these (COMPLETING is still running, REQUEUED is pending again…).
    public init(slurm text: String) {
        let word = text.split(separator: " ").first.map(String.init)?.uppercased() ?? ""
        switch word {
        case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD": self = .pending
        case "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING": self = .running
        case "SUSPENDED", "STOPPED": self = .suspended
        case "COMPLETED": self = .completed
        case "FAILED", "BOOT_FAIL", "SPECIAL_EXIT": self = .failed
        case "CANCELLED", "REVOKED": self = .cancelled
        case "TIMEOUT", "DEADLINE": self = .timeout
        case "OUT_OF_MEMORY": self = .outOfMemory
        case "NODE_FAIL": self = .nodeFail
        case "PREEMPTED": self = .preempted
        default: self = .unknown
        }
    }

    /// Still waiting or running: it will change by itself.
    public var isActive: Bool { self == .pending || self == .running || self == .suspended }

    /// Ended without success.
    public var isFailure: Bool {
        [.failed, .cancelled, .timeout, .outOfMemory, .nodeFail, .preempted].contains(self)
    }
}

/// The scheduler state of one expert, the router or evaluation, next to its training progress. This is what
/// `paris launch --status` prints and what `paris status` shows in its scheduler column.
public struct JobStatus: Codable, Sendable, Equatable {
    public var role: JobRole
    /// The expert index (nil for the router and eval).
    public var expert: Int?
    /// Scheduler id: `12_1` for array task 1 of job 12, `13` for a single job, `local-3` locally; nil when not
    /// submitted.
    public var jobId: String?
    public var state: SchedulerState
    /// Slurm's reason (`Dependency`, `DependencyNeverSatisfied`, `NonZeroExitCode`…) or the launcher's.
    public var reason: String?
    /// `3:0` (exit status : signal) on Slurm, the exit status locally.
    public var exitCode: String?
    /// Training progress from the run folder (nil for eval).
    public var progress: JobProgress?

    public init(role: JobRole, expert: Int?, jobId: String?, state: SchedulerState, reason: String? = nil,
                exitCode: String? = nil, progress: JobProgress? = nil) {
        self.role = role
        self.expert = expert
        self.jobId = jobId
        self.state = state
        self.reason = reason
        self.exitCode = exitCode
        self.progress = progress
    }

    /// "expert 1", "router", "eval".
    public var label: String { expert.map { "expert \($0)" } ?? role.rawValue }

    enum CodingKeys: String, CodingKey {
        case role, expert, jobId = "job_id", state, reason, exitCode = "exit_code", progress
    }
}

/// Every stage's state for one run, and a clear message when something failed.
public struct LaunchStatus: Sendable, Equatable {
    public var backend: LaunchBackend?
    /// Experts in index order, then the router, then eval (when planned).
    public var jobs: [JobStatus]

    public init(backend: LaunchBackend?, jobs: [JobStatus]) {
        self.backend = backend
        self.jobs = jobs
    }

    /// Expert k's status.
    public func expert(_ k: Int) -> JobStatus? { jobs.first { $0.role == .experts && $0.expert == k } }
    public var router: JobStatus? { jobs.first { $0.role == .router } }
    public var eval: JobStatus? { jobs.first { $0.role == .eval } }

    /// Every stage finished.
    public var isComplete: Bool { jobs.allSatisfy { $0.state == .completed } }
    /// Something is still pending or running.
    public var isActive: Bool { jobs.contains { $0.state.isActive } }

    /// Experts that ended without success.
    public var failedExperts: [JobStatus] { jobs.filter { $0.role == .experts && $0.state.isFailure } }

    /// When an expert failed: which, why, what happened to the router, and how to retry; nil otherwise.
    public func failureMessage(run: RunLayout) -> String? {
        // A router or eval cancelled because an expert failed is a consequence, not a cause.
        let failed = jobs.filter { s in
            s.state.isFailure && !(s.role != .experts && s.reason?.contains("Dependency") == true)
        }
        guard !failed.isEmpty else { return nil }
        var lines = failed.map { s in
            "\(s.label) \(s.state.rawValue)" + (s.exitCode.map { " (exit \($0))" } ?? "")
                + (s.reason.map { ", reason \($0)" } ?? "")
        }
        if let r = router, r.state == .cancelled || (r.state == .notSubmitted && !failedExperts.isEmpty) {
            lines.append("the router was cancelled: it runs only after every expert succeeded")
        }
        lines.append("logs: \(run.launch.appendingPathComponent("logs").path)")
        lines.append("fix the cause, then `paris launch --run \(run.root.path) --resume` resubmits only what has not "
            + "finished (add --expert K to retry one expert alone)")
        return lines.joined(separator: "\n")
    }

    /// Every stage as JSON (sorted keys).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(jobs), as: UTF8.self)
    }

    /// A table: stage, job id, state, reason, progress.
    public var table: String {
        var rows = [["stage", "job", "state", "reason", "progress"]]
        for s in jobs {
            rows.append([s.label, s.jobId ?? "-", s.state.rawValue,
                         [s.reason, s.exitCode.map { "exit \($0)" }].compactMap { $0 }.joined(separator: ", "),
                         s.progress.map { $0.finished ? "finished (\($0.describe))" : $0.describe } ?? ""])
        }
        let widths = (0..<5).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}

/// One record of `scontrol show job -o`: a single job, one array task, or the still-pending rest of an array.
public struct SlurmJobInfo: Sendable, Equatable {
    public var jobId: String
    public var arrayJobId: String?
    /// The task indices this record covers (one, or a pending range); nil for a plain job.
    public var arrayTasks: [Int]?
    public var state: SchedulerState
    public var reason: String?
    public var exitCode: String?

    /// Parses `scontrol show job -o` output (one job per line of `Key=Value` words).
    public static func parse(_ text: String) -> [SlurmJobInfo] {
        text.split(separator: "\n").compactMap { line in
            var fields: [String: String] = [:]
            for word in line.split(separator: " ") {
                let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                let key = String(parts[0])
                if fields[key] == nil { fields[key] = String(parts[1]) }
            }
            guard let id = fields["JobId"], let state = fields["JobState"] else { return nil }
            let tasks = fields["ArrayTaskId"].flatMap { try? ArrayRange.parse($0) }
            let reason = fields["Reason"].flatMap { $0 == "None" || $0 == "(null)" ? nil : $0 }
            return SlurmJobInfo(jobId: id, arrayJobId: fields["ArrayJobId"], arrayTasks: tasks,
                                state: SchedulerState(slurm: state), reason: reason, exitCode: fields["ExitCode"])
        }
    }
}
