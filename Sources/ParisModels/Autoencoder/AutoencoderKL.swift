import Foundation
import Torch

/// diffusers' `AutoencoderKL`, the Stable Diffusion VAE (port of diffusers 0.42.1,
/// models/autoencoders/autoencoder_kl.py). An image x ∈ [−1, 1] of shape [B, in, H, W] maps to a Gaussian
/// posterior over latents [B, L, H/f, W/f] (f = `config.downsamplingFactor`, 8 for the SD VAE), and latents map
/// back to images:
///
///     moments = quant_conv(encoder(x))                  [B, 2L, H/f, W/f]   (quant_conv: 1×1, if use_quant_conv)
///     q(z | x) = DiagonalGaussianDistribution(moments)  mean, logvar ∈ [−30, 20], std = exp(0.5·logvar)
///     x̂ = decoder(post_quant_conv(z))                   [B, out, H, W]      (post_quant_conv: 1×1, if enabled)
///
/// Parameter names are diffusers' (`encoder.conv_in`, `encoder.down_blocks.N.resnets.M.conv1`,
/// `encoder.mid_block.attentions.0.to_q`, `quant_conv`, `post_quant_conv`, `decoder.up_blocks.N.upsamplers.0.conv`,
/// …), so `load` reads a diffusers `diffusion_pytorch_model.safetensors` strictly. The model has no dropout and
/// no buffers; autograd runs as the caller decides (wrap inference in `withNoGrad`).
///
/// Memory: `sliceSize` runs the encoder or decoder on that many samples at a time (diffusers' `enable_slicing`
/// uses 1), with the same result up to float32 rounding; `tiling` cuts large images or latents into overlapping
/// tiles whose seams are blended (diffusers' `enable_tiling`; the result differs from the untiled one, as in
/// diffusers).
public final class AutoencoderKL: Module {
    public let config: AutoencoderKLConfig
    public let encoder: VAEEncoder
    public let decoder: VAEDecoder
    /// 1×1, 2L → 2L; nil without `use_quant_conv`.
    public let quantConv: Conv2d?
    /// 1×1, L → L; nil without `use_post_quant_conv`.
    public let postQuantConv: Conv2d?
    public var isTraining = true

    /// Builds the model with PyTorch's default initialisation, creating layers in diffusers' order: after
    /// `Runtime.manualSeed(s)` the weights equal those of `torch.manual_seed(s); AutoencoderKL(**config)`.
    public init(_ config: AutoencoderKLConfig, dtype: DType = .float32, device: Device = .cpu) throws {
        try config.validate()
        self.config = config
        let latent = config.latentChannels
        encoder = try VAEEncoder(config, dtype: dtype, device: device)
        decoder = try VAEDecoder(config, dtype: dtype, device: device)
        quantConv = config.useQuantConv
            ? try Conv2d(2 * latent, 2 * latent, kernelSize: 1, dtype: dtype, device: device) : nil
        postQuantConv = config.usePostQuantConv
            ? try Conv2d(latent, latent, kernelSize: 1, dtype: dtype, device: device) : nil
    }

    public var children: [(String, any Module)] {
        var out: [(String, any Module)] = [("encoder", encoder), ("decoder", decoder)]
        if let quantConv { out.append(("quant_conv", quantConv)) }
        if let postQuantConv { out.append(("post_quant_conv", postQuantConv)) }
        return out
    }

    // MARK: encoding and decoding

    /// The posterior q(z | x) of images x: [B, in, H, W] (H and W multiples of f; values in [−1, 1] for the SD
    /// VAE) → mean, logvar, std over [B, L, H/f, W/f].
    /// - sliceSize: encode that many images at a time (nil: all at once); the same result up to float32 rounding.
    /// - tiling: encode images larger than a tile in overlapping tiles (see `AutoencoderKLTiling`).
    public func encode(_ x: Tensor, sliceSize: Int? = nil,
                       tiling: AutoencoderKLTiling? = nil) throws -> DiagonalGaussianDistribution {
        try check(x, channels: config.inChannels, "encode", "in_channels", "images")
        let f = config.downsamplingFactor
        guard x.size(2) % f == 0, x.size(3) % f == 0 else {
            let halvings = config.blockOutChannels.count - 1
            throw TorchError("AutoencoderKL.encode: the images are \(x.size(2))×\(x.size(3)) pixels, but their sides "
                                 + "must be multiples of \(f) (the encoder halves them \(halvings) times); pad or "
                                 + "resize them")
        }
        if let tiling { _ = try tiling.tileLatentSize(config) }
        let stacked = try sliced(x, sliceSize: sliceSize) { x in       // [B, 2L, H/f, W/f]
            if let tiling, x.size(2) > tiling.tileSampleSize || x.size(3) > tiling.tileSampleSize {
                return try tiledEncode(x, tiling)
            }
            return try moments(x)
        }
        return try DiagonalGaussianDistribution(stacked)
    }

    /// Images from latents z: [B, L, h, w] → [B, out, h·f, w·f].
    /// - sliceSize: decode that many latents at a time (nil: all at once); the same result up to float32 rounding.
    /// - tiling: decode latents larger than a tile in overlapping tiles (see `AutoencoderKLTiling`).
    public func decode(_ z: Tensor, sliceSize: Int? = nil, tiling: AutoencoderKLTiling? = nil) throws -> Tensor {
        try check(z, channels: config.latentChannels, "decode", "latent_channels", "latents")
        return try sliced(z, sliceSize: sliceSize) { z in
            if let tiling {
                let tile = try tiling.tileLatentSize(config)
                if z.size(2) > tile || z.size(3) > tile { return try tiledDecode(z, tiling) }
            }
            return try image(z)
        }
    }

    /// Encodes and decodes x: [B, in, H, W] → [B, out, H, W], through the posterior's mean, or through a sample
    /// with `samplePosterior` (ε from a CPU generator seeded with `seed`, as diffusers' `generator=`, or from
    /// libtorch's generator when `seed` is nil). `sliceSize` and `tiling` apply to both halves.
    public func callAsFunction(_ x: Tensor, samplePosterior: Bool = false, seed: UInt64? = nil, sliceSize: Int? = nil,
                               tiling: AutoencoderKLTiling? = nil) throws -> Tensor {
        let posterior = try encode(x, sliceSize: sliceSize, tiling: tiling)
        let z: Tensor                                                    // [B, L, H/f, W/f]
        if samplePosterior {
            z = try seed.map { try posterior.sample(seed: $0) } ?? posterior.sample()
        } else {
            z = posterior.mode()
        }
        return try decode(z, sliceSize: sliceSize, tiling: tiling)      // [B, out, H, W]
    }

    /// The diffusion model's latents from the VAE's: (z − shift_factor)·scaling_factor (SD: z·0.18215).
    public func scaledLatents(_ z: Tensor) throws -> Tensor {
        try (config.shiftFactor.map { try z - $0 } ?? z) * config.scalingFactor
    }

    /// The VAE's latents from the diffusion model's: latents / scaling_factor + shift_factor.
    public func unscaledLatents(_ latents: Tensor) throws -> Tensor {
        let z = try latents / config.scalingFactor
        return try config.shiftFactor.map { try z + $0 } ?? z
    }

    /// The posterior's moments of one untiled batch: x [B, in, H, W] → [B, 2L, H/f, W/f] (diffusers' `_encode`).
    func moments(_ x: Tensor) throws -> Tensor {
        let h = try encoder(x)                                           // [B, 2L, H/f, W/f]
        return try quantConv?(h) ?? h
    }

    /// The image of one untiled batch: z [B, L, h, w] → [B, out, h·f, w·f] (diffusers' `_decode`).
    func image(_ z: Tensor) throws -> Tensor {
        try decoder(try postQuantConv?(z) ?? z)
    }

    /// `body` on consecutive slices of `sliceSize` samples, concatenated (diffusers' `x.split(1)` loop).
    private func sliced(_ x: Tensor, sliceSize: Int?, _ body: (Tensor) throws -> Tensor) throws -> Tensor {
        guard let sliceSize else { return try body(x) }
        guard sliceSize > 0 else { throw TorchError("AutoencoderKL: sliceSize must be positive, got \(sliceSize)") }
        let n = x.size(0)
        guard n > sliceSize else { return try body(x) }
        let parts = try stride(from: 0, to: n, by: sliceSize).map { start in
            try body(try x.slice(0, start, min(start + sliceSize, n)))     // [≤ sliceSize, ...]
        }
        return try Tensor.cat(parts, dim: 0)
    }

    private func check(_ x: Tensor, channels: Int, _ method: String, _ key: String, _ what: String) throws {
        guard x.rank == 4, x.size(1) == channels, x.size(0) > 0, x.size(2) > 0, x.size(3) > 0 else {
            throw TorchError("AutoencoderKL.\(method) expects \(what) of shape [B, \(channels), H, W] (\(key) "
                                 + "\(channels)), got \(x.shape)")
        }
        let dtype = encoder.convIn.weight.dtype
        guard x.dtype == dtype else {
            throw TorchError("AutoencoderKL.\(method) expects \(dtype) \(what) (the model's dtype), got \(x.dtype)")
        }
    }

    // MARK: loading

    /// The model for `config` with the weights of a diffusers `diffusion_pytorch_model.safetensors`, loaded
    /// strictly: every tensor of the file used, none missing, every shape checked; an error names the file and
    /// every differing key. The deprecated attention names of older diffusers files (`query`, `key`, `value`,
    /// `proj_attn`) are renamed to `to_q`, `to_k`, `to_v`, `to_out.0` first, as diffusers does. Returned in eval
    /// mode.
    public static func load(weights url: URL, config: AutoencoderKLConfig, dtype: DType = .float32,
                            device: Device = .cpu) throws -> AutoencoderKL {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("AutoencoderKL weights \(url.path) do not exist")
        }
        let model = try AutoencoderKL(config, dtype: dtype, device: device)
        let tensors = renamingDeprecatedAttention(try SafeTensors.load(url).tensors)
        do { try model.loadStateDict(tensors) } catch let error as TorchError {
            throw TorchError("\(url.path): \(error.message)")
        }
        model.eval()
        return model
    }

    /// A diffusers model folder (the `vae/` of a pipeline): `config.json` and `diffusion_pytorch_model.safetensors`.
    public static func pretrained(directory: URL, dtype: DType = .float32,
                                  device: Device = .cpu) throws -> AutoencoderKL {
        let config = try AutoencoderKLConfig.load(from: directory.appendingPathComponent("config.json"))
        return try load(weights: directory.appendingPathComponent("diffusion_pytorch_model.safetensors"),
                        config: config, dtype: dtype, device: device)
    }

    /// diffusers' `_fix_state_dict_keys_on_load`: `<mid block>.attentions.0.{query,key,value,proj_attn}.*` →
    /// `to_q`, `to_k`, `to_v`, `to_out.0` in both mid blocks; other keys unchanged.
    static func renamingDeprecatedAttention(_ tensors: [String: Tensor]) -> [String: Tensor] {
        let renames = [("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0")]
        var out = tensors
        for block in ["encoder.mid_block.attentions.0.", "decoder.mid_block.attentions.0."] {
            for (old, new) in renames {
                for suffix in ["weight", "bias"] {
                    if let t = out.removeValue(forKey: "\(block)\(old).\(suffix)") {
                        out["\(block)\(new).\(suffix)"] = t
                    }
                }
            }
        }
        return out
    }
}

/// The encoder's posterior q(z | x) = N(mean, diag(σ²)), diffusers' `DiagonalGaussianDistribution`. From the
/// moments [B, 2L, h, w] (mean, then log-variance, on the channels):
///
///     mean, logvar = chunk(moments, 2, dim: 1)        each [B, L, h, w]
///     logvar = clamp(logvar, −30, 20)
///     std = exp(0.5·logvar),  var = exp(logvar)
///     z = mean + std·ε,  ε ~ N(0, I)                   (`sample`; `mode()` is the mean)
///     KL(q ‖ N(0, I)) = ½·Σ_{c,h,w} (mean² + var − 1 − logvar)   per sample (`kl()`)
public struct DiagonalGaussianDistribution {
    /// [B, 2L, h, w], as the encoder (and `quant_conv`) gave them.
    public let parameters: Tensor
    /// [B, L, h, w]
    public let mean: Tensor
    /// [B, L, h, w], clamped to [−30, 20].
    public let logvar: Tensor
    /// exp(0.5·logvar), [B, L, h, w]
    public let std: Tensor
    /// exp(logvar), [B, L, h, w]
    public let variance: Tensor

    /// moments: [B, 2L, h, w] with an even channel count.
    public init(_ moments: Tensor) throws {
        guard moments.rank == 4, moments.size(1) % 2 == 0, moments.size(1) > 0 else {
            throw TorchError("DiagonalGaussianDistribution expects moments [B, 2L, h, w] (mean and log-variance "
                                 + "stacked on the channels), got \(moments.shape)")
        }
        parameters = moments
        let halves = try moments.chunk(2, dim: 1)
        mean = halves[0]
        logvar = try halves[1].clamp(min: -30.0, max: 20.0)
        std = try (logvar * 0.5).exp()
        variance = try logvar.exp()
    }

    /// The mean: the deterministic latent (diffusers' `mode()`, what `AutoencoderKL` decodes by default).
    public func mode() -> Tensor { mean }

    /// mean + std·ε for a given ε shaped like the mean.
    public func sample(noise: Tensor) throws -> Tensor {
        guard noise.shape == mean.shape else {
            throw TorchError("DiagonalGaussianDistribution.sample: the noise has shape \(noise.shape), the latents "
                                 + "\(mean.shape)")
        }
        return try mean + std * noise
    }

    /// mean + std·ε with ε drawn from libtorch's generator on the mean's device (diffusers' `sample()` without a
    /// generator, after the same `torch.manual_seed`).
    public func sample() throws -> Tensor {
        try sample(noise: try Tensor.randn(mean.shape, dtype: mean.dtype, device: mean.device))
    }

    /// mean + std·ε with ε = `torch.randn` of a CPU generator seeded with `seed`, moved to the mean's device:
    /// diffusers' `sample(generator=torch.Generator().manual_seed(seed))`, the same numbers on every device.
    /// libtorch's generators are left as they were.
    public func sample(seed: UInt64) throws -> Tensor {
        let noise = try Self.seededNoise(mean.shape, seed: seed)
        return try sample(noise: try noise.to(device: mean.device, dtype: mean.dtype))
    }

    /// KL(q ‖ N(0, I)) per sample: ½·Σ (mean² + var − 1 − logvar) over [L, h, w] → [B]
    public func kl() throws -> Tensor {
        try (mean.square() + variance - 1.0 - logvar).sum(dims: [1, 2, 3]) * 0.5
    }

    /// float32 N(0, 1) samples of a CPU generator seeded with `seed`, drawn by seeding libtorch's generators and
    /// restoring their states afterwards (CPU and every CUDA device), so no other draw moves.
    static func seededNoise(_ shape: [Int], seed: UInt64) throws -> Tensor {
        let devices = [Device.cpu] + (0..<Runtime.cudaDeviceCount).map { Device.cuda($0) }
        let saved = try devices.map { try Runtime.rngState(device: $0) }
        Runtime.manualSeed(seed)
        let noise = Result { try Tensor.randn(shape) }
        for (device, state) in zip(devices, saved) { try Runtime.setRNGState(state, device: device) }
        return try noise.get()
    }
}
