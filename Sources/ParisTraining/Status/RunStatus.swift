import Foundation
import ParisData
import Torch

/// One job's state, read from its folder's files alone (`status.json`, `metrics.jsonl`, `state/`, the final
/// weights), so it works on any machine that sees the run folder, while the job runs elsewhere.
public struct JobSummary: Codable, Sendable, Equatable {
    /// "expert_0" … , "router", "monolith".
    public var name: String
    public var folder: String
    public var state: JobState
    /// Steps done (the newest of status.json, metrics.jsonl and the checkpoints); 0 when nothing ran.
    public var step: Int
    public var totalSteps: Int
    public var lastLoss: Double?
    public var imagesPerSecond: Double?
    /// The router's training accuracy in the last log line.
    public var accuracy: Double?
    /// The router's held-out accuracy from eval.json.
    public var heldOutAccuracy: Double?
    public var lastCheckpointStep: Int?
    /// Unix time of the newest checkpoint.
    public var lastCheckpointAt: Double?
    /// Unix time of the newest write to status.json or metrics.jsonl.
    public var updatedAt: Double?
    /// Why the state is what it is, when not obvious ("no update for 5 min: the process is gone"), or the error.
    public var note: String?

    enum CodingKeys: String, CodingKey {
        case name, folder, state, step, totalSteps = "total_steps", lastLoss = "last_loss"
        case imagesPerSecond = "images_per_s", accuracy, heldOutAccuracy = "held_out_accuracy"
        case lastCheckpointStep = "last_checkpoint_step", lastCheckpointAt = "last_checkpoint_at"
        case updatedAt = "updated_at", note
    }

    /// Progress in 0…1.
    public var fraction: Double { totalSteps > 0 ? min(1, Double(step) / Double(totalSteps)) : 0 }
}

/// Every job of a run: what `paris status` prints, and what a scheduler view (Slurm) can extend with its own
/// columns.
public struct RunStatusReport: Codable, Sendable, Equatable {
    public var run: String
    public var folder: String
    public var numExperts: Int
    /// Experts in order, then the router, then the monolith (when run.json has one).
    public var jobs: [JobSummary]
    /// Unix time the report was made.
    public var generatedAt: Double

    enum CodingKeys: String, CodingKey {
        case run, folder, numExperts = "num_experts", jobs, generatedAt = "generated_at"
    }
}

/// Builds `RunStatusReport`s and renders them as a table or JSON.
public enum RunStatus {
    /// A job whose files changed within this many seconds counts as running.
    public static let runningWindow: TimeInterval = 60

    /// Summarises the run at `folder` (run.json must exist); `now` is injectable for tests.
    public static func report(run folder: URL, now: Date = Date()) throws -> RunStatusReport {
        let layout = RunLayout(folder)
        let config = try layout.config()
        var jobs: [JobSummary] = []
        for k in 0..<config.numExperts {
            jobs.append(summarize(name: "expert_\(k)", folder: layout.expert(k), totalSteps: config.experts[k].steps,
                                  publishedSteps: publishedSteps(layout.expert(k)), now: now))
        }
        var router = summarize(name: "router", folder: layout.router, totalSteps: config.router.steps,
                               publishedSteps: publishedSteps(layout.router), now: now)
        if let data = FileManager.default.contents(atPath: layout.router.appendingPathComponent(RouterEvaluation.jsonName).path),
           let eval = try? JSONDecoder().decode(RouterEvaluation.self, from: data) {
            router.heldOutAccuracy = eval.accuracy
        }
        jobs.append(router)
        if let m = config.monolith {
            jobs.append(summarize(name: "monolith", folder: layout.monolith, totalSteps: m.steps,
                                  publishedSteps: publishedSteps(layout.monolith), now: now))
        }
        return RunStatusReport(run: config.name, folder: layout.root.path, numExperts: config.numExperts, jobs: jobs,
                               generatedAt: now.timeIntervalSince1970)
    }

    /// The `steps` of a job's published weights (`config.json` beside the safetensors), nil when there are none.
    /// Experts republish at every checkpoint, so this is the step of the newest weights, not a "done" flag.
    public static func publishedSteps(_ folder: URL) -> Int? {
        let url = folder.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        return dict["steps"] as? Int
    }

    /// One job's summary from the files in `folder`; `publishedSteps`: see `publishedSteps(_:)`.
    public static func summarize(name: String, folder: URL, totalSteps: Int, publishedSteps: Int?,
                                 now: Date = Date()) -> JobSummary {
        var s = JobSummary(name: name, folder: folder.path, state: .notStarted, step: 0, totalSteps: totalSteps)
        let fm = FileManager.default
        guard fm.fileExists(atPath: folder.path) else { return s }

        let metricsURL = folder.appendingPathComponent(MetricsFile.fileName)
        let records = MetricsFile.read(metricsURL)
        if let last = records.last {
            s.step = max(s.step, MetricsFile.number(last["step"]).map { Int($0) } ?? 0)
            s.lastLoss = MetricsFile.number(last["loss"])
            s.imagesPerSecond = MetricsFile.number(last["images_per_s"] ?? last["img_per_s"] ?? last["images_per_sec"])
            s.accuracy = MetricsFile.number(last["accuracy"])
        }
        var updated = modificationTime(metricsURL)

        // The newest step folder whose state.json names its step (a complete checkpoint; no tensor checks).
        let store = CheckpointStore(folder: folder.appendingPathComponent("state"))
        for ck in store.steps() {
            let stateURL = store.folder.appendingPathComponent(CheckpointStore.name(step: ck))
                .appendingPathComponent(CheckpointStore.stateName)
            guard let d = fm.contents(atPath: stateURL.path),
                  let obj = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
                  obj["step"] as? Int == ck else { continue }
            s.lastCheckpointStep = ck
            s.step = max(s.step, ck)
            s.lastCheckpointAt = modificationTime(stateURL)
            break
        }

        var status: JobStatusFile?
        do { status = try JobStatusFile.read(from: folder) } catch { s.note = "\(error)" }
        if let st = status {
            s.step = max(s.step, st.step)
            updated = max(updated ?? 0, st.updatedAt)
        }
        s.updatedAt = updated
        let fresh = updated.map { now.timeIntervalSince1970 - $0 <= runningWindow } ?? false
        let age = updated.map { Self.age(now.timeIntervalSince1970 - $0) } ?? "?"

        switch status?.state {
        case .finished?:
            s.state = .finished
        case .failed?:
            s.state = .failed
            s.note = status?.error
        case .stopped?:
            s.state = .stopped
            s.note = "stopped at step \(s.step); run the job again to resume"
        case .running?:
            s.state = fresh ? .running : .stopped
            if !fresh { s.note = "no update for \(age): the process is gone (killed?); run the job again to resume" }
        case .notStarted?, nil:
            if let p = publishedSteps, p >= totalSteps {
                s.step = max(s.step, p)
                s.state = .finished
            } else if fresh {
                s.state = .running
            } else if !records.isEmpty || s.lastCheckpointStep != nil {
                s.state = .stopped
                s.note = "no update for \(age); run the job again to resume"
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

    /// The report as JSON (sorted keys, one object).
    public static func json(_ report: RunStatusReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }

    /// The report as a text table, one line per job, then the notes.
    public static func table(_ report: RunStatusReport, now: Date = Date()) -> String {
        var rows: [[String]] = [["job", "state", "steps", "%", "loss", "img/s", "last checkpoint", "note"]]
        for j in report.jobs {
            var loss = j.lastLoss.map { String(format: "%.4f", $0) } ?? "–"
            if let a = j.heldOutAccuracy ?? j.accuracy {
                loss += String(format: " (acc %.1f%%", 100 * a) + (j.heldOutAccuracy != nil ? " held-out)" : ")")
            }
            let ckpt = j.lastCheckpointAt.map { "step \(j.lastCheckpointStep ?? 0), \(age(now.timeIntervalSince1970 - $0)) ago" } ?? "–"
            rows.append([j.name, j.state.rawValue.replacingOccurrences(of: "_", with: " "), "\(j.step)/\(j.totalSteps)",
                         String(format: "%.0f", 100 * j.fraction), loss,
                         j.imagesPerSecond.map { String(format: "%.1f", $0) } ?? "–", ckpt, j.note ?? ""])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = "run \(report.run) (\(report.folder)), K = \(report.numExperts)\n"
        for r in rows {
            out += zip(r, widths).enumerated().map { i, p in
                i == r.count - 1 ? p.0 : p.0.padding(toLength: p.1, withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        return out
    }
}
