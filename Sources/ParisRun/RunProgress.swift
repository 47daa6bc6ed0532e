import Foundation
import Torch

/// One job's progress (an expert, the router or the monolith), read from its folder's files alone, so it works on
/// any machine that sees the run folder while the job runs elsewhere.
///
/// The state follows one rule, the only place the run decides whether a job is finished or running:
/// - `finished` / `failed`: what the trainer last wrote to `status.json` (every trainer writes it; it writes
///   `finished` only after the final weights are in place);
/// - `running`: a process holds the job's `train.lock` (the kernel drops the lock when the process dies, so a
///   `kill -9` shows at once, with no timeout);
/// - `stopped`: the job has files but no process holds its lock (a clean stop, or a process that died);
/// - `not_started`: the folder holds nothing of a trainer.
public struct JobProgress: Codable, Sendable, Equatable {
    /// "expert_0" … , "router", "monolith".
    public var name: String
    public var folder: String
    public var state: JobState
    /// Steps done (the newest of status.json, metrics.jsonl and the checkpoints); 0 when nothing ran.
    public var step: Int
    public var totalSteps: Int
    /// The newest step in metrics.jsonl (logged every few steps, before the first checkpoint too).
    public var loggedStep: Int?
    public var lastLoss: Double?
    public var imagesPerSecond: Double?
    /// The router's training accuracy in the last log line.
    public var accuracy: Double?
    /// The router's held-out accuracy from its `eval.json`.
    public var heldOutAccuracy: Double?
    public var lastCheckpointStep: Int?
    /// Unix time of the newest checkpoint.
    public var lastCheckpointAt: Double?
    /// Unix time of the newest write to status.json or metrics.jsonl.
    public var updatedAt: Double?
    /// Why the state is what it is, when not obvious, or the error.
    public var note: String?
    /// Set when the job's published model was trained on other shards than the partition holds now (the partition
    /// was rebuilt since): the warning, with the command that retrains it (`RunLayout.staleJobs`). A finished
    /// stale job is not skipped by `paris launch --resume`, which refuses to go on until it is retrained.
    public var stale: String?

    public init(name: String, folder: String, state: JobState = .notStarted, step: Int = 0, totalSteps: Int) {
        self.name = name
        self.folder = folder
        self.state = state
        self.step = step
        self.totalSteps = totalSteps
    }

    enum CodingKeys: String, CodingKey {
        case name, folder, state, step, totalSteps = "total_steps", loggedStep = "logged_step", lastLoss = "last_loss"
        case imagesPerSecond = "images_per_s", accuracy, heldOutAccuracy = "held_out_accuracy"
        case lastCheckpointStep = "last_checkpoint_step", lastCheckpointAt = "last_checkpoint_at"
        case updatedAt = "updated_at", note, stale
    }

    /// The job's trainer said it finished.
    public var finished: Bool { state == .finished }

    /// Progress in 0…1.
    public var fraction: Double { totalSteps > 0 ? min(1, Double(step) / Double(totalSteps)) : 0 }

    /// "12/20 steps", "4/20 steps logged, no checkpoint yet", "not started".
    public var describe: String {
        if lastCheckpointStep == nil && !finished {
            if let loggedStep { return "\(loggedStep)/\(totalSteps) steps logged, no checkpoint yet" }
            return state == .notStarted ? "not started" : "\(step)/\(totalSteps) steps"
        }
        return "\(step)/\(totalSteps) steps"
    }

    /// Reads the job in `folder`; `now` dates the notes.
    public static func read(name: String, folder: URL, totalSteps: Int, now: Date = Date()) -> JobProgress {
        var s = JobProgress(name: name, folder: folder.path, totalSteps: totalSteps)
        let fm = FileManager.default
        guard fm.fileExists(atPath: folder.path) else { return s }

        let metricsURL = folder.appendingPathComponent(MetricsFile.fileName)
        let records = MetricsFile.read(metricsURL)
        if let last = records.last {
            s.loggedStep = MetricsFile.number(last["step"]).map { Int($0) }
            s.step = max(s.step, s.loggedStep ?? 0)
            s.lastLoss = MetricsFile.number(last["loss"])
            s.imagesPerSecond = MetricsFile.number(last["images_per_s"])
            s.accuracy = MetricsFile.number(last["accuracy"])
        }
        var updated = modificationTime(metricsURL)

        if let ck = CheckpointFolder.latest(in: folder.appendingPathComponent(CheckpointFolder.name)) {
            s.lastCheckpointStep = ck.step
            s.step = max(s.step, ck.step)
            s.lastCheckpointAt = ck.writtenAt
        }

        var status: JobStatusFile?
        do { status = try JobStatusFile.read(from: folder) } catch { s.note = "\(error)" }
        if let st = status {
            s.step = max(s.step, st.step)
            updated = max(updated ?? 0, st.updatedAt)
        }
        s.updatedAt = updated
        let held = FileLock.isHeld(folder.appendingPathComponent(FileLock.trainingName))
        let age = updated.map { Self.age(now.timeIntervalSince1970 - $0) } ?? "?"

        switch status?.state {
        case .finished?:
            s.state = .finished
        case .failed?:
            s.state = .failed
            s.note = status?.error
        case _ where held:
            s.state = .running
        case .running?:
            s.state = .stopped
            s.note = "no process holds its lock (last update \(age) ago): the trainer is gone (killed?); run the job "
                + "again to resume"
        case .stopped?:
            s.state = .stopped
            s.note = "stopped at step \(s.step); run the job again to resume"
        case .notStarted?, nil:
            if !records.isEmpty || s.lastCheckpointStep != nil {
                s.state = .stopped
                s.note = "no process holds its lock (last update \(age) ago); run the job again to resume"
            }
        }
        return s
    }

    static func modificationTime(_ url: URL) -> Double? {
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: url.path),
              let date = attrs[.modificationDate] as? Date else { return nil }
        return date.timeIntervalSince1970
    }

    static func age(_ seconds: Double) -> String {
        let s = max(0, Int(seconds))
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h" }
        return "\(s / 86400) d"
    }
}

/// Every job of a run: what `paris status` prints, what `paris launch` skips when resuming, and what
/// `paris launch --status` shows beside the scheduler's state.
public struct RunProgress: Codable, Sendable, Equatable {
    public var run: String
    public var folder: String
    public var numExperts: Int
    public var experts: [JobProgress]
    public var router: JobProgress
    /// Nil when run.json has no monolith entry.
    public var monolith: JobProgress?
    /// `eval/report.md` exists (evaluation writes it last, atomically).
    public var evalFinished: Bool
    /// Unix time the report was made.
    public var generatedAt: Double

    public init(run: String, folder: String, experts: [JobProgress], router: JobProgress, monolith: JobProgress?,
                evalFinished: Bool, generatedAt: Double = Date().timeIntervalSince1970) {
        self.run = run
        self.folder = folder
        self.numExperts = experts.count
        self.experts = experts
        self.router = router
        self.monolith = monolith
        self.evalFinished = evalFinished
        self.generatedAt = generatedAt
    }

    enum CodingKeys: String, CodingKey {
        case run, folder, numExperts = "num_experts", experts, router, monolith, evalFinished = "eval_finished"
        case generatedAt = "generated_at"
    }

    /// Experts in order, then the router, then the monolith.
    public var jobs: [JobProgress] { experts + [router] + (monolith.map { [$0] } ?? []) }

    /// Reads every job of the run at `layout` (run.json must exist).
    public static func read(_ layout: RunLayout, now: Date = Date()) throws -> RunProgress {
        read(layout, config: try layout.config(), now: now)
    }

    /// Reads every job of the run at `layout`, whose run.json is `config`.
    public static func read(_ layout: RunLayout, config: RunConfig, now: Date = Date()) -> RunProgress {
        var experts = (0..<config.numExperts).map {
            JobProgress.read(name: "expert_\($0)", folder: layout.expert($0), totalSteps: config.experts[$0].steps,
                             now: now)
        }
        var router = JobProgress.read(name: "router", folder: layout.router, totalSteps: config.router.steps, now: now)
        router.heldOutAccuracy = RouterCheckpoint.heldOutAccuracy(in: layout.router)
        var monolith = config.monolith.map {
            JobProgress.read(name: "monolith", folder: layout.monolith, totalSteps: $0.steps, now: now)
        }
        let evalDone = FileManager.default.fileExists(atPath: layout.evalReport.path)
        let stale = layout.staleJobs(config)
        for k in experts.indices { experts[k].stale = stale[experts[k].name] }
        router.stale = stale[router.name]
        monolith?.stale = stale["monolith"]
        return RunProgress(run: config.name, folder: layout.root.path, experts: experts, router: router,
                           monolith: monolith, evalFinished: evalDone, generatedAt: now.timeIntervalSince1970)
    }

    /// The report as JSON (sorted keys, one object).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The report as a text table, one line per job.
    public func table(now: Date = Date()) -> String {
        var rows: [[String]] = [["job", "state", "steps", "%", "loss", "img/s", "last checkpoint", "note"]]
        for j in jobs {
            var loss = j.lastLoss.map { String(format: "%.4f", $0) } ?? "–"
            if let a = j.heldOutAccuracy ?? j.accuracy {
                loss += String(format: " (acc %.1f%%", 100 * a) + (j.heldOutAccuracy != nil ? " held-out)" : ")")
            }
            let ckpt = j.lastCheckpointAt.map {
                "step \(j.lastCheckpointStep ?? 0), \(JobProgress.age(now.timeIntervalSince1970 - $0)) ago"
            } ?? "–"
            rows.append([j.name, j.state.rawValue.replacingOccurrences(of: "_", with: " ") + (j.stale != nil ? ", stale" : ""),
                         "\(j.step)/\(j.totalSteps)", String(format: "%.0f", 100 * j.fraction), loss,
                         j.imagesPerSecond.map { String(format: "%.1f", $0) } ?? "–", ckpt, j.stale ?? j.note ?? ""])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = "run \(run) (\(folder)), K = \(numExperts)\n"
        for r in rows {
            out += zip(r, widths).enumerated().map { i, p in
                i == r.count - 1 ? p.0 : p.0.padding(toLength: p.1, withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        return out
    }
}
