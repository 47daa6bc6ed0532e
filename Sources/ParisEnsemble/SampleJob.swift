import Foundation
import ParisData
import ParisImage
import ParisDiffusion
import ParisModels
import ParisRun
import Torch

/// `paris sample`: prompts → images through the run's mixture, written as
/// `<run>/samples/<name>/img_<i>.png` (i in prompt-major order: prompt p's n-th image is i = p·n + j),
/// `grid.png` (one row per prompt) and `trace.json` (`RoutingTrace`). The folder appears whole or not at all.
public struct SampleJob {
    /// The most images one `paris sample` call makes (prompts × images per prompt): 10,000. Every image of the
    /// call is kept in memory until the end (N × C × H × W floats: 120 MB for 10,000 32×32 RGB images), tiled into
    /// one grid.png and traced step by step in trace.json (steps × N × K weights), so N is bounded before the
    /// prompt list is expanded: `--n 10¹²` used to abort while building it. Make more images in several calls
    /// with different `--seed` and `--name`; FID-scale sampling is `paris eval`'s, which streams its batches.
    public static let maxImages = 10_000

    public var run: RunLayout
    /// The output folder's name under `<run>/samples/`.
    public var name: String
    public var prompts: [String]
    /// Images per prompt.
    public var imagesPerPrompt: Int
    public var strategy: RoutingStrategy
    public var sampler: SamplerConfig
    /// Image i uses noise seed `seed + i`; `sample1` draws from `seed`.
    public var seed: UInt64
    public var batchSize: Int
    /// Throw instead of skipping an expert that is missing or fails to load.
    public var strict: Bool
    /// Replace an existing `samples/<name>/`.
    public var overwrite: Bool
    public var device: Device
    /// Remote experts for some slots, beside `<run>/mixture.json`'s (`RunMixture.load`).
    public var remotes: [RemoteExpertConfig] = []

    public init(run: RunLayout, name: String, prompts: [String], imagesPerPrompt: Int = 1,
                strategy: RoutingStrategy = .top2, sampler: SamplerConfig, seed: UInt64 = 0, batchSize: Int = 16,
                strict: Bool = false, overwrite: Bool = false, device: Device = .auto) {
        self.run = run
        self.name = name
        self.prompts = prompts
        self.imagesPerPrompt = imagesPerPrompt
        self.strategy = strategy
        self.sampler = sampler
        self.seed = seed
        self.batchSize = batchSize
        self.strict = strict
        self.overwrite = overwrite
        self.device = device
    }

    /// What a finished job wrote.
    public struct Result {
        public let folder: URL
        public let images: [URL]
        public let grid: URL
        public let trace: URL
        public let warnings: [String]
    }

    /// Checks the settings before anything is loaded.
    public func validate() throws {
        guard !prompts.isEmpty else { throw EnsembleError("no prompts: give --prompt or --prompts-file") }
        guard imagesPerPrompt >= 1 else { throw EnsembleError("images per prompt must be ≥ 1, not \(imagesPerPrompt)") }
        guard batchSize >= 1 else { throw EnsembleError("batch size must be ≥ 1, not \(batchSize)") }
        guard imagesPerPrompt <= Self.maxImages / prompts.count else {
            let n = prompts.count.multipliedReportingOverflow(by: imagesPerPrompt)
            throw EnsembleError("\(prompts.count) prompts × \(imagesPerPrompt) images per prompt = "
                + (n.overflow ? "more than \(Int.max)" : "\(n.partialValue)")
                + " images, more than the \(Self.maxImages) one call may make (SampleJob.maxImages); "
                + "sample in several calls with different --seed and --name")
        }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw EnsembleError("sample name '\(name)' must be a plain folder name")
        }
        try sampler.validate()
    }

    /// `paris sample`: `run(encode:log:)` with the MiniLM prompt encoder from the package cache `cache`.
    public func run(packageCache cache: URL, log: @escaping (String) -> Void = { _ in }) throws -> Result {
        try validate()
        return try run(encode: try PromptEncoding.miniLM(cache: cache, device: device, log: log), log: log)
    }

    /// Loads the mixture, samples every prompt `imagesPerPrompt` times in batches and writes the files.
    public func run(encode: PromptEncoder, log: (String) -> Void = { _ in }) throws -> Result {
        try validate()
        let fm = FileManager.default
        let folder = run.samples.appendingPathComponent(name)
        let exists = EnsembleError("\(folder.path) already exists; choose another --name or pass --force")
        // Fail fast before sampling; the check that counts is the atomic move at the end (another job may take the
        // name meanwhile). An existing folder is never touched before the new one is complete.
        if !overwrite && fm.fileExists(atPath: folder.path) { throw exists }
        let loaded = try RunMixture.load(run: run, device: device, strict: strict,
                                         requireRouter: strategy.needsRouter, remotes: remotes, log: log)
        try strategy.validate(numExperts: loaded.mixture.numExperts)
        var oracleMap: CaptionClusters? = nil
        if strategy == .oracle {
            let config = try run.config()
            oracleMap = try CaptionClusters.read(partition: run.partition(config), numClusters: config.numExperts)
            _ = try oracleMap!.oracle(for: prompts)  // fail before sampling when a prompt is unknown
        }
        var promptClusters: [String: Int] = [:]  // `prompt`: each distinct prompt's cluster, computed once
        if strategy == .prompt {
            let distinct = Array(Set(prompts)).sorted()
            let clusters = try PromptRouting.clusters(run: run, prompts: try encode(distinct, loaded.textLength),
                                                      mixture: loaded.mixture)
            promptClusters = Dictionary(uniqueKeysWithValues: zip(distinct, clusters))
            log("prompt routing: " + distinct.map { "'\($0)' → expert \(promptClusters[$0]!)" }.joined(separator: ", "))
        }
        let sampler = try MixtureSampler(config: self.sampler, strategy: strategy)
        let all = prompts.flatMap { Array(repeating: $0, count: imagesPerPrompt) }
        var outputs: [Tensor] = []
        var trace: RoutingTrace? = nil
        for start in stride(from: 0, to: all.count, by: batchSize) {
            let end = min(all.count, start + batchSize)
            let batch = Array(all[start..<end])
            let seeds = (start..<end).map { seed &+ UInt64($0) }
            let cond = try encode(batch, loaded.textLength).to(device: device)
            let noise = try MixtureSampler.noise(seeds: seeds, channels: loaded.channels, size: loaded.imageSize,
                                                 device: device)
            let (x, t) = try sampler.sample(loaded.mixture, noise: noise, text: cond, prompts: batch, seeds: seeds,
                                            oracle: strategy == .prompt ? batch.map { promptClusters[$0]! }
                                                : try oracleMap?.oracle(for: batch),
                                            routingSeed: seed &+ UInt64(start) &* 0x9E37_79B9)
            outputs.append(try loaded.images(x).to(device: .cpu))  // latent experts: decoded
            if trace == nil { trace = t } else { try trace!.append(t) }
            if !loaded.stale.isEmpty { trace!.warnings = loaded.stale }
            log("sampled \(end)/\(all.count) images (\(strategy), \(self.sampler.steps) steps, cfg "
                + "\(self.sampler.guidanceScale))")
        }
        let images = try Tensor.cat(outputs, dim: 0)  // [N, C, H, W] in about [-1, 1] (decoded from latents)
        // Everything is written into a staging folder beside the target and moved onto its name in one step
        // (`AtomicFolder`): a job that fails leaves the old folder as it was and no staging folder; of two jobs on one
        // name without --force exactly one wins; with --force the old folder is swapped out only once the new one is
        // complete.
        let staging = try AtomicFolder.makeStaging(beside: folder)
        do {
            for i in 0..<images.size(0) {
                try Image(tensor: images.select(0, i), range: .minusOneToOne)
                    .writePNG(to: staging.appendingPathComponent("img_\(i).png"))
            }
            try ImageGrid.grid(Self.uint8(images), columns: imagesPerPrompt == 1 ? min(8, all.count) : imagesPerPrompt)
                .writePNG(to: staging.appendingPathComponent("grid.png"))
            try AtomicFile.write(try trace!.jsonData(), to: staging.appendingPathComponent("trace.json"))
            guard try AtomicFolder.publish(staging, to: folder, replace: overwrite) else { throw exists }
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
        let files = (0..<images.size(0)).map { folder.appendingPathComponent("img_\($0).png") }
        return Result(folder: folder, images: files, grid: folder.appendingPathComponent("grid.png"),
                      trace: folder.appendingPathComponent("trace.json"), warnings: loaded.warnings + loaded.stale.map { "warning: " + $0 })
    }

    /// Images in [-1, 1] [N, C, H, W] → uint8 [N, C, H, W], as `Image(tensor:)` rounds them.
    public static func uint8(_ x: Tensor) throws -> Tensor {
        try ((x.to(dtype: .float32) + 1.0) * 127.5).round().clamp(min: 0.0, max: 255.0).to(dtype: .uint8)
    }
}
