import Foundation
import Torch

/// The hyper-parameters of diffusers' `AutoencoderKL` (the Stable Diffusion VAE), decoded from its `config.json`
/// (diffusers 0.42.1's keys: `in_channels`, `out_channels`, `down_block_types`, `up_block_types`,
/// `block_out_channels`, `layers_per_block`, `act_fn`, `latent_channels`, `norm_num_groups`, `sample_size`,
/// `scaling_factor`, `shift_factor`, `latents_mean`, `latents_std`, `force_upcast`, `use_quant_conv`,
/// `use_post_quant_conv`, `mid_block_add_attention`). A missing key takes diffusers' default (the `init`'s defaults
/// below); `_class_name`, when present, must be `AutoencoderKL`; other keys starting with `_` are ignored.
///
/// With n = `block_out_channels.count` levels the encoder halves the image n − 1 times: an image [B, in, H, W]
/// becomes latents [B, latent_channels, H/f, W/f] with f = 2ⁿ⁻¹ (`downsamplingFactor`; 8 for the SD VAE).
public struct AutoencoderKLConfig: PresetConfig, Codable, Equatable, Hashable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    /// One per level; only `DownEncoderBlock2D` builds an AutoencoderKL encoder.
    public var downBlockTypes: [String]
    /// One per level; only `UpDecoderBlock2D` builds an AutoencoderKL decoder.
    public var upBlockTypes: [String]
    /// The width of each level, from the image side (SD VAE: 128, 256, 512, 512).
    public var blockOutChannels: [Int]
    /// ResNet blocks per encoder level (the decoder has one more per level).
    public var layersPerBlock: Int
    /// The ResNet blocks' nonlinearity: "silu" (= "swish"), "gelu" or "relu". ("mish", which diffusers also
    /// accepts, is refused: no AutoencoderKL checkpoint uses it and the Torch layer has no mish op.)
    public var actFn: String
    public var latentChannels: Int
    /// Groups of every GroupNorm (ε = 1e-6); each width must be a multiple of it.
    public var normNumGroups: Int
    /// The training resolution; the default tile side of tiled encoding and decoding (`AutoencoderKLTiling`).
    /// diffusers also accepts a list here and uses its first entry; so does this decoder.
    public var sampleSize: Int
    /// The diffusion model's latents are (z − shift_factor)·scaling_factor (`AutoencoderKL.scaledLatents`).
    public var scalingFactor: Double
    public var shiftFactor: Double?
    /// Per-channel latent statistics some pipelines use; stored for round trips, not applied here.
    public var latentsMean: [Double]?
    public var latentsStd: [Double]?
    /// Run this VAE in float32 even in half-precision pipelines (advice to the caller; the model runs in the dtype
    /// it is built with).
    public var forceUpcast: Bool
    /// Whether the 1×1 `quant_conv` (2L → 2L) follows the encoder and `post_quant_conv` (L → L) precedes the
    /// decoder.
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    /// Whether both mid blocks hold their single-head self-attention between their two ResNet blocks.
    public var midBlockAddAttention: Bool

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case inChannels = "in_channels", outChannels = "out_channels", downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types", blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block", actFn = "act_fn", latentChannels = "latent_channels"
        case normNumGroups = "norm_num_groups", sampleSize = "sample_size", scalingFactor = "scaling_factor"
        case shiftFactor = "shift_factor", latentsMean = "latents_mean", latentsStd = "latents_std"
        case forceUpcast = "force_upcast", useQuantConv = "use_quant_conv", usePostQuantConv = "use_post_quant_conv"
        case midBlockAddAttention = "mid_block_add_attention"
    }

    /// The defaults are diffusers' `AutoencoderKL.__init__` defaults.
    public init(inChannels: Int = 3, outChannels: Int = 3, downBlockTypes: [String] = ["DownEncoderBlock2D"],
                upBlockTypes: [String] = ["UpDecoderBlock2D"], blockOutChannels: [Int] = [64], layersPerBlock: Int = 1,
                actFn: String = "silu", latentChannels: Int = 4, normNumGroups: Int = 32, sampleSize: Int = 32,
                scalingFactor: Double = 0.18215, shiftFactor: Double? = nil, latentsMean: [Double]? = nil,
                latentsStd: [Double]? = nil, forceUpcast: Bool = true, useQuantConv: Bool = true,
                usePostQuantConv: Bool = true, midBlockAddAttention: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.downBlockTypes = downBlockTypes
        self.upBlockTypes = upBlockTypes
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.actFn = actFn
        self.latentChannels = latentChannels
        self.normNumGroups = normNumGroups
        self.sampleSize = sampleSize
        self.scalingFactor = scalingFactor
        self.shiftFactor = shiftFactor
        self.latentsMean = latentsMean
        self.latentsStd = latentsStd
        self.forceUpcast = forceUpcast
        self.useQuantConv = useQuantConv
        self.usePostQuantConv = usePostQuantConv
        self.midBlockAddAttention = midBlockAddAttention
    }

    /// stabilityai/sd-vae-ft-mse (and the VAE of Stable Diffusion 1.x/2.x, which Paris's latents come from):
    /// widths 128, 256, 512, 512, two ResNet blocks per level, 4 latent channels (f = 8), 32 groups, trained at
    /// 256 px, scaling factor 0.18215. 83,653,863 parameters.
    public static let sdVAEFtMSE = AutoencoderKLConfig(
        downBlockTypes: Array(repeating: "DownEncoderBlock2D", count: 4),
        upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: 4), blockOutChannels: [128, 256, 512, 512],
        layersPerBlock: 2, sampleSize: 256)

    /// The parity tests' model (scripts/fixtures/autoencoder.py's TINY): widths 8, 16 (f = 2), two ResNet blocks per
    /// level, 4 groups, mid-block attention, tiles of 8 px. 55,519 parameters.
    public static let tiny = AutoencoderKLConfig(
        downBlockTypes: Array(repeating: "DownEncoderBlock2D", count: 2),
        upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: 2), blockOutChannels: [8, 16], layersPerBlock: 2,
        normNumGroups: 4, sampleSize: 8)

    /// A small VAE to train on a CPU (`paris train autoencoder`): widths 16, 32, 64 (f = 4), one ResNet block per
    /// level, 8 groups, 4 latent channels, 64 px (so 64-px images ↔ 16×16×4 latents): about 1.6 GFLOP per 64-px
    /// image for a training step (forward and backward).
    public static let f4 = AutoencoderKLConfig(
        downBlockTypes: Array(repeating: "DownEncoderBlock2D", count: 3),
        upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: 3), blockOutChannels: [16, 32, 64],
        layersPerBlock: 1, normNumGroups: 8, sampleSize: 64)

    public static let presetFamily = "AutoencoderKL"
    public static let presets: [ModelPreset<AutoencoderKLConfig>] = [
        ModelPreset(name: "sd-vae-ft-mse", config: .sdVAEFtMSE,
                    description: "the SD VAE (stabilityai/sd-vae-ft-mse): RGB ↔ 4-channel latents at 1/8 the size"),
        ModelPreset(name: "vae-tiny", config: .tiny, description: "a 2-level test VAE (widths 8, 16; 1/2 the size)"),
        ModelPreset(name: "vae-f4", config: .f4,
                    description: "a small VAE to train on a CPU (widths 16, 32, 64; 4 latent channels at 1/4 the size)"),
    ]

    /// Levels (`block_out_channels.count`): at most 8, a downsampling factor of 128 (every released SD-style VAE
    /// has 4, f = 8).
    public static let maxLevels = 8
    /// `sample_size`: at most 16,384 pixels.
    public static let maxSampleSize = 16_384

    /// How many times the encoder halves the image, as a factor: 2^(levels − 1).
    public var downsamplingFactor: Int { 1 << (blockOutChannels.count - 1) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let name = try c.decodeIfPresent(String.self, forKey: .className), name != "AutoencoderKL" {
            throw TorchError("this config.json describes a \(name), not an AutoencoderKL")
        }
        let d = AutoencoderKLConfig()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        var sampleSize = d.sampleSize
        if let size = try? c.decodeIfPresent(Int.self, forKey: .sampleSize) {
            sampleSize = size
        } else if let sizes = try c.decodeIfPresent([Int].self, forKey: .sampleSize) {
            guard let first = sizes.first else { throw TorchError("invalid AutoencoderKL config: sample_size is []") }
            sampleSize = first
        }
        self.init(inChannels: try value(.inChannels, d.inChannels), outChannels: try value(.outChannels, d.outChannels),
                  downBlockTypes: try value(.downBlockTypes, d.downBlockTypes),
                  upBlockTypes: try value(.upBlockTypes, d.upBlockTypes),
                  blockOutChannels: try value(.blockOutChannels, d.blockOutChannels),
                  layersPerBlock: try value(.layersPerBlock, d.layersPerBlock), actFn: try value(.actFn, d.actFn),
                  latentChannels: try value(.latentChannels, d.latentChannels),
                  normNumGroups: try value(.normNumGroups, d.normNumGroups), sampleSize: sampleSize,
                  scalingFactor: try value(.scalingFactor, d.scalingFactor),
                  shiftFactor: try c.decodeIfPresent(Double.self, forKey: .shiftFactor),
                  latentsMean: try c.decodeIfPresent([Double].self, forKey: .latentsMean),
                  latentsStd: try c.decodeIfPresent([Double].self, forKey: .latentsStd),
                  forceUpcast: try value(.forceUpcast, d.forceUpcast), useQuantConv: try value(.useQuantConv, true),
                  usePostQuantConv: try value(.usePostQuantConv, true),
                  midBlockAddAttention: try value(.midBlockAddAttention, true))
    }

    /// Writes diffusers' keys, with `_class_name` "AutoencoderKL", so diffusers' `AutoencoderKL.from_config` reads it.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("AutoencoderKL", forKey: .className)
        try c.encode(inChannels, forKey: .inChannels)
        try c.encode(outChannels, forKey: .outChannels)
        try c.encode(downBlockTypes, forKey: .downBlockTypes)
        try c.encode(upBlockTypes, forKey: .upBlockTypes)
        try c.encode(blockOutChannels, forKey: .blockOutChannels)
        try c.encode(layersPerBlock, forKey: .layersPerBlock)
        try c.encode(actFn, forKey: .actFn)
        try c.encode(latentChannels, forKey: .latentChannels)
        try c.encode(normNumGroups, forKey: .normNumGroups)
        try c.encode(sampleSize, forKey: .sampleSize)
        try c.encode(scalingFactor, forKey: .scalingFactor)
        try c.encodeIfPresent(shiftFactor, forKey: .shiftFactor)
        try c.encodeIfPresent(latentsMean, forKey: .latentsMean)
        try c.encodeIfPresent(latentsStd, forKey: .latentsStd)
        try c.encode(forceUpcast, forKey: .forceUpcast)
        try c.encode(useQuantConv, forKey: .useQuantConv)
        try c.encode(usePostQuantConv, forKey: .usePostQuantConv)
        try c.encode(midBlockAddAttention, forKey: .midBlockAddAttention)
    }

    /// Reads and validates a diffusers `config.json`; errors name the file.
    public static func load(from url: URL) throws -> AutoencoderKLConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TorchError("AutoencoderKL config \(url.path) cannot be read")
        }
        let config: AutoencoderKLConfig
        do {
            config = try JSONDecoder().decode(AutoencoderKLConfig.self, from: data)
            try config.validate()
        } catch let error as TorchError {
            throw TorchError("\(url.path): \(error.message)")
        } catch {
            throw TorchError("\(url.path) is not a valid AutoencoderKL config.json: \(error)")
        }
        return config
    }

    /// Writes it as diffusers' `config.json` (pretty-printed, sorted keys, a final newline), atomically: what
    /// `load(from:)` and `AutoencoderKL.from_pretrained` read.
    public func save(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10], to: url)
    }

    /// The ResNet blocks' nonlinearity, or nil for an unsupported `act_fn`.
    var activation: VAEActivation? { VAEActivation(actFn: actFn) }

    /// Throws a `TorchError` saying which key is wrong when the configuration cannot make a model (before any
    /// layer is built).
    public func validate() throws {
        func fail(_ why: String) -> TorchError { TorchError("invalid AutoencoderKL config: \(why)") }
        let levels = blockOutChannels.count
        guard levels > 0 else { throw fail("block_out_channels is empty") }
        guard levels <= Self.maxLevels else {
            throw fail("block_out_channels has \(levels) levels, more than \(Self.maxLevels) "
                           + "(AutoencoderKLConfig.maxLevels)")
        }
        for (key, value) in [("in_channels", inChannels), ("out_channels", outChannels),
                             ("latent_channels", latentChannels)] {
            guard value > 0 else { throw fail("\(key) must be positive, got \(value)") }
            try ModelLimits.check(key, value, ModelLimits.maxChannels, "maxChannels", fail)
        }
        guard normNumGroups > 0 else { throw fail("norm_num_groups must be positive, got \(normNumGroups)") }
        for width in blockOutChannels {
            guard width > 0 else { throw fail("block_out_channels \(blockOutChannels) must all be positive") }
            try ModelLimits.check("block_out_channels entry", width, ModelLimits.maxWidth, "maxWidth", fail)
            guard width % normNumGroups == 0 else {
                throw fail("block_out_channels entry \(width) is not divisible by norm_num_groups \(normNumGroups) "
                               + "(every GroupNorm splits its channels into equal groups)")
            }
        }
        guard layersPerBlock > 0 else { throw fail("layers_per_block must be at least 1, got \(layersPerBlock)") }
        try ModelLimits.check("layers_per_block", layersPerBlock, ModelLimits.maxDepth, "maxDepth", fail)
        for (key, types, known) in [("down_block_types", downBlockTypes, "DownEncoderBlock2D"),
                                    ("up_block_types", upBlockTypes, "UpDecoderBlock2D")] {
            guard types.count == levels else {
                throw fail("\(key) has \(types.count) entries but block_out_channels has \(levels); give one per level")
            }
            if let other = types.first(where: { $0 != known }) {
                throw fail("\(key) entry '\(other)' is not supported; an AutoencoderKL is built from \(known) only")
            }
        }
        guard activation != nil else {
            throw fail("act_fn '\(actFn)' is not supported; use one of \(VAEActivation.names.joined(separator: ", "))")
        }
        guard sampleSize > 0, sampleSize <= Self.maxSampleSize else {
            throw fail("sample_size \(sampleSize) is not in 1...\(Self.maxSampleSize) "
                           + "(AutoencoderKLConfig.maxSampleSize)")
        }
        guard scalingFactor.isFinite, scalingFactor > 0 else {
            throw fail("scaling_factor must be a finite positive number, got \(scalingFactor)")
        }
        if let shiftFactor, !shiftFactor.isFinite { throw fail("shift_factor must be finite, got \(shiftFactor)") }
        for (key, stats) in [("latents_mean", latentsMean), ("latents_std", latentsStd)] {
            if let stats, stats.count != latentChannels {
                throw fail("\(key) has \(stats.count) entries but latent_channels is \(latentChannels)")
            }
        }
    }
}

extension AutoencoderKLConfig {
    /// The names and shapes of `AutoencoderKL(self).stateDict()`, in diffusers' order, from the configuration
    /// alone (a test checks them against the built model and against diffusers' state dict). Call on a validated
    /// config.
    public var stateDictEntries: [StateDictEntry] {
        let widths = blockOutChannels, last = widths[widths.count - 1], latent = latentChannels
        func conv(_ name: String, _ i: Int, _ o: Int, kernel k: Int = 3) -> [StateDictEntry] {
            [StateDictEntry(name + ".weight", [o, i, k, k], ["block_out_channels"]),
             StateDictEntry(name + ".bias", [o], ["block_out_channels"])]
        }
        func norm(_ name: String, _ c: Int) -> [StateDictEntry] {
            [StateDictEntry(name + ".weight", [c], ["block_out_channels"]),
             StateDictEntry(name + ".bias", [c], ["block_out_channels"])]
        }
        func resnet(_ name: String, _ i: Int, _ o: Int) -> [StateDictEntry] {
            norm(name + ".norm1", i) + conv(name + ".conv1", i, o) + norm(name + ".norm2", o)
                + conv(name + ".conv2", o, o) + (i == o ? [] : conv(name + ".conv_shortcut", i, o, kernel: 1))
        }
        func midBlock(_ name: String) -> [StateDictEntry] {
            var out: [StateDictEntry] = []
            if midBlockAddAttention {
                let a = name + ".attentions.0"
                out += norm(a + ".group_norm", last)
                for p in ["to_q", "to_k", "to_v", "to_out.0"] {
                    out += StateDictShapes.linear("\(a).\(p)", in: last, out: last, ["block_out_channels"])
                }
            }
            return out + resnet(name + ".resnets.0", last, last) + resnet(name + ".resnets.1", last, last)
        }
        var out = conv("encoder.conv_in", inChannels, widths[0])
        for (i, width) in widths.enumerated() {
            let block = "encoder.down_blocks.\(i)"
            for j in 0..<layersPerBlock {
                out += resnet("\(block).resnets.\(j)", j == 0 ? widths[max(i - 1, 0)] : width, width)
            }
            if i < widths.count - 1 { out += conv(block + ".downsamplers.0.conv", width, width) }
        }
        out += midBlock("encoder.mid_block") + norm("encoder.conv_norm_out", last)
        out += conv("encoder.conv_out", last, 2 * latent)
        out += conv("decoder.conv_in", latent, last)
        let reversed = Array(widths.reversed())
        for (i, width) in reversed.enumerated() {
            let block = "decoder.up_blocks.\(i)"
            for j in 0...layersPerBlock {
                out += resnet("\(block).resnets.\(j)", j == 0 ? reversed[max(i - 1, 0)] : width, width)
            }
            if i < widths.count - 1 { out += conv(block + ".upsamplers.0.conv", width, width) }
        }
        out += midBlock("decoder.mid_block") + norm("decoder.conv_norm_out", widths[0])
        out += conv("decoder.conv_out", widths[0], outChannels)
        if useQuantConv { out += conv("quant_conv", 2 * latent, 2 * latent, kernel: 1) }
        if usePostQuantConv { out += conv("post_quant_conv", latent, latent, kernel: 1) }
        return out
    }

    /// The number of parameters, as `sum(p.numel() for p in vae.parameters())` (the model has no buffers),
    /// computed from `stateDictEntries` without building anything. Call on a validated config.
    public var parameterCount: Int { stateDictEntries.reduce(0) { $0 + $1.shape.reduce(1, *) } }
}
