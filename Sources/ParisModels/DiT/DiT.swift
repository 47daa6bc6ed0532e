import Foundation
import ParisDiffusion
import Torch

/// Class-label embedding with label dropout for classifier-free guidance, as facebookresearch/DiT's
/// `LabelEmbedder`. `embedding_table` has one row per class, plus the null class (index `numClasses`) when
/// `dropoutProb` > 0.
public final class LabelEmbedder: Module {
    public let numClasses: Int
    public let dropoutProb: Double
    public let embeddingTable: Embedding
    public var isTraining = true

    public init(numClasses: Int, hiddenSize: Int, dropoutProb: Double, device: Device = .cpu) throws {
        self.numClasses = numClasses
        self.dropoutProb = dropoutProb
        embeddingTable = try Embedding(numClasses + (dropoutProb > 0 ? 1 : 0), hiddenSize, device: device)
    }

    public var children: [(String, any Module)] { [("embedding_table", embeddingTable)] }

    /// The labels with some replaced by the null class: those where `forceDropIds` is 1, or, without it, each
    /// with probability `dropoutProb` (one `Tensor.rand([B])` draw, as the reference). labels: [B] → [B]
    public func tokenDrop(_ labels: Tensor, forceDropIds: Tensor? = nil) throws -> Tensor {
        let drop: Tensor
        if let forceDropIds {
            guard forceDropIds.shape == labels.shape else {
                throw TorchError("LabelEmbedder: force_drop_ids \(forceDropIds.shape) must have the labels' shape "
                                     + "\(labels.shape)")
            }
            drop = try forceDropIds.eq(1)
        } else {
            drop = try Tensor.rand([labels.size(0)], device: labels.device).lt(dropoutProb)
        }
        let null = try Tensor.full(labels.shape, Double(numClasses), dtype: labels.dtype, device: labels.device)
        return try Tensor.where(drop, null, labels)
    }

    /// labels: [B] integer → [B, hidden]. Labels are dropped when `train` and `dropoutProb` > 0, or when
    /// `forceDropIds` is given.
    public func callAsFunction(_ labels: Tensor, train: Bool, forceDropIds: Tensor? = nil) throws -> Tensor {
        guard labels.rank == 1, !labels.dtype.isFloatingPoint, labels.dtype != .bool else {
            throw TorchError("LabelEmbedder expects integer class labels [B], got \(labels.dtype) \(labels.shape)")
        }
        var y = labels
        if (train && dropoutProb > 0) || forceDropIds != nil {
            if dropoutProb <= 0 {
                throw TorchError("LabelEmbedder: cannot drop labels without a null class (class_dropout_prob is 0)")
            }
            y = try tokenDrop(labels, forceDropIds: forceDropIds)
        }
        return try embeddingTable(y)
    }
}

/// A DiT block with adaLN-Zero conditioning: from c, `adaLN_modulation.1` (after SiLU) gives shift, scale and gate
/// for the attention and for the MLP; x += gate·attn(modulate(norm1(x))), x += gate·mlp(modulate(norm2(x))).
/// norm1 and norm2 are LayerNorm(eps 1e-6) without affine parameters; the MLP uses tanh-approximated GELU.
public final class DiTBlock: Module {
    public let norm1: LayerNorm
    public let attn: Attention
    public let norm2: LayerNorm
    public let mlp: MLP
    /// Linear(hidden, 6·hidden): shift, scale, gate for attention, then for the MLP.
    public let adaLNModulation: Linear
    public var isTraining = true

    public init(hiddenSize: Int, numHeads: Int, mlpRatio: Double = 4, device: Device = .cpu) throws {
        norm1 = try LayerNorm(hiddenSize, eps: 1e-6, elementwiseAffine: false, device: device)
        attn = try Attention(dim: hiddenSize, numHeads: numHeads, qkvBias: true, device: device)
        norm2 = try LayerNorm(hiddenSize, eps: 1e-6, elementwiseAffine: false, device: device)
        mlp = try MLP(inFeatures: hiddenSize, hiddenFeatures: Int(Double(hiddenSize) * mlpRatio), approximate: .tanh,
                      device: device)
        adaLNModulation = try Linear(hiddenSize, 6 * hiddenSize, device: device)
    }

    public var children: [(String, any Module)] {
        [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp", mlp), ("adaLN_modulation.1", adaLNModulation)]
    }

    /// x: [B, N, D], c: [B, D] → [B, N, D]
    public func callAsFunction(_ x: Tensor, _ c: Tensor) throws -> Tensor {
        let m = try adaLNModulation(c.silu()).chunk(6, dim: 1)  // 6 × [B, D]
        let h = try x + m[2].unsqueeze(1) * attn(try modulate(norm1(x), shift: m[0], scale: m[1]))
        return try h + m[5].unsqueeze(1) * mlp(try modulate(norm2(h), shift: m[3], scale: m[4]))
    }
}

/// DiT's final layer: modulate(norm_final(x)) with shift and scale from `adaLN_modulation.1`, then `linear` to
/// p·p·outChannels values per token.
public final class DiTFinalLayer: Module {
    public let normFinal: LayerNorm
    public let linear: Linear
    /// Linear(hidden, 2·hidden): shift, scale.
    public let adaLNModulation: Linear
    public var isTraining = true

    public init(hiddenSize: Int, patchSize: Int, outChannels: Int, device: Device = .cpu) throws {
        normFinal = try LayerNorm(hiddenSize, eps: 1e-6, elementwiseAffine: false, device: device)
        linear = try Linear(hiddenSize, patchSize * patchSize * outChannels, device: device)
        adaLNModulation = try Linear(hiddenSize, 2 * hiddenSize, device: device)
    }

    public var children: [(String, any Module)] {
        [("norm_final", normFinal), ("linear", linear), ("adaLN_modulation.1", adaLNModulation)]
    }

    /// x: [B, N, D], c: [B, D] → [B, N, p·p·outChannels]
    public func callAsFunction(_ x: Tensor, _ c: Tensor) throws -> Tensor {
        let m = try adaLNModulation(c.silu()).chunk(2, dim: 1)  // shift, scale: [B, D]
        return try linear(try modulate(normFinal(x), shift: m[0], scale: m[1]))
    }
}

/// facebookresearch/DiT's Diffusion Transformer with adaLN-Zero conditioning on a timestep and a class label.
///
/// Parameter names equal the reference's `state_dict()` keys (`pos_embed`, `x_embedder.proj.weight`,
/// `t_embedder.mlp.0.weight`, `y_embedder.embedding_table.weight`, `blocks.N.attn.qkv.weight`,
/// `blocks.N.adaLN_modulation.1.weight`, `final_layer.linear.weight`, ...), so a reference checkpoint loads strictly.
/// `pos_embed` [1, N, D] is the fixed sine–cosine embedding, a parameter that requires no gradient (as the
/// reference's `nn.Parameter(requires_grad=False)`): it is saved, counted, and skipped by optimizers.
public final class DiT: Module {
    public let config: DiTConfig
    public let xEmbedder: PatchEmbed
    public let tEmbedder: TimestepEmbedder
    public let yEmbedder: LabelEmbedder
    /// [1, numPatches, hidden], requiresGrad false.
    public let posEmbed: Tensor
    public let blocks: [DiTBlock]
    public let finalLayer: DiTFinalLayer
    public var isTraining = true

    /// Builds the model and initialises it as the reference (`initializeWeights`). Layers are created in the
    /// reference's order, so after `Runtime.manualSeed(s)` the weights equal those of
    /// `torch.manual_seed(s); DiT(...)` on the CPU.
    public init(_ config: DiTConfig, device: Device = .cpu) throws {
        try config.validate()
        self.config = config
        let h = config.hiddenSize
        xEmbedder = try PatchEmbed(inputSize: config.inputSize, patchSize: config.patchSize,
                                   inChannels: config.inChannels, embedDim: h, device: device)
        tEmbedder = try TimestepEmbedder(hiddenSize: h, device: device)
        yEmbedder = try LabelEmbedder(numClasses: config.numClasses, hiddenSize: h,
                                      dropoutProb: config.classDropoutProb, device: device)
        posEmbed = try Tensor.zeros([1, config.numPatches, h], device: device)
        blocks = try (0..<config.depth).map { _ in
            try DiTBlock(hiddenSize: h, numHeads: config.numHeads, mlpRatio: config.mlpRatio, device: device)
        }
        finalLayer = try DiTFinalLayer(hiddenSize: h, patchSize: config.patchSize, outChannels: config.outChannels,
                                       device: device)
        try initializeWeights()
    }

    public var localParameters: [(String, Tensor)] { [("pos_embed", posEmbed)] }

    public var children: [(String, any Module)] {
        [("x_embedder", xEmbedder), ("t_embedder", tEmbedder), ("y_embedder", yEmbedder)]
            + blocks.enumerated().map { ("blocks.\($0.offset)", $0.element as any Module) }
            + [("final_layer", finalLayer)]
    }

    /// The reference's `initialize_weights`, in its order: xavier-uniform weights and zero biases for every
    /// Linear; the sine–cosine `pos_embed`; xavier-uniform on the patch embedding's weight viewed as
    /// [hidden, C·p·p] and a zero bias; N(0, 0.02) for the label table and both timestep-MLP weights; zeros for
    /// every adaLN modulation and for the final linear layer (adaLN-Zero: each block starts as the identity).
    public func initializeWeights() throws {
        try withNoGrad {
            try xavierInitLinearsAndPatchEmbed(self, patchWeight: xEmbedder.proj.weight, patchBias: xEmbedder.proj.bias)
            let pos = try sinCos2DPositionEmbedding(embedDim: config.hiddenSize,
                                                    gridSize: config.gridSize)
            try posEmbed.copy_(pos)
            try Init.normal_(yEmbedder.embeddingTable.weight, std: 0.02)
            try Init.normal_(tEmbedder.linear1.weight, std: 0.02)
            try Init.normal_(tEmbedder.linear2.weight, std: 0.02)
            for block in blocks {
                try Init.zeros_(block.adaLNModulation.weight)
                if let b = block.adaLNModulation.bias { try Init.zeros_(b) }
            }
            try Init.zeros_(finalLayer.adaLNModulation.weight)
            if let b = finalLayer.adaLNModulation.bias { try Init.zeros_(b) }
            try Init.zeros_(finalLayer.linear.weight)
            if let b = finalLayer.linear.bias { try Init.zeros_(b) }
        }
    }

    /// The conditioning vector c = t_embedder(t) + y_embedder(y): t [B] (the network's time input, already scaled,
    /// e.g. flow-matching t·1000), y [B] int64 → [B, hidden]. Labels are dropped in training mode (CFG).
    public func conditioning(t: Tensor, y: Tensor, forceDropIds: Tensor? = nil) throws -> Tensor {
        try tEmbedder(t) + yEmbedder(y, train: isTraining, forceDropIds: forceDropIds)
    }

    /// x: [B, C, H, W], t: [B] (the network's time input, already ×1000), y: [B] int64 class labels (the null class
    /// `numClasses` is allowed when class_dropout_prob > 0) → [B, outChannels, H, W].
    /// In training mode labels are dropped with probability class_dropout_prob; `forceDropIds` (1 = drop) forces it.
    public func callAsFunction(x: Tensor, t: Tensor, y: Tensor, forceDropIds: Tensor? = nil) throws -> Tensor {
        try checkInputs(x: x, t: t, y: y)
        let c = try conditioning(t: t, y: y, forceDropIds: forceDropIds)  // [B, D]
        var h = try xEmbedder(x) + posEmbed                                 // [B, N, D], N = H·W / p²
        for block in blocks { h = try block(h, c) }                         // [B, N, D]
        let out = try finalLayer(h, c)                                      // [B, N, p·p·outC]
        return try unpatchify(out, patchSize: config.patchSize, channels: config.outChannels)  // [B, outC, H, W]
    }

    /// Classifier-free guidance in one batch, as the reference's `forward_with_cfg`: x, t, y hold the conditional
    /// half then the unconditional half (labels = null class); the first half of x is used for both
    /// (`Guidance.onePass`). The first `guidedChannels` output channels become uncond + scale·(cond − uncond) in
    /// both halves; the rest are the model's own. The reference guides 3 channels "for exact reproducibility"; the
    /// default here guides every input channel (the standard approach). x: [2B, C, H, W] → [2B, outC, H, W]
    public func forwardWithCFG(x: Tensor, t: Tensor, y: Tensor, cfgScale: Double,
                               guidedChannels: Int? = nil) throws -> Tensor {
        let n = x.size(0)
        guard n % 2 == 0, n > 0 else {
            throw TorchError("forwardWithCFG expects an even batch (conditional half, then unconditional), got \(n)")
        }
        let g = min(guidedChannels ?? config.inChannels, config.outChannels)
        var out: Tensor? = nil  // [2B, outC, H, W], the model's own output
        // The network gets [half; half] with t and y as given (the reference's t, not the first half doubled).
        let mixed = try Guidance.onePass(x: x.slice(0, 0, n / 2), t: t.slice(0, 0, n / 2), scale: cfgScale) { xx, _ in
            out = try self(x: xx, t: t, y: y)
            return try out!.slice(1, 0, g)
        }                                                                      // [B, g, H, W]
        let rest = try out!.slice(1, g, config.outChannels)                    // [2B, outC − g, H, W]
        return try Tensor.cat([try Tensor.cat([mixed, mixed], dim: 0), rest], dim: 1)
    }

    private func checkInputs(x: Tensor, t: Tensor, y: Tensor) throws {
        let s = config.inputSize, c = config.inChannels
        guard x.rank == 4, x.size(1) == c, x.size(2) == s, x.size(3) == s else {
            throw TorchError("DiT expects x of shape [B, \(c), \(s), \(s)] (in_channels \(c), input_size \(s)), got "
                                 + "\(x.shape)")
        }
        let b = x.size(0)
        guard t.shape == [b] else {
            throw TorchError("DiT expects one timestep per sample, t of shape [\(b)], got \(t.shape)")
        }
        guard y.shape == [b] else {
            throw TorchError("DiT expects one class label per sample, y of shape [\(b)], got \(y.shape)")
        }
    }
}
