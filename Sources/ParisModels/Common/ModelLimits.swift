import Torch

/// The largest sizes a model configuration may ask for. A config.json is read from disk and may be edited or
/// corrupt; these bounds let `validate()` refuse an absurd one (`depth: 100000000` built layers until the machine
/// ran out of memory) before any layer is built and before any size is multiplied into a parameter count. Each bound
/// leaves ample room above every model Paris, DiT and the released checkpoints use; the real check that a config
/// matches its weights is `StateDictEntry.check` against the weights file's header (`ExpertCheckpoint.load`).
public enum ModelLimits {
    /// Transformer blocks: at most 256. DiT-XL and the released Paris expert have 28, the Paris router 12; the
    /// deepest published diffusion transformers have well under 100.
    public static let maxDepth = 256
    /// Widths (`hidden_size`, `text_dim`, `frequency_embedding_size`): at most 16,384 = 2¹⁴. DiT-XL is 1152 wide,
    /// CLIP ViT-L/14 tokens 768, T5-XXL 4096; 16,384 is the width of the largest language models.
    public static let maxWidth = 16_384
    /// Attention heads: at most 256 (DiT-XL and Paris: 16); each head also needs `hidden_size / num_heads` ≥ 1.
    public static let maxHeads = 256
    /// `input_size`, the side of the (latent or pixel) grid: at most 1024, the latents of 8192-pixel images through
    /// an SD-VAE (÷ 8), or 1024-pixel images; Paris uses 32 (256-pixel images).
    public static let maxInputSize = 1024
    /// `patch_size`: at most 64 (DiT uses 2, 4 and 8; ViTs 14 to 32).
    public static let maxPatchSize = 64
    /// Image tokens, (input_size / patch_size)²: at most 65,536 = 256². Paris has 256; the fixed position
    /// embedding alone is tokens × hidden_size values, built with the model.
    public static let maxTokens = 65_536
    /// `in_channels`: at most 64 (SD-VAE latents have 4, SD3 and FLUX latents 16, pixels 3).
    public static let maxChannels = 64
    /// `mlp_ratio`: finite, at most 16 (every reference model uses 4).
    public static let maxMLPRatio = 16.0
    /// `text_length`, the tokens of the null text: at most 4096 (CLIP has 77, PixArt's T5 120 to 300, MiniLM
    /// at most 512 positions).
    public static let maxTextLength = 4096
    /// DiT's `num_classes`: at most 100,000 (ImageNet has 1000 classes, ImageNet-21k 21,841).
    public static let maxClasses = 100_000

    /// Throws `fail("key value is more than max (ModelLimits.name)")` when `value` exceeds `max`.
    static func check(_ key: String, _ value: Int, _ max: Int, _ name: String,
                      _ fail: (String) -> TorchError) throws {
        guard value <= max else { throw fail("\(key) \(value) is more than \(max) (ModelLimits.\(name))") }
    }

    /// The bounds every patch transformer (DiT, Paris expert, router) shares; the sizes are already known to be
    /// positive. Checked before anything is computed from them (`mlpHiddenSize` converts mlp_ratio to an Int).
    static func checkPatchTransformer(inputSize: Int, inChannels: Int, patchSize: Int, hiddenSize: Int, depth: Int,
                                      numHeads: Int, mlpRatio: Double, fail: (String) -> TorchError) throws {
        try check("input_size", inputSize, maxInputSize, "maxInputSize", fail)
        try check("in_channels", inChannels, maxChannels, "maxChannels", fail)
        try check("patch_size", patchSize, maxPatchSize, "maxPatchSize", fail)
        try check("hidden_size", hiddenSize, maxWidth, "maxWidth", fail)
        try check("depth", depth, maxDepth, "maxDepth", fail)
        try check("num_heads", numHeads, maxHeads, "maxHeads", fail)
        guard mlpRatio.isFinite, mlpRatio <= maxMLPRatio else {
            throw fail("mlp_ratio \(mlpRatio) is not a finite number ≤ \(maxMLPRatio) (ModelLimits.maxMLPRatio)")
        }
        let grid = inputSize / patchSize
        try check("(input_size / patch_size)² tokens", grid * grid, maxTokens, "maxTokens", fail)
    }
}

/// One tensor of a model's state dict as the configuration alone determines it: its name, its shape, and the
/// config keys the shape comes from (for the message when a weights file disagrees).
public struct StateDictEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let keys: [String]

    public init(_ name: String, _ shape: [Int], _ keys: [String]) {
        self.name = name
        self.shape = shape
        self.keys = keys
    }

    /// Compares what a configuration needs (`expected`) with what a weights file holds (`found`: name → shape,
    /// from its header, so no tensor is loaded), before a model is built from the configuration. `values` gives
    /// each config key's value for the messages. Throws a `TorchError` naming the tensor, the shapes and the config
    /// keys on the first difference: the number of blocks (`layers.N.` prefixes against `depth`), a tensor the
    /// config needs that the file lacks, a shape, or a tensor the file holds that the config has no place for.
    public static func check(_ expected: [StateDictEntry], against found: [String: [Int]], depth: Int,
                             values: [String: String]) throws {
        func keys(_ e: StateDictEntry) -> String {
            e.keys.map { "\($0) \(values[$0] ?? "?")" }.joined(separator: ", ")
        }
        let layers = Set(found.keys.compactMap { name -> Int? in
            guard name.hasPrefix("layers.") else { return nil }
            return Int(name.dropFirst(7).prefix { $0 != "." })
        })
        guard layers.count == depth else {
            let held = layers.isEmpty ? "no layers" : "\(layers.count) layers (layers.\(layers.min()!) … "
                + "layers.\(layers.max()!))"
            throw TorchError("the config's depth is \(depth), but the weights hold \(held)")
        }
        for e in expected {
            guard let shape = found[e.name] else {
                throw TorchError("the weights have no tensor '\(e.name)', which the config (\(keys(e))) needs")
            }
            guard shape == e.shape else {
                throw TorchError("the weights' '\(e.name)' has shape \(shape), but the config (\(keys(e))) "
                    + "needs \(e.shape)")
            }
        }
        let names = Set(expected.map(\.name))
        if let extra = found.keys.sorted().first(where: { !names.contains($0) }) {
            throw TorchError("the weights hold '\(extra)', which a model of this config has no place for")
        }
    }
}

/// The state-dict entries of the blocks and heads the Paris models share.
enum StateDictShapes {
    static func linear(_ name: String, in i: Int, out o: Int, _ keys: [String]) -> [StateDictEntry] {
        [StateDictEntry(name + ".weight", [o, i], keys), StateDictEntry(name + ".bias", [o], keys)]
    }

    /// torch's MultiheadAttention: in_proj_weight [3h, h], in_proj_bias [3h], out_proj.
    static func attention(_ name: String, hidden h: Int) -> [StateDictEntry] {
        [StateDictEntry(name + ".in_proj_weight", [3 * h, h], ["hidden_size"]),
         StateDictEntry(name + ".in_proj_bias", [3 * h], ["hidden_size"])]
            + linear(name + ".out_proj", in: h, out: h, ["hidden_size"])
    }

    /// The patch embedding (Conv2d, kernel = stride = patch) and the fixed position embedding.
    static func patchEmbed(_ c: some PatchTransformerConfig, inChannels: Int) -> [StateDictEntry] {
        let h = c.hiddenSize, p = c.patchSize
        return [StateDictEntry("patch_embed.weight", [h, inChannels, p, p], ["hidden_size", "in_channels", "patch_size"]),
                StateDictEntry("patch_embed.bias", [h], ["hidden_size"]),
                StateDictEntry("pos_embed", [1, c.numPatches, h], ["input_size", "patch_size", "hidden_size"])]
    }

    /// `time_embed.mlp.0` (frequency → hidden) and `time_embed.mlp.2` (hidden → hidden).
    static func timeEmbed(hidden h: Int, frequency f: Int) -> [StateDictEntry] {
        linear("time_embed.mlp.0", in: f, out: h, ["frequency_embedding_size", "hidden_size"])
            + linear("time_embed.mlp.2", in: h, out: h, ["hidden_size"])
    }

    /// `mlp.0` (hidden → inner) and `mlp.2` (inner → hidden) of a block.
    static func mlp(_ prefix: String, hidden h: Int, inner m: Int) -> [StateDictEntry] {
        linear(prefix + "mlp.0", in: h, out: m, ["hidden_size", "mlp_ratio"])
            + linear(prefix + "mlp.2", in: m, out: h, ["hidden_size", "mlp_ratio"])
    }
}

extension ParisExpertConfig {
    /// The names and shapes of `ParisExpert(self).stateDict()` (the parameters and the `pos_embed` buffer), from
    /// the configuration alone: `ExpertCheckpoint.load` compares them with the weights file's header before it
    /// builds the model. Call on a validated config.
    public var stateDictEntries: [StateDictEntry] {
        let h = hiddenSize, p = patchSize
        var out = StateDictShapes.patchEmbed(self, inChannels: inChannels)
        out += StateDictShapes.timeEmbed(hidden: h, frequency: frequencyEmbeddingSize)
        out += StateDictShapes.linear("text_proj", in: textDim, out: h, ["text_dim", "hidden_size"])
        out += StateDictShapes.linear("t_block.1", in: h, out: 6 * h, ["hidden_size"])
        for i in 0..<depth {
            let l = "layers.\(i)."
            out.append(StateDictEntry(l + "scale_shift_table", [6, h], ["hidden_size"]))
            out += StateDictShapes.attention(l + "attn", hidden: h)
            out += StateDictShapes.attention(l + "cross_attn", hidden: h)
            out += StateDictShapes.mlp(l, hidden: h, inner: mlpHiddenSize)
        }
        out += StateDictShapes.linear("final_layer.linear", in: h, out: p * p * inChannels,
                                      ["hidden_size", "patch_size", "in_channels"])
        out.append(StateDictEntry("final_layer.scale_shift_table", [2, h], ["hidden_size"]))
        if nullText == .learned {
            out.append(StateDictEntry("null_text_embedding", [textLength, textDim], ["text_length", "text_dim"]))
        }
        return out
    }
}

extension RouterConfig {
    /// The names and shapes of `Router(self).stateDict()`, from the configuration alone (see
    /// `ParisExpertConfig.stateDictEntries`).
    public var stateDictEntries: [StateDictEntry] {
        let h = hiddenSize
        var out = StateDictShapes.patchEmbed(self, inChannels: inChannels)
        out += StateDictShapes.timeEmbed(hidden: h, frequency: frequencyEmbeddingSize)
        out.append(StateDictEntry("cls_token", [1, 1, h], ["hidden_size"]))
        if let e = textDim {
            out += StateDictShapes.linear("text_embed.0", in: e, out: h, ["text_dim", "hidden_size"])
            out += StateDictShapes.linear("text_embed.2", in: h, out: h, ["hidden_size"])
            out.append(StateDictEntry("null_text_embedding", [1, e], ["text_dim"]))
        }
        for i in 0..<depth {
            let l = "layers.\(i)."
            out += StateDictShapes.linear(l + "adaLN_modulation.1", in: h, out: 6 * h, ["hidden_size"])
            out += StateDictShapes.attention(l + "attn", hidden: h)
            out += StateDictShapes.mlp(l, hidden: h, inner: mlpHiddenSize)
        }
        out += StateDictShapes.linear("head.0", in: h, out: h, ["hidden_size"])
        out += [StateDictEntry("head.2.weight", [h], ["hidden_size"]), StateDictEntry("head.2.bias", [h], ["hidden_size"])]
        out += StateDictShapes.linear("head.4", in: h, out: numExperts, ["hidden_size", "num_experts"])
        return out
    }
}
