import Foundation
import Torch

/// The feed-forward block of the released Paris models: `Sequential(Linear, GELU(tanh), Linear)`, so its keys are
/// `0.weight`, `0.bias`, `2.weight`, `2.bias`.
func parisMLP(_ hidden: Int, inner: Int, dtype: DType, device: Device) throws -> Sequential {
    Sequential(try Linear(hidden, inner, dtype: dtype, device: device), GELU(approximate: .tanh),
               try Linear(inner, hidden, dtype: dtype, device: device))
}

/// x·(1 + scale) + shift with shift, scale: [B, 1, C] broadcast over the tokens of x: [B, N, C].
@inline(__always)
func modulateTokens(_ x: Tensor, shift: Tensor, scale: Tensor) throws -> Tensor {
    try x * (try 1.0 + scale) + shift
}

/// One adaLN-Single block of a Paris expert (keys `scale_shift_table`, `attn.*`, `cross_attn.*`, `mlp.0.*`,
/// `mlp.2.*`):
///
///     (shift₁, scale₁, gate₁, shift₂, scale₂, gate₂) = scale_shift_table + t0
///     x += gate₁ · SelfAttn(LN(x)·(1 + scale₁) + shift₁)
///     x += CrossAttn(q = x, k = v = text)              (no norm, no gate)
///     x += gate₂ · MLP(LN(x)·(1 + scale₂) + shift₂)
///
/// LN has no affine parameters.
public final class ParisExpertBlock: Module {
    public let hiddenSize: Int
    public let normEps: Double
    /// [6, hidden], added to the shared `t_block` output.
    public let scaleShiftTable: Tensor
    public let attn: MultiheadAttention
    public let crossAttn: MultiheadAttention
    public let mlp: Sequential
    public var isTraining = true

    public init(hiddenSize: Int, numHeads: Int, mlpHiddenSize: Int, normEps: Double = 1e-5,
                dtype: DType = .float32, device: Device = .cpu) throws {
        self.hiddenSize = hiddenSize
        self.normEps = normEps
        scaleShiftTable = try Tensor.zeros([6, hiddenSize], dtype: dtype, device: device).requiresGrad(true)
        attn = try MultiheadAttention(embedDim: hiddenSize, numHeads: numHeads, dtype: dtype, device: device)
        crossAttn = try MultiheadAttention(embedDim: hiddenSize, numHeads: numHeads, dtype: dtype, device: device)
        mlp = try parisMLP(hiddenSize, inner: mlpHiddenSize, dtype: dtype, device: device)
    }

    public var localParameters: [(String, Tensor)] { [("scale_shift_table", scaleShiftTable)] }
    public var children: [(String, any Module)] { [("attn", attn), ("cross_attn", crossAttn), ("mlp", mlp)] }

    /// x: [B, N, D], t0: [B, 6, D], text: [B, L, D] (projected), textPaddingMask: [B, L] bool, true = ignore
    /// (PyTorch's key_padding_mask) → [B, N, D]
    public func callAsFunction(_ x: Tensor, t0: Tensor, text: Tensor, textPaddingMask: Tensor? = nil) throws -> Tensor {
        let m = try (scaleShiftTable.unsqueeze(0) + t0).chunk(6, dim: 1)  // 6 × [B, 1, D]
        let d = hiddenSize
        var x = x
        let h1 = try modulateTokens(x.layerNorm([d], eps: normEps), shift: m[0], scale: m[1])
        x = try x + m[2] * attn(h1, h1, h1)
        x = try x + crossAttn(x, text, text, keyPaddingMask: textPaddingMask)
        let h2 = try modulateTokens(x.layerNorm([d], eps: normEps), shift: m[3], scale: m[4])
        return try x + m[5] * mlp(h2)
    }
}

/// The expert's output layer (keys `final_layer.linear.*`, `final_layer.scale_shift_table`):
/// (shift, scale) = scale_shift_table + t_emb; Linear(LN(x)·(1 + scale) + shift).
public final class ParisExpertFinalLayer: Module {
    public let hiddenSize: Int
    public let normEps: Double
    public let linear: Linear
    /// [2, hidden]
    public let scaleShiftTable: Tensor
    public var isTraining = true

    public init(hiddenSize: Int, outFeatures: Int, normEps: Double = 1e-5, dtype: DType = .float32,
                device: Device = .cpu) throws {
        self.hiddenSize = hiddenSize
        self.normEps = normEps
        linear = try Linear(hiddenSize, outFeatures, dtype: dtype, device: device)
        scaleShiftTable = try Tensor.zeros([2, hiddenSize], dtype: dtype, device: device).requiresGrad(true)
    }

    public var localParameters: [(String, Tensor)] { [("scale_shift_table", scaleShiftTable)] }
    public var children: [(String, any Module)] { [("linear", linear)] }

    /// x: [B, N, D], tEmb: [B, D] → [B, N, outFeatures]
    public func callAsFunction(_ x: Tensor, tEmb: Tensor) throws -> Tensor {
        let m = try (scaleShiftTable.unsqueeze(0) + tEmb.unsqueeze(1)).chunk(2, dim: 1)  // 2 × [B, 1, D]
        return try linear(try modulateTokens(x.layerNorm([hiddenSize], eps: normEps), shift: m[0], scale: m[1]))
    }
}

/// A Paris expert: a Diffusion Transformer with adaLN-Single conditioning on the timestep and cross-attention on
/// text-token embeddings (PixArt-α style), with the released Paris experts' parameter names:
/// `patch_embed` (Conv2d, kernel = stride = patch), `pos_embed` (fixed 2-D sin-cos, a buffer), `time_embed.mlp.0/2`,
/// `text_proj`, `t_block.1` (after a SiLU), `layers.N.*` (`ParisExpertBlock`), `final_layer.*`, and with
/// `nullText == .learned` also `null_text_embedding`.
///
/// It predicts what it was trained on (velocity for flow matching) with the input's shape.
public final class ParisExpert: Module {
    public let config: ParisExpertConfig
    public let patchEmbed: Conv2d
    /// [1, numPatches, hidden], fixed 2-D sin-cos; saved in the state dict, not trained.
    public let posEmbed: Tensor
    public let timeEmbed: TimestepEmbedder
    public let textProj: Linear
    /// SiLU → Linear(hidden, 6·hidden), shared by all layers.
    public let tBlock: Sequential
    public let layers: [ParisExpertBlock]
    public let finalLayer: ParisExpertFinalLayer
    /// [textLength, textDim] when `config.nullText == .learned`.
    public let nullTextEmbedding: Tensor?
    public var isTraining = true

    /// Builds the expert with PixArt-α's initialisation (see `initializeWeights`). Modules are created in the
    /// reference's order, so the draws before `initializeWeights` follow PyTorch's.
    public init(_ config: ParisExpertConfig, dtype: DType = .float32, device: Device = .cpu) throws {
        try config.validate()
        self.config = config
        let h = config.hiddenSize, p = config.patchSize
        patchEmbed = try Conv2d(config.inChannels, h, kernelSize: p, stride: p, dtype: dtype, device: device)
        posEmbed = try sinCos2DPositionEmbedding(embedDim: h, gridSize: config.gridSize)
            .to(device: device, dtype: dtype)
        timeEmbed = try TimestepEmbedder(hiddenSize: h, frequencyEmbeddingSize: config.frequencyEmbeddingSize,
                                         dtype: dtype, device: device)
        textProj = try Linear(config.textDim, h, dtype: dtype, device: device)
        tBlock = Sequential(SiLU(), try Linear(h, 6 * h, dtype: dtype, device: device))
        layers = try (0..<config.depth).map { _ in
            try ParisExpertBlock(hiddenSize: h, numHeads: config.numHeads, mlpHiddenSize: config.mlpHiddenSize,
                                 normEps: config.normEps, dtype: dtype, device: device)
        }
        finalLayer = try ParisExpertFinalLayer(hiddenSize: h, outFeatures: p * p * config.inChannels,
                                               normEps: config.normEps, dtype: dtype, device: device)
        nullTextEmbedding = config.nullText == .learned
            ? try Tensor.zeros([config.textLength, config.textDim], dtype: dtype, device: device).requiresGrad(true)
            : nil
        try initializeWeights()
    }

    public var localParameters: [(String, Tensor)] {
        nullTextEmbedding.map { [("null_text_embedding", $0)] } ?? []
    }
    public var localBuffers: [(String, Tensor)] { [("pos_embed", posEmbed)] }
    public var children: [(String, any Module)] {
        var out: [(String, any Module)] = [("patch_embed", patchEmbed), ("time_embed", timeEmbed),
                                           ("text_proj", textProj), ("t_block", tBlock)]
        for (i, layer) in layers.enumerated() { out.append(("layers.\(i)", layer)) }
        out.append(("final_layer", finalLayer))
        return out
    }

    /// PixArt-α's initialisation: xavier-uniform Linear weights (the patch embedding's as a flattened matrix) with
    /// zero biases; N(0, 0.02) for the timestep MLP, `t_block` and `text_proj` weights; zero cross-attention output
    /// projections and final linear (so the untrained model predicts 0); scale-shift tables ~ N(0, 1)/√hidden;
    /// the learned null text ~ N(0, 1)/√textDim.
    public func initializeWeights() throws {
        try withNoGrad {
            try xavierInitLinearsAndPatchEmbed(self, patchWeight: patchEmbed.weight, patchBias: patchEmbed.bias)
            for linear in [timeEmbed.linear1, timeEmbed.linear2, textProj, tBlock[1] as! Linear] {
                try Init.normal_(linear.weight, std: 0.02)
            }
            let std = 1 / Double(config.hiddenSize).squareRoot()
            for layer in layers {
                try Init.normal_(layer.scaleShiftTable, std: std)
                try Init.zeros_(layer.crossAttn.outProj.weight)
                if let b = layer.crossAttn.outProj.bias { try Init.zeros_(b) }
            }
            try Init.normal_(finalLayer.scaleShiftTable, std: std)
            try Init.zeros_(finalLayer.linear.weight)
            if let b = finalLayer.linear.bias { try Init.zeros_(b) }
            if let null = nullTextEmbedding {
                try Init.normal_(null, std: 1 / Double(config.textDim).squareRoot())
            }
        }
    }

    /// The unconditional text for classifier-free guidance: zeros or the learned table, expanded to
    /// [batch, textLength, textDim]. With `.emptyPrompt` it throws: encode "" with the text encoder instead.
    public func nullText(batch: Int) throws -> Tensor {
        let shape = [batch, config.textLength, config.textDim]
        switch config.nullText {
        case .emptyPrompt:
            throw TorchError("ParisExpert: null_text is empty_prompt; the unconditional text is the text encoder's "
                                 + "embedding of \"\"")
        case .zero:
            return try Tensor.zeros(shape, dtype: posEmbed.dtype, device: posEmbed.device)
        case .learned:
            return try nullTextEmbedding!.unsqueeze(0).expand(shape)
        }
    }

    /// Caption dropout for classifier-free guidance training: the samples where `drop` is true get the null text
    /// (and an all-true mask). text: [B, textLength, textDim], textMask: [B, textLength] bool or nil, drop: [B]
    /// bool → the same shapes. Throws for `.emptyPrompt` (substitute the encoded "" instead).
    public func dropCaptions(text: Tensor, textMask: Tensor?, drop: Tensor) throws -> (text: Tensor, textMask: Tensor?) {
        let b = text.size(0)
        guard text.rank == 3, text.size(1) == config.textLength, text.size(2) == config.textDim else {
            throw TorchError("ParisExpert.dropCaptions expects text of shape [B, \(config.textLength), "
                                 + "\(config.textDim)] (padded to text_length), got \(text.shape)")
        }
        guard drop.shape == [b] else {
            throw TorchError("ParisExpert.dropCaptions expects drop of shape [\(b)], got \(drop.shape)")
        }
        let d = try drop.to(dtype: text.dtype).view([b, 1, 1])  // 1 = replace
        let dropped = try text * (try 1.0 - d) + (try nullText(batch: b)) * d
        guard let textMask else { return (dropped, nil) }
        let keep = try (textMask.to(dtype: .uint8) + drop.to(dtype: .uint8).unsqueeze(1)).ne(0)  // [B, L] bool
        return (dropped, keep)
    }

    /// Predicts the velocity (or whatever the expert was trained on).
    /// - x: [B, C, H, W] with C = inChannels and H = W = inputSize
    /// - t: [B] network time (flow-matching t·1000), float
    /// - text: [B, L, textDim] text-token embeddings (any L ≥ 1)
    /// - textMask: [B, L] bool, **true = keep** the token (a real token), false = padding to ignore; nil attends
    ///   to every token (as the released Paris does with CLIP's 77 padded tokens). Keep at least one token per row.
    /// - returns: [B, C, H, W]
    public func callAsFunction(x: Tensor, t: Tensor, text: Tensor, textMask: Tensor? = nil) throws -> Tensor {
        let c = config
        guard x.rank == 4, x.size(1) == c.inChannels, x.size(2) == c.inputSize, x.size(3) == c.inputSize else {
            throw TorchError("ParisExpert expects x of shape [B, \(c.inChannels), \(c.inputSize), \(c.inputSize)], "
                                 + "got \(x.shape)")
        }
        let b = x.size(0)
        guard t.rank == 1, t.size(0) == b else {
            throw TorchError("ParisExpert expects t of shape [\(b)] (one time per sample), got \(t.shape)")
        }
        guard text.rank == 3, text.size(0) == b, text.size(1) > 0, text.size(2) == c.textDim else {
            throw TorchError("ParisExpert expects text of shape [\(b), L, \(c.textDim)] (text_dim \(c.textDim)), "
                                 + "got \(text.shape)")
        }
        var paddingMask: Tensor? = nil
        if let textMask {
            guard textMask.shape == [b, text.size(1)] else {
                throw TorchError("ParisExpert expects text_mask of shape [\(b), \(text.size(1))], "
                                     + "got \(textMask.shape)")
            }
            paddingMask = try (textMask.dtype == .bool ? textMask : textMask.ne(0)).logicalNot()  // true = ignore
        }
        let d = c.hiddenSize
        var h = try patchEmbed(x).flatten(start: 2).transpose(1, 2) + posEmbed  // [B, N, D]
        let tEmb = try timeEmbed(t)                                             // [B, D]
        let t0 = try tBlock(tEmb).reshape([b, 6, d])                            // [B, 6, D]
        let context = try textProj(text)                                        // [B, L, D]
        for layer in layers {
            h = try layer(h, t0: t0, text: context, textPaddingMask: paddingMask)  // [B, N, D]
        }
        h = try finalLayer(h, tEmb: tEmb)                                       // [B, N, p·p·C]
        return try unpatchify(h, patchSize: c.patchSize, channels: c.inChannels)  // [B, C, H, W]
    }
}
