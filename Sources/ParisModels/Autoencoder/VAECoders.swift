import Torch

/// diffusers' `UNetMidBlock2D` at the bottom of the encoder and the decoder: `resnets.0`, then (with
/// `mid_block_add_attention`) `attentions.0`, then `resnets.1`, all at the deepest width C.
public final class UNetMidBlock2D: Module {
    public let resnets: [ResnetBlock2D]
    public let attention: VAEAttention?
    public var isTraining = true

    init(_ channels: Int, addAttention: Bool, groups: Int, activation: VAEActivation, dtype: DType,
         device: Device) throws {
        let first = try ResnetBlock2D(channels, channels, groups: groups, activation: activation, dtype: dtype,
                                      device: device)
        attention = addAttention ? try VAEAttention(channels, groups: groups, dtype: dtype, device: device) : nil
        resnets = [first, try ResnetBlock2D(channels, channels, groups: groups, activation: activation, dtype: dtype,
                                            device: device)]
    }

    public var children: [(String, any Module)] {
        (attention.map { [("attentions.0", $0 as any Module)] } ?? [])
            + resnets.enumerated().map { ("resnets.\($0)", $1 as any Module) }
    }

    /// x: [B, C, h, w] → [B, C, h, w]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try resnets[0](x)
        if let attention { h = try attention(h) }
        return try resnets[1](h)
    }
}

/// diffusers' VAE `Encoder` (models/autoencoders/vae.py, `double_z=True`): an image to the moments of the latent
/// posterior, mean and log-variance stacked on the channels. With widths c₀ … cₙ₋₁ (`block_out_channels`):
///
///     conv_in (3×3, in → c₀)
///     → down_blocks.i (DownEncoderBlock2D, cᵢ₋₁ → cᵢ, halving the sides except on the last level)
///     → mid_block (ResNet, attention, ResNet at cₙ₋₁)
///     → conv_norm_out (GroupNorm) → SiLU → conv_out (3×3, cₙ₋₁ → 2L)
///
/// The final activation is SiLU whatever `act_fn` is, as in diffusers.
public final class VAEEncoder: Module {
    public let convIn: Conv2d
    public let downBlocks: [DownEncoderBlock2D]
    public let midBlock: UNetMidBlock2D
    public let convNormOut: GroupNorm
    public let convOut: Conv2d
    public var isTraining = true

    /// Layers are created in diffusers' order, so after `Runtime.manualSeed(s)` their initial weights are those of
    /// `torch.manual_seed(s)`; call on a validated config.
    init(_ config: AutoencoderKLConfig, dtype: DType, device: Device) throws {
        let widths = config.blockOutChannels, last = widths[widths.count - 1], groups = config.normNumGroups
        let act = config.activation!
        convIn = try Conv2d(config.inChannels, widths[0], kernelSize: 3, padding: 1, dtype: dtype, device: device)
        downBlocks = try widths.indices.map { i in
            try DownEncoderBlock2D(widths[max(i - 1, 0)], widths[i], layers: config.layersPerBlock,
                                   downsample: i < widths.count - 1, groups: groups, activation: act, dtype: dtype,
                                   device: device)
        }
        midBlock = try UNetMidBlock2D(last, addAttention: config.midBlockAddAttention, groups: groups,
                                      activation: act, dtype: dtype, device: device)
        convNormOut = try GroupNorm(numGroups: groups, numChannels: last, eps: 1e-6, dtype: dtype, device: device)
        convOut = try Conv2d(last, 2 * config.latentChannels, kernelSize: 3, padding: 1, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] {
        [("conv_in", convIn)] + downBlocks.enumerated().map { ("down_blocks.\($0)", $1 as any Module) }
            + [("mid_block", midBlock), ("conv_norm_out", convNormOut), ("conv_out", convOut)]
    }

    /// x: [B, in, H, W] → moments [B, 2L, H/f, W/f] (f = 2^(levels − 1))
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try convIn(x)                                 // [B, c₀, H, W]
        for block in downBlocks { h = try block(h) }          // [B, cₙ₋₁, H/f, W/f]
        h = try midBlock(h)                                   // [B, cₙ₋₁, H/f, W/f]
        return try convOut(try convNormOut(h).silu())         // [B, 2L, H/f, W/f]
    }
}

/// diffusers' VAE `Decoder` (`norm_type="group"`): latents back to an image, the encoder mirrored with one more
/// ResNet block per level:
///
///     conv_in (3×3, L → cₙ₋₁) → mid_block
///     → up_blocks.i (UpDecoderBlock2D over the widths reversed, doubling the sides except on the last level)
///     → conv_norm_out (GroupNorm) → SiLU → conv_out (3×3, c₀ → out)
public final class VAEDecoder: Module {
    public let convIn: Conv2d
    public let midBlock: UNetMidBlock2D
    public let upBlocks: [UpDecoderBlock2D]
    public let convNormOut: GroupNorm
    public let convOut: Conv2d
    public var isTraining = true

    /// Layers are created in diffusers' order (conv_in, mid_block, up_blocks, ...; the state dict lists up_blocks
    /// before mid_block, as diffusers registers them); call on a validated config.
    init(_ config: AutoencoderKLConfig, dtype: DType, device: Device) throws {
        let widths = config.blockOutChannels, groups = config.normNumGroups, act = config.activation!
        let reversed = Array(widths.reversed())
        convIn = try Conv2d(config.latentChannels, reversed[0], kernelSize: 3, padding: 1, dtype: dtype,
                            device: device)
        midBlock = try UNetMidBlock2D(reversed[0], addAttention: config.midBlockAddAttention, groups: groups,
                                      activation: act, dtype: dtype, device: device)
        upBlocks = try reversed.indices.map { i in
            try UpDecoderBlock2D(reversed[max(i - 1, 0)], reversed[i], layers: config.layersPerBlock + 1,
                                 upsample: i < widths.count - 1, groups: groups, activation: act, dtype: dtype,
                                 device: device)
        }
        convNormOut = try GroupNorm(numGroups: groups, numChannels: widths[0], eps: 1e-6, dtype: dtype, device: device)
        convOut = try Conv2d(widths[0], config.outChannels, kernelSize: 3, padding: 1, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] {
        [("conv_in", convIn)] + upBlocks.enumerated().map { ("up_blocks.\($0)", $1 as any Module) }
            + [("mid_block", midBlock), ("conv_norm_out", convNormOut), ("conv_out", convOut)]
    }

    /// z: [B, L, h, w] → [B, out, h·f, w·f]
    public func callAsFunction(_ z: Tensor) throws -> Tensor {
        var h = try convIn(z)                                 // [B, cₙ₋₁, h, w]
        h = try midBlock(h)                                   // [B, cₙ₋₁, h, w]
        for block in upBlocks { h = try block(h) }            // [B, c₀, h·f, w·f]
        return try convOut(try convNormOut(h).silu())         // [B, out, h·f, w·f]
    }
}
