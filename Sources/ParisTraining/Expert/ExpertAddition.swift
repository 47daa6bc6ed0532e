import Foundation
import ParisData
import ParisModels
import ParisRun
import Torch

/// `paris run add-expert`: a K + 1-th expert for a run that has K, on new data, without touching the K experts.
///
/// The work happens in a staging run, `<run>/.add-expert/`, that is a complete K + 1 run: its `run.json` lists the
/// new expert, its partition is the run's with the new cluster added (`PartitionAddition.stage`: the existing shards
/// linked, not copied), and the new expert and the router train there. The new expert trains in isolation, on its
/// shard alone, as every expert does (or, for a contribution, arrives trained); then only the router is retrained,
/// from scratch, now for K + 1 classes, on all K + 1 shards. Until `commit`, the run itself is only read, so a
/// refusal (`discard`) or a crash leaves it as it was, and running the same command again resumes in the staging
/// run (both trainings resume from their checkpoints). `commit` then moves the new shard, expert and router in and
/// writes `run.json` last. The existing experts' weights are hashed before and after, and must not change.
public enum ExpertAddition {
    public static let stagingName = ".add-expert"

    /// Where the new expert comes from.
    public enum Source: Sendable {
        /// Trained here on the new shard, with the job settings of expert `like` (its seed moved on).
        case train(like: Int)
        /// A contributed expert folder (config.json + weights), already checked by its admission.
        case files(URL, note: String)
    }

    /// `<staging>/addition.json`: what is being added, so a rerun continues the same addition.
    public struct Plan: Codable, Sendable, Equatable {
        /// The new cluster's index: the run's K before.
        public var cluster: Int
        /// The K = 1 partition of the new data, as given.
        public var data: String
        public var note: String
        /// SHA-256 of each existing expert's weights file ("expert_0" → digest), taken before anything was done.
        public var expertHashes: [String: String]
        public var notes: [String]
        /// False for a contributed expert, which arrives trained.
        public var trainsExpert: Bool
    }

    /// The staging run, made or found again.
    public struct Staged: Sendable {
        public let run: RunLayout
        public let staging: RunLayout
        public let plan: Plan
    }

    /// Makes `<run>/.add-expert/` (or finds the one an interrupted call left for the same data): run.json for
    /// K + 1, the staged partition, and a contributed expert's files under `expert_K/`.
    public static func prepare(run: URL, data: URL, source: Source, log: (String) -> Void = { _ in }) throws -> Staged {
        let layout = RunLayout(run)
        let config = try layout.config()
        let staging = RunLayout(layout.root.appendingPathComponent(stagingName))
        let planURL = staging.root.appendingPathComponent("addition.json")
        let note: String
        switch source {
        case .train: note = "trained here"
        case .files(_, let n): note = n
        }
        if let bytes = FileManager.default.contents(atPath: planURL.path) {
            let plan = try JSONDecoder().decode(Plan.self, from: bytes)
            guard plan.data == data.path, plan.cluster == config.numExperts, plan.note == note else {
                throw RunError("\(staging.root.path) holds an unfinished addition of \(plan.data) as expert \(plan.cluster) "
                    + "(\(plan.note)); run that again to finish it, or remove the folder to start another")
            }
            log("resuming the addition of expert \(plan.cluster) in \(staging.root.path)")
            return Staged(run: layout, staging: staging, plan: plan)
        }
        let k = config.numExperts
        guard k + 1 <= RouterConfig.maxExperts else {
            throw RunError("the run has \(k) experts, the most a router takes (RouterConfig.maxExperts)")
        }
        let hashes = try expertHashes(layout, config)
        try? FileManager.default.removeItem(at: staging.root)  // an earlier attempt that never got to its plan
        var notes: [String] = []
        try PartitionAddition.stage(partition: layout.partition(config), adding: data,
                                    into: staging.partition(config), note: note, notes: &notes)
        var grown = config
        grown.numExperts = k + 1
        switch source {
        case .train(let like):
            var job = try config.expert(like)
            job.seed = (config.experts.map(\.seed).max() ?? 0) &+ 1
            grown.experts.append(job)
        case .files(let folder, _):
            let (model, checkpoint) = try ExpertCheckpoint.load(from: folder)
            var job = config.experts[0]
            job.steps = checkpoint.steps
            grown.experts.append(job)
            var published = checkpoint
            published.cluster = k
            published.shards = nil  // trained on the contributor's copy of the data, which this run does not hold
            try published.write(weights: try model.stateDict(), to: staging.expert(k))
            try JobStatusFile(state: .finished, step: checkpoint.steps, totalSteps: checkpoint.steps)
                .write(to: staging.expert(k))
        }
        try grown.write(to: staging.runJSON)
        var trains = true
        if case .files = source { trains = false }
        let plan = Plan(cluster: k, data: data.path, note: note, expertHashes: hashes, notes: notes, trainsExpert: trains)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(plan)), to: planURL)
        log("staged expert \(k) in \(staging.root.path)" + (notes.isEmpty ? "" : ": " + notes.joined(separator: "; ")))
        return Staged(run: layout, staging: staging, plan: plan)
    }

    /// Trains what the staging run still needs: the new expert (unless contributed), then the router for K + 1.
    /// Returns false when a session stopped early (a signal): run the same command again to resume.
    public static func train(_ staged: Staged, options: TrainOptions = .init(), log: (String) -> Void = { _ in }) throws -> Bool {
        let k = staged.plan.cluster
        if staged.plan.trainsExpert {
            log("expert \(k): training in isolation on shard \(k) alone")
            let expert = try ExpertTrainer.train(run: staged.staging.root, expert: k, options: options)
            guard expert.outcome != .stopped else { return false }
        }
        log("router: training for \(k + 1) experts on all \(k + 1) shards")
        let router = try RouterTrainer.train(run: staged.staging.root, options: options)
        return router.outcome != .stopped
    }

    /// Moves the staged addition into the run: the new shard (and held-out shard), the new expert, the new router
    /// (the old one removed), and run.json for K + 1, last. Refuses when an existing expert's weights changed since
    /// `prepare`, and checks them again afterwards. Removes the staging run.
    public static func commit(_ staged: Staged, log: (String) -> Void = { _ in }) throws {
        let fm = FileManager.default
        let (run, staging, k) = (staged.run, staged.staging, staged.plan.cluster)
        let config = try run.config()
        let grown = try staging.config()
        guard config.numExperts == k || config.numExperts == k + 1 else {
            throw RunError("the run has \(config.numExperts) experts now, the staged addition is of expert \(k)")
        }
        try checkHashes(staged, config, when: "before the addition was committed")
        guard ExpertCheckpoint.exists(in: staging.expert(k)), RouterCheckpoint.exists(in: staging.router) else {
            throw RunError("the staged expert \(k) or router is not trained yet; run the same command again")
        }
        try PartitionAddition.commit(staged: staging.partition(grown), into: run.partition(config))
        if fm.fileExists(atPath: staging.expert(k).path) {
            if fm.fileExists(atPath: run.expert(k).path) { try fm.removeItem(at: run.expert(k)) }  // an interrupted commit's
            try fm.moveItem(at: staging.expert(k), to: run.expert(k))
        }
        if fm.fileExists(atPath: staging.router.path) {
            let previous = run.root.appendingPathComponent(".router-replaced")
            try? fm.removeItem(at: previous)
            if fm.fileExists(atPath: run.router.path) { try fm.moveItem(at: run.router, to: previous) }
            try fm.moveItem(at: staging.router, to: run.router)
            try? fm.removeItem(at: previous)
        }
        try grown.write(to: run.runJSON)
        try checkHashes(staged, grown, when: "after the addition")
        try fm.removeItem(at: staging.root)
        log("expert \(k) added: run.json lists \(k + 1) experts, the router was retrained for them, the other "
            + "experts' weights are unchanged (SHA-256 checked before and after)")
    }

    /// Removes the staging run: the run is exactly as it was.
    public static func discard(_ staged: Staged) throws {
        try FileManager.default.removeItem(at: staged.staging.root)
    }

    /// `paris run add-expert --run R --data D`: prepare, train, commit. Returns false when stopped early.
    @discardableResult
    public static func run(run: URL, data: URL, like: Int? = nil, options: TrainOptions = .init(),
                           log: @escaping (String) -> Void = { _ in }) throws -> Bool {
        let config = try RunLayout(run).config()
        let staged = try prepare(run: run, data: data, source: .train(like: like ?? config.numExperts - 1), log: log)
        guard try train(staged, options: options, log: log) else {
            log("stopped; run the same command again to resume the addition")
            return false
        }
        try commit(staged, log: log)
        return true
    }

    /// SHA-256 of each trained expert's weights file.
    static func expertHashes(_ layout: RunLayout, _ config: RunConfig) throws -> [String: String] {
        var out: [String: String] = [:]
        for k in 0..<config.numExperts where ExpertCheckpoint.exists(in: layout.expert(k)) {
            out["expert_\(k)"] = try Checksum.sha256(file: layout.expert(k).appendingPathComponent(ExpertCheckpoint.weightsName))
        }
        return out
    }

    static func checkHashes(_ staged: Staged, _ config: RunConfig, when: String) throws {
        var now = try expertHashes(staged.run, config)
        now["expert_\(staged.plan.cluster)"] = nil
        guard now == staged.plan.expertHashes else {
            let changed = Set(now.keys).union(staged.plan.expertHashes.keys).filter { now[$0] != staged.plan.expertHashes[$0] }
            throw RunError("the weights of \(changed.sorted().joined(separator: ", ")) changed \(when); the addition "
                + "leaves existing experts untouched and stops here")
        }
    }
}
