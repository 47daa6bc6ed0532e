import Foundation
import ParisDiffusion
import ParisImage
import ParisModels
import Torch

/// `paris sample --release DIR`: prompts → images through a released Paris folder loaded in place
/// (`ParisRelease`), written as `<output>/img_<i>.png` (prompt-major: prompt p's j-th image is i = p·n + j),
/// `grid.png`, `trace.json` (`RoutingTrace`) and `latents.safetensors` (`latents` [N, C, h, w], the final x(0)
/// before decoding). The folder appears whole or not at all, and nothing is written when loading or sampling fails.
public struct ReleaseSampleJob {
    public var release: URL
    public var output: URL
    public var prompts: [String]
    public var imagesPerPrompt: Int
    public var strategy: RoutingStrategy
    public var steps: Int
    public var guidance: Double
    /// Image i uses noise seed `seed + i` (`FlowSampler.initialNoise`, as torch.manual_seed + randn).
    public var seed: UInt64
    public var batchSize: Int
    public var overwrite: Bool
    public var device: Device

    public init(release: URL, output: URL, prompts: [String], imagesPerPrompt: Int = 1, strategy: RoutingStrategy = .top2,
                steps: Int = 50, guidance: Double = 7.5, seed: UInt64 = 0, batchSize: Int = 4, overwrite: Bool = false,
                device: Device = .auto) {
        self.release = release
        self.output = output
        self.prompts = prompts
        self.imagesPerPrompt = imagesPerPrompt
        self.strategy = strategy
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.batchSize = batchSize
        self.overwrite = overwrite
        self.device = device
    }

    /// What a finished job wrote.
    public struct Result {
        public let folder: URL
        public let images: [URL]
        public let grid: URL, trace: URL, latents: URL
        public let notes: [String]
    }

    /// Checks the settings before anything is loaded.
    public func validate() throws {
        guard !prompts.isEmpty else { throw EnsembleError("no prompts: give --prompt or --prompts-file") }
        guard imagesPerPrompt >= 1 else { throw EnsembleError("images per prompt must be ≥ 1, not \(imagesPerPrompt)") }
        guard batchSize >= 1 else { throw EnsembleError("batch size must be ≥ 1, not \(batchSize)") }
        guard imagesPerPrompt <= SampleJob.maxImages / prompts.count else {
            throw EnsembleError("\(prompts.count) prompts × \(imagesPerPrompt) images per prompt is more than the "
                + "\(SampleJob.maxImages) one call may make (SampleJob.maxImages)")
        }
        guard !strategy.usesGivenClusters else {
            throw EnsembleError("--strategy \(strategy) needs a run's partition; a release routes with its router "
                + "(top1, top2, topk:N, full, sample1)")
        }
        try ParisRelease.samplerConfig(steps: steps, guidance: guidance).validate()
    }

    /// Loads the release, samples every prompt `imagesPerPrompt` times in batches and writes the folder.
    public func run(log: (String) -> Void = { _ in }) throws -> Result {
        try validate()
        let fm = FileManager.default
        let exists = EnsembleError("\(output.path) already exists; choose another --output or pass --force")
        if !overwrite && fm.fileExists(atPath: output.path) { throw exists }
        let model = try ParisRelease.load(from: release, device: device, log: log)
        for note in model.notes { log("note: " + note) }
        let all = prompts.flatMap { Array(repeating: $0, count: imagesPerPrompt) }
        var latents: [Tensor] = [], images: [Tensor] = []
        var trace: RoutingTrace? = nil
        for start in stride(from: 0, to: all.count, by: batchSize) {
            let end = min(all.count, start + batchSize)
            let seeds = (start..<end).map { seed &+ UInt64($0) }
            let noise = try MixtureSampler.noise(seeds: seeds, channels: model.latentChannels, size: model.latentSize)
            let g = try model.generate(prompts: Array(all[start..<end]), noise: noise, strategy: strategy, steps: steps,
                                       guidance: guidance, seeds: seeds, routingSeed: seed &+ UInt64(start) &* 0x9E37_79B9)
            latents.append(try g.latents.to(device: .cpu))
            images.append(try g.images.to(device: .cpu))
            if trace == nil { trace = g.trace } else { try trace!.append(g.trace) }
            log("sampled \(end)/\(all.count) images (\(strategy), \(steps) steps, cfg \(guidance))")
        }
        let x = try Tensor.cat(images, dim: 0)  // [N, 3, H, W] in about [−1, 1]
        let staging = try AtomicFolder.makeStaging(beside: output)
        do {
            for i in 0..<x.size(0) {
                try Image(tensor: x.select(0, i), range: .minusOneToOne)
                    .writePNG(to: staging.appendingPathComponent("img_\(i).png"))
            }
            try ImageGrid.grid(SampleJob.uint8(x), columns: imagesPerPrompt == 1 ? min(8, all.count) : imagesPerPrompt)
                .writePNG(to: staging.appendingPathComponent("grid.png"))
            try AtomicFile.write(try trace!.jsonData(), to: staging.appendingPathComponent("trace.json"))
            try SafeTensors.save(["latents": try Tensor.cat(latents, dim: 0)],
                                 to: staging.appendingPathComponent("latents.safetensors"),
                                 metadata: ["source": "paris sample --release", "latent_scale": "\(ParisRelease.latentScale)"])
            guard try AtomicFolder.publish(staging, to: output, replace: overwrite) else { throw exists }
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
        return Result(folder: output, images: (0..<x.size(0)).map { output.appendingPathComponent("img_\($0).png") },
                      grid: output.appendingPathComponent("grid.png"), trace: output.appendingPathComponent("trace.json"),
                      latents: output.appendingPathComponent("latents.safetensors"), notes: model.notes)
    }
}
