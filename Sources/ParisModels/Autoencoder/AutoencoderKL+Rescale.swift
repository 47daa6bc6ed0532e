import Foundation
import Torch

extension AutoencoderKL {
    /// The same autoencoder with its diffusion latents on another scale: weights and a config whose latents,
    /// (z' − 0)·`scalingFactor`, equal this one's (z − shift_factor)·scaling_factor for every image, and whose decoder
    /// turns them into the same images. The released Paris pipeline decodes `vae.decode(x / 0.18215)` whatever the
    /// VAE's config says, so a VAE of ours trained with a measured scale (`paris train autoencoder`) is rescaled to
    /// 0.18215 before it is exported; a pipeline that honours `scaling_factor` (diffusers') decodes it alike.
    ///
    /// With a = scaling_factor / `scalingFactor` and s = shift_factor (0 when none), the scale and shift are folded
    /// into the two 1×1 convolutions around the latents (made as identities when the config has none:
    /// `use_quant_conv` and `use_post_quant_conv` are then set):
    ///
    ///     post_quant_conv   W' = W / a,   b' = b + W·s                (decoder input: W (x/scaling_factor + s) + b)
    ///     quant_conv        mean rows:   W' = a·W, b' = a·(b − s)     (z' = a·(z − s))
    ///                       logvar rows: W' = W,   b' = b + 2·ln a    (std' = a·std)
    ///
    /// `latents_mean` and `latents_std`, when present, are mapped the same way. The arithmetic runs in float64 and
    /// is stored in each tensor's dtype, so the images agree up to float rounding; only the posterior's logvar clamp
    /// ([−30, 20], diffusers') moves by 2·ln a. `weights` is a state dict of `config` (`stateDict()`, or a diffusers
    /// file's tensors); the tensors not named above are returned as they are.
    public static func rescaled(_ weights: [String: Tensor], config: AutoencoderKLConfig,
                                to scalingFactor: Double) throws -> (config: AutoencoderKLConfig, weights: [String: Tensor]) {
        try config.validate()
        guard scalingFactor.isFinite, scalingFactor > 0 else {
            throw TorchError("AutoencoderKL.rescaled: the scaling factor must be a finite positive number, got "
                + "\(scalingFactor)")
        }
        let l = config.latentChannels, a = config.scalingFactor / scalingFactor, s = config.shiftFactor ?? 0
        func conv(_ name: String, _ present: Bool, channels: Int) throws -> (w: Tensor, b: Tensor, dtype: DType) {
            guard present else {
                var eye = [Double](repeating: 0, count: channels * channels)
                for i in 0..<channels { eye[i * channels + i] = 1 }
                return (try Tensor(eye, shape: [channels, channels, 1, 1]), try Tensor.zeros([channels], dtype: .float64),
                        weights["decoder.conv_in.weight"]?.dtype ?? .float32)
            }
            guard let w = weights["\(name).weight"], let b = weights["\(name).bias"] else {
                throw TorchError("AutoencoderKL.rescaled: the weights have no \(name).weight and \(name).bias, but the "
                    + "config says use_\(name) (true)")
            }
            guard w.shape == [channels, channels, 1, 1], b.shape == [channels] else {
                throw TorchError("AutoencoderKL.rescaled: \(name).weight is \(w.shape) and \(name).bias \(b.shape), "
                    + "expected [\(channels), \(channels), 1, 1] and [\(channels)] (latent_channels \(l))")
            }
            return (try w.to(dtype: .float64), try b.to(dtype: .float64), w.dtype)
        }
        var out = weights
        let post = try conv("post_quant_conv", config.usePostQuantConv, channels: l)
        out["post_quant_conv.weight"] = try (post.w / a).to(dtype: post.dtype)
        out["post_quant_conv.bias"] = try (post.b + post.w.sum(dims: [1, 2, 3]) * s).to(dtype: post.dtype)
        let quant = try conv("quant_conv", config.useQuantConv, channels: 2 * l)
        let meanW = try quant.w.slice(0, 0, l) * a, logvarW = try quant.w.slice(0, l, 2 * l)
        let meanB = try (quant.b.slice(0, 0, l) - s) * a, logvarB = try quant.b.slice(0, l, 2 * l) + 2 * log(a)
        out["quant_conv.weight"] = try Tensor.cat([meanW, logvarW], dim: 0).to(dtype: quant.dtype)
        out["quant_conv.bias"] = try Tensor.cat([meanB, logvarB], dim: 0).to(dtype: quant.dtype)

        var c = config
        (c.scalingFactor, c.shiftFactor, c.useQuantConv, c.usePostQuantConv) = (scalingFactor, nil, true, true)
        c.latentsMean = config.latentsMean?.map { ($0 - s) * a }
        c.latentsStd = config.latentsStd?.map { $0 * a }
        return (c, out)
    }
}
