import Foundation
import ParisImage
import ParisRun
import ParisData
import ParisDiffusion
import ParisModels
import Torch

/// The sample grids a training job writes to `<job>/samples/step_<N>.png` (with `step_<N>.json` listing the
/// captions in grid order): one image per caption, sampled from the EMA weights with Euler steps and
/// classifier-free guidance through `ExpertVelocity` and `ODESolver.integrate`, the path `paris sample` and
/// `paris eval` take (the expert's null text as the unconditional input; DDPM ε experts through the ε→v
/// conversion). The noise is the same at every step (seeded), so successive grids show the training progress.
/// Sampling leaves libtorch's generator state as it found it, so grids never change the training trajectory.
public final class SampleGrid {
    public let config: ParisExpertConfig
    public let objective: Objective
    public let device: Device
    public let seed: UInt64
    public var sampler: SamplerConfig
    /// Captions (text, row of the shard's text embeddings), at most 8.
    public let captions: [(text: String, row: Int)]
    private let text: Tensor      // [n, T, D] float32 on device
    private let textMask: Tensor  // [n, T] bool on device
    private var model: ParisExpert?
    /// A latent expert's autoencoder: the grid shows its decoded samples (latents / scaling factor, decoded).
    public var decoder: AutoencoderKL?

    public init(config: ParisExpertConfig, objective: Objective, shard: ShardPart, device: Device, seed: UInt64,
                count: Int = 8, sampler: SamplerConfig? = nil) throws {
        self.config = config
        self.objective = objective
        self.device = device
        self.seed = seed
        self.sampler = try sampler ?? SamplerConfig(solver: .euler, steps: 25, guidanceScale: 2)
        captions = try TrainingData.sampleCaptions(shard, count: count)
        guard !captions.isEmpty else { throw RunError("the shard has no captions to sample") }
        let rows = try Tensor(captions.map { Int64($0.row) })
        text = try shard.textEmbeddings.indexSelect(dim: 0, index: rows).to(device: device, dtype: .float32)
        textMask = try shard.textMask.indexSelect(dim: 0, index: rows).to(device: device)
    }

    /// Samples with `ema`'s weights and writes `<folder>/step_<step>.png` and `.json`; returns the PNG's URL.
    @discardableResult
    public func write(ema: EMA, step: Int, to folder: URL) throws -> URL {
        try write(step: step, to: folder) { try sample(ema: ema) }
    }

    /// Samples with `model` as it is (in eval mode for the grid, then back to training mode) and writes the grid:
    /// a LoRA trainer's frozen base with its adapters.
    @discardableResult
    public func write(model: ParisExpert, step: Int, to folder: URL) throws -> URL {
        try write(step: step, to: folder) {
            model.train(false)
            defer { model.train(true) }
            return try sample(model: model)
        }
    }

    private func write(step: Int, to folder: URL, _ draw: () throws -> Tensor) throws -> URL {
        var samples = try preservingRNG(device: device, draw)  // [n, C, H, W] in ~[-1, 1] (or latents)
        if let decoder {
            samples = try withNoGrad { try decoder.decode(try decoder.unscaledLatents(samples)) }  // [n, 3, H·f, W·f]
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent("step_\(step).png")
        try Self.grid(samples, columns: 4).writePNG(to: url)
        let meta: [String: Any] = ["step": step, "captions": captions.map(\.text), "columns": 4,
                                   "sampler": ["solver": sampler.solver.rawValue, "steps": sampler.steps,
                                               "guidance_scale": sampler.guidanceScale], "seed": seed]
        try JSONObject.write(meta, to: folder.appendingPathComponent("step_\(step).json"))
        return url
    }

    /// The samples [n, C, H, W] for the captions, from `ema`'s weights.
    public func sample(ema: EMA) throws -> Tensor {
        let model = try self.model ?? ParisExpert(config, device: device)
        self.model = model
        try ema.copy(to: model)
        model.train(false)
        return try sample(model: model)
    }

    /// The samples [n, C, H, W] for the captions, from `model` in the mode it is in.
    public func sample(model: ParisExpert) throws -> Tensor {
        let velocity = try ExpertVelocity(model, objective: objective)  // what `paris sample` calls per expert
        let condition = try TextCondition(tokens: text, mask: textMask)  // [n, T, D], [n, T]
        let noise = try FlowSampler.initialNoise(shape: [captions.count, config.inChannels, config.inputSize,
                                                         config.inputSize], seed: seed, device: device)
        let s = sampler.guidanceScale
        return try sampler.solver.integrate(noise, times: sampler.times()) { x, t in
            try velocity(x, FlowPath.networkTime(t, batch: x.size(0), device: x.device), condition, scale: s)
        }
    }

    /// Tiles images [n, C, H, W] in [-1, 1] into a grid with `columns` columns and 2-pixel white gaps, upscaled
    /// (nearest) to at least 64 pixels per image. 4-channel latents show their first 3 channels.
    public static func grid(_ images: Tensor, columns: Int) throws -> Image {
        var x = try images.detach().to(device: .cpu, dtype: .float32).clamp(min: -1.0, max: 1.0)
        if x.size(1) == 2 { x = try x.slice(1, 0, 1) }
        if x.size(1) >= 4 { x = try x.slice(1, 0, 3) }
        let n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3)
        let f = max(1, (64 + h - 1) / h)
        if f > 1 {
            // nearest upscale: [n, C, H, W] → [n, C, H, f, W, f] → [n, C, H·f, W·f]
            x = try x.unsqueeze(3).unsqueeze(5).expand([n, c, h, f, w, f]).reshape([n, c, h * f, w * f])
        }
        let cols = max(1, min(columns, n)), rows = (n + cols - 1) / cols
        if rows * cols > n {
            x = try Tensor.cat([x, Tensor.ones([rows * cols - n, c, h * f, w * f])], dim: 0)
        }
        let ph = h * f + 2, pw = w * f + 2
        // [rows·cols, C, H', W'] padded by 1 on each side → [rows, cols, C, H'+2, W'+2] → [C, rows·(H'+2), cols·(W'+2)]
        let padded = try x.pad([1, 1, 1, 1], value: 1)
        let tiled = try padded.reshape([rows, cols, c, ph, pw]).permute([2, 0, 3, 1, 4]).reshape([c, rows * ph, cols * pw])
        return try Image(tensor: tiled, range: .minusOneToOne)
    }
}

/// Runs `body` and restores libtorch's generator states (CPU, and `device`'s when CUDA) afterwards.
func preservingRNG<R>(device: Device, _ body: () throws -> R) throws -> R {
    let cpu = try Runtime.rngState()
    let cuda = device.isCUDA ? try Runtime.rngState(device: device) : nil
    defer {
        try? Runtime.setRNGState(cpu)
        if let cuda { try? Runtime.setRNGState(cuda, device: device) }
    }
    return try body()
}
