import Foundation
import Torch

/// The shape of a Paris router: a DiT-B-style classifier of p(cluster | x_t, t), or, with `textDim`, of
/// p(cluster | x_t, t, c) that also reads the prompt's pooled caption embedding. JSON keys are snake_case.
public struct RouterConfig: PatchTransformerConfig, PresetConfig, Codable, Sendable, Equatable {
    /// The most experts K (clusters, router classes) a run may have: 1024. Paris and DDM use 8 (DDM up to 16);
    /// the partition's k-means makes at most 1024 fine clusters (DDM's F) and groups them into the K experts, so a
    /// larger K has nothing left to group; and each expert is a job (a Slurm array task: Slurm's default
    /// MaxArraySize is 1001). A run's `num_experts`, `paris partition --k` and `paris run init --k` are checked
    /// against it before anything is sized by K (`run init --k 1000000000` used to abort building 10⁹ entries).
    public static let maxExperts = 1024

    public var inputSize: Int
    public var inChannels: Int
    public var patchSize: Int
    public var hiddenSize: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpRatio: Double
    /// K, the number of experts (clusters) it scores.
    public var numExperts: Int
    public var frequencyEmbeddingSize: Int
    /// The blocks' affine-free LayerNorms' epsilon (1e-5, as `F.layer_norm`); the head's LayerNorm uses 1e-5 too.
    public var normEps: Double
    /// The width of the pooled caption embedding a text-conditioned router reads (MiniLM: 384); nil (the key
    /// absent from JSON) is the papers' text-free router p(k | x_t, t), the default and the baseline. Routers saved
    /// before this field existed decode as text-free, and a text-free config encodes without the key.
    public var textDim: Int?

    enum CodingKeys: String, CodingKey {
        case inputSize = "input_size", inChannels = "in_channels", patchSize = "patch_size"
        case hiddenSize = "hidden_size", depth, numHeads = "num_heads", mlpRatio = "mlp_ratio"
        case numExperts = "num_experts", frequencyEmbeddingSize = "frequency_embedding_size", normEps = "norm_eps"
        case textDim = "text_dim"
    }

    public init(inputSize: Int, inChannels: Int, patchSize: Int, hiddenSize: Int, depth: Int, numHeads: Int,
                mlpRatio: Double = 4, numExperts: Int, frequencyEmbeddingSize: Int = 256, normEps: Double = 1e-5,
                textDim: Int? = nil) {
        self.inputSize = inputSize
        self.inChannels = inChannels
        self.patchSize = patchSize
        self.hiddenSize = hiddenSize
        self.depth = depth
        self.numHeads = numHeads
        self.mlpRatio = mlpRatio
        self.numExperts = numExperts
        self.frequencyEmbeddingSize = frequencyEmbeddingSize
        self.normEps = normEps
        self.textDim = textDim
    }

    /// Which router this is: text-free p(k | x_t, t) or text-conditioned p(k | x_t, t, c).
    public var kind: RouterKind { textDim == nil ? .textFree : .textConditioned }

    /// This configuration made text-conditioned with a caption embedding of width `dim` (MiniLM: 384).
    public func withText(_ dim: Int = 384) -> RouterConfig {
        var c = self
        c.textDim = dim
        return c
    }

    /// The released Paris router (DiT-B/2): 32×32×4 latents, patch 2, hidden 768, 12 layers, 12 heads, K = 8.
    /// 128,940,296 trainable parameters (129,136,904 with the fixed `pos_embed`).
    public static let paris = RouterConfig(inputSize: 32, inChannels: 4, patchSize: 2, hiddenSize: 768, depth: 12,
                                           numHeads: 12, numExperts: 8)

    /// CPU router for 32×32 RGB pixels: patch 4 (64 tokens + CLS), hidden 128, 4 layers, 4 heads, K = 8.
    /// 1,260,936 trainable parameters.
    public static let cpuSmall = RouterConfig(inputSize: 32, inChannels: 3, patchSize: 4, hiddenSize: 128, depth: 4,
                                              numHeads: 4, numExperts: 8)

    /// The smallest CPU router: 32×32 RGB pixels, patch 4, hidden 64, 2 layers, 4 heads, K = 8.
    /// 177,992 trainable parameters.
    public static let cpuTiny = RouterConfig(inputSize: 32, inChannels: 3, patchSize: 4, hiddenSize: 64, depth: 2,
                                             numHeads: 4, numExperts: 8)

    /// A named configuration.
    public typealias Preset = ModelPreset<RouterConfig>
    public static let presetFamily = "router"

    /// The named router presets: `router-B/2` (`paris`), `router-S/4` (`cpuSmall`), `router-T/4` (`cpuTiny`), and
    /// each with `-text`: the same router made text-conditioned (`withText()`, MiniLM's 384-wide caption embedding).
    public static let presets: [Preset] = [
        Preset(name: "router-B/2", config: .paris,
               description: "released Paris router (DiT-B/2): 32×32×4 latents, K = 8"),
        Preset(name: "router-S/4", config: .cpuSmall, description: "small, CPU: 32×32×3 pixels, K = 8"),
        Preset(name: "router-T/4", config: .cpuTiny, description: "tiny, CPU: 32×32×3 pixels, K = 8"),
        Preset(name: "router-B/2-text", config: RouterConfig.paris.withText(),
               description: "router-B/2 that also reads the prompt (pooled MiniLM caption embedding)"),
        Preset(name: "router-S/4-text", config: RouterConfig.cpuSmall.withText(),
               description: "router-S/4 that also reads the prompt (pooled MiniLM caption embedding)"),
        Preset(name: "router-T/4-text", config: RouterConfig.cpuTiny.withText(),
               description: "router-T/4 that also reads the prompt (pooled MiniLM caption embedding)"),
    ]

    /// Throws a clear error for a configuration the model cannot be built with.
    public func validate() throws {
        func fail(_ why: String) -> TorchError { TorchError("RouterConfig: \(why)") }
        guard inputSize > 0, inChannels > 0, patchSize > 0, hiddenSize > 0, depth >= 0, numHeads > 0,
              numExperts > 0, frequencyEmbeddingSize > 0, mlpRatio > 0 else {
            throw fail("sizes must be positive")
        }
        guard numExperts <= Self.maxExperts else {
            throw fail("num_experts must be ≤ \(Self.maxExperts) (RouterConfig.maxExperts), not \(numExperts)")
        }
        try ModelLimits.checkPatchTransformer(inputSize: inputSize, inChannels: inChannels, patchSize: patchSize,
                                              hiddenSize: hiddenSize, depth: depth, numHeads: numHeads,
                                              mlpRatio: mlpRatio, fail: fail)
        try ModelLimits.check("frequency_embedding_size", frequencyEmbeddingSize, ModelLimits.maxWidth, "maxWidth", fail)
        if let textDim {
            guard textDim > 0 else { throw fail("text_dim must be positive, not \(textDim)") }
            try ModelLimits.check("text_dim", textDim, ModelLimits.maxWidth, "maxWidth", fail)
        }
        try validatePatchTransformer(inputSize: inputSize, patchSize: patchSize, hiddenSize: hiddenSize,
                                     numHeads: numHeads, fail: fail)
    }

    /// Trainable parameters, computed from the configuration (equals `Router(config).parameterCount`).
    public var parameterCount: Int {
        let h = hiddenSize, m = mlpHiddenSize
        let linear = { (i: Int, o: Int) in i * o + o }
        let block = linear(h, 6 * h) + (4 * h * h + 4 * h) + linear(h, m) + linear(m, h)
        var total = inChannels * patchSize * patchSize * h + h     // patch_embed
        total += linear(frequencyEmbeddingSize, h) + linear(h, h)   // time_embed
        total += h                                                  // cls_token
        if let e = textDim { total += linear(e, h) + linear(h, h) + e }  // text_embed.0/2, null_text_embedding
        total += depth * block                                      // layers
        total += linear(h, h) + 2 * h + linear(h, numExperts)       // head.0, head.2 (LayerNorm), head.4
        return total
    }

    /// Scalars in the state dict: the parameters plus the fixed `pos_embed` buffer.
    public var stateDictCount: Int { parameterCount + numPatches * hiddenSize }
}

/// One adaLN-Zero block of the Paris router (keys `adaLN_modulation.1.*`, `attn.*` as torch MultiheadAttention,
/// `mlp.0.*`, `mlp.2.*`): the modulation comes from this block's own SiLU → Linear(hidden, 6·hidden) of t_emb;
/// x += gate₁·Attn(LN(x)·(1 + scale₁) + shift₁); x += gate₂·MLP(LN(x)·(1 + scale₂) + shift₂).
///
/// Same math as facebookresearch/DiT's block, but the released router stores attention as `nn.MultiheadAttention`
/// (`in_proj_weight`) and the MLP as a `Sequential` (`mlp.0`), not timm's `qkv` / `fc1`, and uses eps 1e-5.
public final class RouterBlock: Module {
    public let hiddenSize: Int
    public let normEps: Double
    /// SiLU → Linear(hidden, 6·hidden)
    public let adaLNModulation: Sequential
    public let attn: MultiheadAttention
    public let mlp: Sequential
    public var isTraining = true

    public init(hiddenSize: Int, numHeads: Int, mlpHiddenSize: Int, normEps: Double = 1e-5,
                dtype: DType = .float32, device: Device = .cpu) throws {
        self.hiddenSize = hiddenSize
        self.normEps = normEps
        adaLNModulation = Sequential(SiLU(), try Linear(hiddenSize, 6 * hiddenSize, dtype: dtype, device: device))
        attn = try MultiheadAttention(embedDim: hiddenSize, numHeads: numHeads, dtype: dtype, device: device)
        mlp = try parisMLP(hiddenSize, inner: mlpHiddenSize, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] {
        [("adaLN_modulation", adaLNModulation), ("attn", attn), ("mlp", mlp)]
    }

    /// x: [B, N, D], tEmb: [B, D] → [B, N, D]
    public func callAsFunction(_ x: Tensor, tEmb: Tensor) throws -> Tensor {
        let b = x.size(0), d = hiddenSize
        let m = try adaLNModulation(tEmb).reshape([b, 6, d]).chunk(6, dim: 1)  // 6 × [B, 1, D]
        var x = x
        let h1 = try modulateTokens(x.layerNorm([d], eps: normEps), shift: m[0], scale: m[1])
        x = try x + m[2] * attn(h1, h1, h1)
        let h2 = try modulateTokens(x.layerNorm([d], eps: normEps), shift: m[3], scale: m[4])
        return try x + m[5] * mlp(h2)
    }
}

/// The Paris router: scores which expert should denoise x_t at time t, from the noisy input alone (no text).
/// Keys as the released router: `patch_embed` (Conv2d), `pos_embed` (fixed 2-D sin-cos buffer), `time_embed.mlp.0/2`,
/// `cls_token` [1, 1, hidden] (prepended to the patch tokens, no position), `layers.N.*` (`RouterBlock`), and
/// `head` = Linear(h, h) → GELU(tanh) → LayerNorm(h) → GELU(tanh) → Linear(h, K) on the CLS output (`head.0`,
/// `head.2`, `head.4`). Softmax of its logits is p(k | x_t, t).
///
/// With `config.textDim` it is text-conditioned, p(k | x_t, t, c) (none of the reference systems has this): the
/// prompt's pooled caption embedding c [B, E] goes through `text_embed` = Linear(E, h) → SiLU → Linear(h, h) and is
/// added to the timestep embedding, the vector every block's adaLN reads (as DiT's `y_embedder` adds the class
/// embedding to `t_emb`). `null_text_embedding` [1, E] is the learned "no prompt" input (DiT's extra null class of
/// `LabelEmbedder`): the trainer drops captions to it (`ConditionDropout`), and a call without text uses it.
public final class Router: Module {
    public let config: RouterConfig
    public let patchEmbed: Conv2d
    /// [1, numPatches, hidden], fixed; saved in the state dict, not trained.
    public let posEmbed: Tensor
    public let timeEmbed: TimestepEmbedder
    /// Linear(textDim, hidden) → SiLU → Linear(hidden, hidden); nil for the text-free router.
    public let textEmbed: Sequential?
    /// [1, textDim], the learned null caption; nil for the text-free router.
    public let nullTextEmbedding: Tensor?
    /// [1, 1, hidden]
    public let clsToken: Tensor
    public let layers: [RouterBlock]
    public let head: Sequential
    public var isTraining = true

    /// Builds the router with DiT's initialisation (see `initializeWeights`).
    public init(_ config: RouterConfig, dtype: DType = .float32, device: Device = .cpu) throws {
        try config.validate()
        self.config = config
        let h = config.hiddenSize, p = config.patchSize
        patchEmbed = try Conv2d(config.inChannels, h, kernelSize: p, stride: p, dtype: dtype, device: device)
        posEmbed = try sinCos2DPositionEmbedding(embedDim: h, gridSize: config.gridSize)
            .to(device: device, dtype: dtype)
        timeEmbed = try TimestepEmbedder(hiddenSize: h, frequencyEmbeddingSize: config.frequencyEmbeddingSize,
                                         dtype: dtype, device: device)
        clsToken = try Tensor.zeros([1, 1, h], dtype: dtype, device: device).requiresGrad(true)
        if let e = config.textDim {
            textEmbed = Sequential(try Linear(e, h, dtype: dtype, device: device), SiLU(),
                                   try Linear(h, h, dtype: dtype, device: device))
            nullTextEmbedding = try Tensor.zeros([1, e], dtype: dtype, device: device).requiresGrad(true)
        } else {
            textEmbed = nil
            nullTextEmbedding = nil
        }
        layers = try (0..<config.depth).map { _ in
            try RouterBlock(hiddenSize: h, numHeads: config.numHeads, mlpHiddenSize: config.mlpHiddenSize,
                            normEps: config.normEps, dtype: dtype, device: device)
        }
        head = Sequential(try Linear(h, h, dtype: dtype, device: device), GELU(approximate: .tanh),
                          try LayerNorm(h, eps: 1e-5, dtype: dtype, device: device), GELU(approximate: .tanh),
                          try Linear(h, config.numExperts, dtype: dtype, device: device))
        try initializeWeights()
    }

    public var localParameters: [(String, Tensor)] {
        [("cls_token", clsToken)] + (nullTextEmbedding.map { [("null_text_embedding", $0)] } ?? [])
    }
    public var localBuffers: [(String, Tensor)] { [("pos_embed", posEmbed)] }
    public var children: [(String, any Module)] {
        var out: [(String, any Module)] = [("patch_embed", patchEmbed), ("time_embed", timeEmbed)]
        if let textEmbed { out.append(("text_embed", textEmbed)) }
        for (i, layer) in layers.enumerated() { out.append(("layers.\(i)", layer)) }
        out.append(("head", head))
        return out
    }

    /// DiT's initialisation: xavier-uniform Linear weights (the patch embedding's as a flattened matrix) with zero
    /// biases, N(0, 0.02) for the timestep MLP and the CLS token, and zero adaLN modulations (adaLN-Zero: every
    /// block starts as the identity). The head keeps xavier weights and a unit LayerNorm. The text MLP and the null
    /// caption get N(0, 0.02), as DiT's label embedding table.
    public func initializeWeights() throws {
        try withNoGrad {
            try xavierInitLinearsAndPatchEmbed(self, patchWeight: patchEmbed.weight, patchBias: patchEmbed.bias)
            try Init.normal_(timeEmbed.linear1.weight, std: 0.02)
            try Init.normal_(timeEmbed.linear2.weight, std: 0.02)
            try Init.normal_(clsToken, std: 0.02)
            if let textEmbed, let null = nullTextEmbedding {
                try Init.normal_((textEmbed[0] as! Linear).weight, std: 0.02)
                try Init.normal_((textEmbed[2] as! Linear).weight, std: 0.02)
                try Init.normal_(null, std: 0.02)
            }
            for layer in layers {
                let modulation = layer.adaLNModulation[1] as! Linear
                try Init.zeros_(modulation.weight)
                if let b = modulation.bias { try Init.zeros_(b) }
            }
        }
    }

    /// - x: [B, C, H, W] noisy input x_t, C = inChannels, H = W = inputSize
    /// - t: [B] network time (flow-matching t·1000)
    /// - text: [B, textDim] pooled caption embeddings (`TextCondition.pooled()`), only for a text-conditioned
    ///   router; nil there routes every sample unconditionally (the null caption). A text-free router refuses text.
    /// - returns: logits [B, K]
    public func callAsFunction(x: Tensor, t: Tensor, text: Tensor? = nil) throws -> Tensor {
        let c = config
        guard x.rank == 4, x.size(1) == c.inChannels, x.size(2) == c.inputSize, x.size(3) == c.inputSize else {
            throw TorchError("Router expects x of shape [B, \(c.inChannels), \(c.inputSize), \(c.inputSize)], "
                                 + "got \(x.shape)")
        }
        let b = x.size(0)
        guard t.rank == 1, t.size(0) == b else {
            throw TorchError("Router expects t of shape [\(b)] (one time per sample), got \(t.shape)")
        }
        let tokens = try patchEmbed(x).flatten(start: 2).transpose(1, 2) + posEmbed  // [B, N, D]
        var h = try Tensor.cat([clsToken.expand([b, 1, c.hiddenSize]), tokens], dim: 1)  // [B, 1 + N, D]
        var tEmb = try timeEmbed(t)                                                  // [B, D]
        if let textEmbed {
            tEmb = try tEmb + textEmbed(try caption(text, batch: b))                  // [B, E] → [B, D]
        } else if text != nil {
            throw TorchError("this router is text-free (no text_dim); it takes no caption embedding")
        }
        for layer in layers { h = try layer(h, tEmb: tEmb) }
        return try head(try h.select(1, 0))                                          // [B, D] → [B, K]
    }

    /// The caption input [B, textDim]: `text` checked, or the null caption for every sample when nil.
    func caption(_ text: Tensor?, batch b: Int) throws -> Tensor {
        guard let e = config.textDim, let null = nullTextEmbedding else {
            throw TorchError("this router is text-free (no text_dim); it has no caption input")
        }
        guard let text else { return try null.expand([b, e]) }
        guard text.rank == 2, text.size(0) == b, text.size(1) == e else {
            throw TorchError("Router expects pooled caption embeddings of shape [\(b), \(e)], got \(text.shape)")
        }
        return try text.to(dtype: null.dtype)
    }

    /// p(k | x_t, t) or, for a text-conditioned router, p(k | x_t, t, c): softmax of the logits.
    /// x: [B, C, H, W], t: [B], text: [B, textDim] or nil → [B, K]
    public func probabilities(x: Tensor, t: Tensor, text: Tensor? = nil) throws -> Tensor {
        try self(x: x, t: t, text: text).softmax(dim: -1)
    }
}
