import Foundation
import ParisTraining

/// How far one training stage has come, read from the run folder (never from the scheduler).
public struct StageProgress: Sendable, Equatable, Codable {
    /// Steps behind the newest published checkpoint (nil: none yet).
    public var steps: Int?
    /// Steps run.json asks for.
    public var totalSteps: Int
    /// The stage wrote its finished marker, or its checkpoint has all the steps.
    public var finished: Bool
    /// The newest step in its metrics.jsonl (logged every few steps, before the first checkpoint too).
    public var loggedSteps: Int?

    public init(steps: Int?, totalSteps: Int, finished: Bool, loggedSteps: Int? = nil) {
        self.steps = steps
        self.totalSteps = totalSteps
        self.finished = finished
        self.loggedSteps = loggedSteps
    }

    /// "12/20 steps", "4/20 steps logged, no checkpoint yet", "not started", "finished".
    public var describe: String {
        guard let steps else {
            if finished { return "finished" }
            return loggedSteps.map { "\($0)/\(totalSteps) steps logged, no checkpoint yet" } ?? "not started"
        }
        return "\(steps)/\(totalSteps) steps"
    }

    enum CodingKeys: String, CodingKey { case steps, totalSteps = "total_steps", finished, loggedSteps = "logged_steps" }
}

/// Training progress of every stage of a run: what `--resume` skips and what `paris status` shows next to the
/// scheduler state.
public struct RunProgress: Sendable, Equatable {
    public var experts: [StageProgress]
    public var router: StageProgress
    /// `eval/report.md` exists.
    public var evalFinished: Bool

    public init(experts: [StageProgress], router: StageProgress, evalFinished: Bool) {
        self.experts = experts
        self.router = router
        self.evalFinished = evalFinished
    }

    /// Names of the finished marker files a trainer may write into its output folder.
    public static let finishedMarkers = ["finished", "FINISHED", "state/finished", "state/finished.json", "done"]

    /// Reads the run folder: an expert (or the router) is finished when its `status.json` says so, when its
    /// folder holds a finished marker, or when a complete checkpoint's `config.json` records at least the steps
    /// run.json asks for.
    public static func read(_ run: RunLayout, config: RunConfig) -> RunProgress {
        let experts = (0..<config.numExperts).map { k in
            stage(run.expert(k), total: config.experts[k].steps, complete: ExpertCheckpoint.exists(in: run.expert(k)))
        }
        let router = stage(run.router, total: config.router.steps, complete: RouterCheckpoint.exists(in: run.router))
        let evalDone = FileManager.default.fileExists(atPath: run.eval.appendingPathComponent("report.md").path)
        return RunProgress(experts: experts, router: router, evalFinished: evalDone)
    }

    static func stage(_ folder: URL, total: Int, complete: Bool) -> StageProgress {
        let fm = FileManager.default
        let marker = finishedMarkers.contains { fm.fileExists(atPath: folder.appendingPathComponent($0).path) }
        var steps: Int?
        if let data = fm.contents(atPath: folder.appendingPathComponent("config.json").path),
           let dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            steps = dict["steps"] as? Int
        }
        var done = marker || (complete && (steps ?? 0) >= total)
        // The trainer's own status.json is the best source: its step is current and `finished` is authoritative.
        if let status = try? JobStatusFile.read(from: folder) {
            steps = status.step
            done = done || status.state == .finished
        }
        let logged = MetricsFile.read(folder.appendingPathComponent(MetricsFile.fileName)).last
            .flatMap { MetricsFile.number($0["step"]) }.map { Int($0) }
        return StageProgress(steps: steps, totalSteps: total, finished: done, loggedSteps: logged)
    }
}
