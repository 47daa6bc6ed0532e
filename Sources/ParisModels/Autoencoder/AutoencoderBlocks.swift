import Torch

// The building blocks of diffusers' AutoencoderKL (diffusers 0.42.1: models/resnet.py, downsampling.py,
// upsampling.py, attention_processor.py, unets/unet_2d_blocks.py), as that model uses them: no time embedding, no
// dropout (p = 0), output scale factor 1, GroupNorm ε = 1e-6.

/// The ResNet blocks' nonlinearity (`act_fn`, diffusers' `get_activation`).
enum VAEActivation: Sendable {
    case silu, gelu, relu

    static let names = ["silu", "swish", "gelu", "relu"]

    init?(actFn: String) {
        switch actFn {
        case "silu", "swish": self = .silu
        case "gelu": self = .gelu
        case "relu": self = .relu
        default: return nil
        }
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        switch self {
        case .silu: return try x.silu()
        case .gelu: return try x.gelu()
        case .relu: return try x.relu()
        }
    }
}

/// diffusers' `ResnetBlock2D` without a time embedding (keys `norm1`, `conv1`, `norm2`, `conv2`, and
/// `conv_shortcut` when the width changes):
///
///     h = conv2(act(norm2(conv1(act(norm1(x))))))        3×3 convolutions, GroupNorm(groups, ε = 1e-6)
///     out = shortcut(x) + h                               shortcut: 1×1 convolution if in ≠ out, else identity
public final class ResnetBlock2D: Module {
    public let norm1: GroupNorm
    public let conv1: Conv2d
    public let norm2: GroupNorm
    public let conv2: Conv2d
    /// 1×1, in → out; nil when in == out.
    public let convShortcut: Conv2d?
    let activation: VAEActivation
    public var isTraining = true

    init(_ inChannels: Int, _ outChannels: Int, groups: Int, activation: VAEActivation, dtype: DType,
         device: Device) throws {
        norm1 = try GroupNorm(numGroups: groups, numChannels: inChannels, eps: 1e-6, dtype: dtype, device: device)
        conv1 = try Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1, dtype: dtype, device: device)
        norm2 = try GroupNorm(numGroups: groups, numChannels: outChannels, eps: 1e-6, dtype: dtype, device: device)
        conv2 = try Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, dtype: dtype, device: device)
        convShortcut = inChannels == outChannels
            ? nil : try Conv2d(inChannels, outChannels, kernelSize: 1, dtype: dtype, device: device)
        self.activation = activation
    }

    public var children: [(String, any Module)] {
        [("norm1", norm1), ("conv1", conv1), ("norm2", norm2), ("conv2", conv2)]
            + (convShortcut.map { [("conv_shortcut", $0 as any Module)] } ?? [])
    }

    /// x: [B, in, H, W] → [B, out, H, W]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try conv1(try activation(try norm1(x)))         // [B, out, H, W]
        h = try conv2(try activation(try norm2(h)))             // [B, out, H, W]
        return try (try convShortcut?(x) ?? x) + h              // [B, out, H, W]
    }
}

/// diffusers' `Downsample2D(use_conv=True, padding=0)`: pad one zero row at the bottom and one zero column at the
/// right, then a 3×3 convolution with stride 2 (key `conv`). [B, C, H, W] → [B, C, H/2, W/2] for even H and W.
public final class Downsample2D: Module {
    public let conv: Conv2d
    public var isTraining = true

    init(_ channels: Int, dtype: DType, device: Device) throws {
        conv = try Conv2d(channels, channels, kernelSize: 3, stride: 2, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] { [("conv", conv)] }

    /// x: [B, C, H, W] → [B, C, ⌊H/2⌋, ⌊W/2⌋]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv(try x.pad([0, 1, 0, 1]))  // [B, C, H + 1, W + 1] → [B, C, H/2, W/2]
    }
}

/// diffusers' `Upsample2D(use_conv=True)`: nearest-neighbour ×2 (`F.interpolate(scale_factor=2, mode="nearest")`),
/// then a 3×3 convolution (key `conv`).
public final class Upsample2D: Module {
    public let conv: Conv2d
    public var isTraining = true

    init(_ channels: Int, dtype: DType, device: Device) throws {
        conv = try Conv2d(channels, channels, kernelSize: 3, padding: 1, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] { [("conv", conv)] }

    /// x: [B, C, H, W] → [B, C, 2H, 2W]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv(try x.interpolate(size: (2 * x.size(2), 2 * x.size(3)), mode: .nearest))
    }
}

/// The mid blocks' spatial self-attention: diffusers' `Attention` with one head of width C, a GroupNorm before
/// it and a residual connection (the `_from_deprecated_attn_block` attention, run by `AttnProcessor2_0`). Keys
/// `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0`. With the HW pixels as tokens s = GroupNorm(x) ∈ [B, HW, C]:
///
///     out = x + to_out(softmax(to_q(s)·to_k(s)ᵀ / √C)·to_v(s))
///
/// Checkpoints written before diffusers 0.14 name the projections `query`, `key`, `value`, `proj_attn`;
/// `AutoencoderKL.load` renames them, as diffusers does.
public final class VAEAttention: Module {
    public let groupNorm: GroupNorm
    public let toQ: Linear, toK: Linear, toV: Linear, toOut: Linear
    public var isTraining = true

    init(_ channels: Int, groups: Int, dtype: DType, device: Device) throws {
        groupNorm = try GroupNorm(numGroups: groups, numChannels: channels, eps: 1e-6, dtype: dtype, device: device)
        toQ = try Linear(channels, channels, dtype: dtype, device: device)
        toK = try Linear(channels, channels, dtype: dtype, device: device)
        toV = try Linear(channels, channels, dtype: dtype, device: device)
        toOut = try Linear(channels, channels, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] {
        [("group_norm", groupNorm), ("to_q", toQ), ("to_k", toK), ("to_v", toV), ("to_out.0", toOut)]
    }

    /// x: [B, C, H, W] → [B, C, H, W]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3)
        let s = try groupNorm(try x.reshape([b, c, h * w])).transpose(1, 2)       // [B, HW, C]
        func head(_ t: Tensor) throws -> Tensor { try t.view([b, h * w, 1, c]).transpose(1, 2) }  // [B, 1, HW, C]
        let attended = try scaledDotProductAttention(query: head(toQ(s)), key: head(toK(s)), value: head(toV(s)))
        let out = try toOut(try attended.transpose(1, 2).reshape([b, h * w, c]))  // [B, HW, C]
        return try out.transpose(1, 2).reshape([b, c, h, w]) + x                  // [B, C, H, W]
    }
}

/// diffusers' `DownEncoderBlock2D`: `layers_per_block` ResNet blocks (`resnets.N`, the first one in → out), then,
/// except on the last level, `downsamplers.0`.
public final class DownEncoderBlock2D: Module {
    public let resnets: [ResnetBlock2D]
    public let downsampler: Downsample2D?
    public var isTraining = true

    init(_ inChannels: Int, _ outChannels: Int, layers: Int, downsample: Bool, groups: Int,
         activation: VAEActivation, dtype: DType, device: Device) throws {
        resnets = try (0..<layers).map { i in
            try ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, groups: groups, activation: activation,
                              dtype: dtype, device: device)
        }
        downsampler = downsample ? try Downsample2D(outChannels, dtype: dtype, device: device) : nil
    }

    public var children: [(String, any Module)] {
        resnets.enumerated().map { ("resnets.\($0)", $1 as any Module) }
            + (downsampler.map { [("downsamplers.0", $0 as any Module)] } ?? [])
    }

    /// x: [B, in, H, W] → [B, out, H/2, W/2] (or [B, out, H, W] on the last level)
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = x
        for resnet in resnets { h = try resnet(h) }  // [B, out, H, W]
        return try downsampler?(h) ?? h
    }
}

/// diffusers' `UpDecoderBlock2D`: `layers_per_block + 1` ResNet blocks (`resnets.N`, the first one in → out),
/// then, except on the last level, `upsamplers.0`.
public final class UpDecoderBlock2D: Module {
    public let resnets: [ResnetBlock2D]
    public let upsampler: Upsample2D?
    public var isTraining = true

    init(_ inChannels: Int, _ outChannels: Int, layers: Int, upsample: Bool, groups: Int, activation: VAEActivation,
         dtype: DType, device: Device) throws {
        resnets = try (0..<layers).map { i in
            try ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, groups: groups, activation: activation,
                              dtype: dtype, device: device)
        }
        upsampler = upsample ? try Upsample2D(outChannels, dtype: dtype, device: device) : nil
    }

    public var children: [(String, any Module)] {
        resnets.enumerated().map { ("resnets.\($0)", $1 as any Module) }
            + (upsampler.map { [("upsamplers.0", $0 as any Module)] } ?? [])
    }

    /// x: [B, in, H, W] → [B, out, 2H, 2W] (or [B, out, H, W] on the last level)
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = x
        for resnet in resnets { h = try resnet(h) }  // [B, out, H, W]
        return try upsampler?(h) ?? h
    }
}
