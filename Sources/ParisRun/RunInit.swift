import Foundation
import ParisModels

/// `paris run init`: creates a run folder with its `run.json`, from a preset or a complete run.json given as a file.
/// It does not partition the data (that is `paris partition`).
public enum RunInit {
    /// What to create.
    public struct Options: Sendable {
        public var run: URL
        /// The dataset folder (stored as an absolute path).
        public var dataset: String?
        /// K; required with a preset, checked against the file's `num_experts` with a config file.
        public var numExperts: Int?
        /// A run preset name (`cpu-tiny`, `cpu-small`, `gpu-b2`); used when `configFile` is nil.
        public var preset: String
        /// A complete run.json to copy (validated).
        public var configFile: URL?
        /// Seed of expert 0 (expert k gets seed + k, the monolith seed + 1000, the router seed + 2000).
        public var seed: UInt64
        /// Replace an existing run.json.
        public var force: Bool

        public init(run: URL, dataset: String?, numExperts: Int?, preset: String = "cpu-tiny", configFile: URL? = nil,
                    seed: UInt64 = 0, force: Bool = false) {
            self.run = run
            self.dataset = dataset
            self.numExperts = numExperts
            self.preset = preset
            self.configFile = configFile
            self.seed = seed
            self.force = force
        }
    }

    /// Writes `<run>/run.json` and returns it.
    @discardableResult
    public static func create(_ o: Options) throws -> RunConfig {
        let layout = RunLayout(o.run)
        let fm = FileManager.default
        if fm.fileExists(atPath: layout.runJSON.path) && !o.force {
            throw RunError("\(layout.runJSON.path) already exists; pass --force to replace it (its experts' "
                + "checkpoints stay; use `paris train expert --restart` to discard those)")
        }
        let dataset = o.dataset.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        var config: RunConfig
        if let file = o.configFile {
            config = try RunConfig.load(file)
            if let k = o.numExperts, k != config.numExperts {
                throw RunError("--k \(k) disagrees with \(file.path), which has num_experts \(config.numExperts)")
            }
            if let dataset { config.dataset = dataset }
        } else {
            guard let k = o.numExperts else { throw RunError("--k (the number of experts) is required with a preset") }
            guard k >= 1 else { throw RunError("--k must be at least 1, not \(k)") }
            guard k <= RouterConfig.maxExperts else {
                throw RunError("--k must be ≤ \(RouterConfig.maxExperts) (RouterConfig.maxExperts), not \(k)")
            }
            guard let dataset else { throw RunError("--data (the dataset folder) is required with a preset") }
            config = try RunPreset.named(o.preset).config(name: layout.root.lastPathComponent, dataset: dataset,
                                                          numExperts: k, seed: o.seed)
        }
        try config.validate()
        try checkDataset(config, run: layout)
        try fm.createDirectory(at: layout.root, withIntermediateDirectories: true)
        try config.write(to: layout.runJSON)
        return config
    }

    /// The images a dataset folder lists: the non-blank lines of its `metadata.jsonl` (before any split filter or
    /// unreadable file is taken out, so an upper bound on what a partition of it can hold). Throws when the folder
    /// does not exist or has no metadata.jsonl.
    public static func datasetImageCount(_ folder: URL) throws -> Int {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw RunError("\(folder.path): no such dataset folder (import one with `paris data import`)")
        }
        let metadata = folder.appendingPathComponent("metadata.jsonl")
        guard let data = FileManager.default.contents(atPath: metadata.path) else {
            throw RunError("\(metadata.path): missing; a dataset folder needs a metadata.jsonl "
                + "(make one with `paris data import`)")
        }
        return data.split(separator: 10).filter { line in line.contains { ![9, 13, 32].contains($0) } }.count
    }

    /// The run's dataset must exist, and hold enough images for every expert to have at least one batch of its
    /// own shard: the shards are disjoint, so the experts' batch sizes together (K·B for K experts of batch B)
    /// cannot exceed the dataset's images. `run init --k 100000` on 5.7k images used to be accepted.
    static func checkDataset(_ config: RunConfig, run: RunLayout) throws {
        let folder = config.dataset.hasPrefix("/") ? URL(fileURLWithPath: config.dataset)
            : run.root.appendingPathComponent(config.dataset)
        let images = try datasetImageCount(folder)
        let needed = config.experts.reduce(0) { $0 + $1.batchSize }
        guard needed <= images else {
            let batch = config.experts.map(\.batchSize).max() ?? 1
            let fit = images / batch
            throw RunError("\(config.numExperts) experts need at least \(needed) images (one batch of their own "
                + "shard each: batch_size \(batch)), but \(folder.path) lists \(images); "
                + (fit >= 1 ? "use K ≤ \(fit) or a smaller batch_size" : "use a smaller batch_size"))
        }
    }

    /// The commands that follow `run init`, for a person to copy.
    public static func nextSteps(_ config: RunConfig, run: String) -> [String] {
        let k = config.numExperts
        return [
            "paris partition --data \(config.dataset) --out \(run)/\(config.partition) --k \(k)",
            "paris train expert --run \(run) --expert 0    # … up to \(k - 1); or a Slurm array: sbatch --array=0-\(k - 1)",
            "paris train router --run \(run)",
            "paris train monolith --run \(run)    # optional: the compute-matched single-model baseline",
        ]
    }
}
