import CTorch

/// The transformer feed-forward block of timm's `Mlp`, as facebookresearch/DiT uses it: fc1 → GELU → dropout →
/// fc2 → dropout. Children `fc1`, `act`, `drop1`, `fc2`, `drop2` (checkpoint keys `fc1.weight`, `fc2.bias`...);
/// fc1 is initialised before fc2, as in timm. DiT: `MLP(hidden, hiddenFeatures: 4 * hidden, approximate: .tanh)`.
public final class MLP: Layer {
    public let fc1: Linear
    public let act: GELU
    public let drop1: Dropout
    public let fc2: Linear
    public let drop2: Dropout
    public var isTraining = true

    /// `hiddenFeatures` and `outFeatures` default to `inFeatures`, as in timm.
    public init(inFeatures: Int, hiddenFeatures: Int? = nil, outFeatures: Int? = nil,
                approximate: GELU.Approximation = .none, bias: Bool = true, drop: Double = 0,
                dtype: DType = .float32, device: Device = .cpu) throws {
        let hidden = hiddenFeatures ?? inFeatures
        fc1 = try Linear(inFeatures, hidden, bias: bias, dtype: dtype, device: device)
        act = GELU(approximate: approximate)
        drop1 = try Dropout(p: drop)
        fc2 = try Linear(hidden, outFeatures ?? inFeatures, bias: bias, dtype: dtype, device: device)
        drop2 = try Dropout(p: drop)
    }

    public var children: [(String, any Module)] {
        [("fc1", fc1), ("act", act), ("drop1", drop1), ("fc2", fc2), ("drop2", drop2)]
    }

    /// x: [..., in] → [..., out]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try drop1(try act(try fc1(x)))  // h: [..., hidden]
        return try drop2(try fc2(h))
    }
}

/// Multi-head attention with batch-first inputs (`torch.nn.MultiheadAttention(batch_first=True)`, kdim = vdim =
/// embedDim, no bias_kv), computed with the fused `scaledDotProductAttention`. It returns the attention output
/// only (PyTorch's `need_weights=False`).
///
/// Parameters as in PyTorch's checkpoints: `in_proj_weight` [3E, E] (q, k, v stacked), `in_proj_bias` [3E],
/// child `out_proj` (`weight` [E, E], `bias` [E]). Initialisation draws in PyTorch's order: out_proj as a Linear
/// (weight, then bias), then xavier_uniform on in_proj_weight; both biases are then zeroed.
///
/// Masks follow PyTorch: in `keyPaddingMask` [B, S] and a boolean `attnMask` ([L, S] or [B·H, L, S]) true means
/// "do not attend"; float masks are added to the attention scores.
public final class MultiheadAttention: Layer {
    public let embedDim: Int
    public let numHeads: Int
    public let headDim: Int
    /// Attention dropout, applied in training mode only.
    public let dropout: Double
    /// [3·embedDim, embedDim]
    public let inProjWeight: Tensor
    /// [3·embedDim], or nil when made with `bias: false`.
    public let inProjBias: Tensor?
    public let outProj: Linear
    public var isTraining = true

    public init(embedDim: Int, numHeads: Int, dropout: Double = 0, bias: Bool = true, dtype: DType = .float32,
                device: Device = .cpu) throws {
        guard numHeads > 0, embedDim > 0, embedDim % numHeads == 0 else {
            throw TorchError("MultiheadAttention: embed_dim (\(embedDim)) must be divisible by num_heads (\(numHeads))")
        }
        guard (0...1).contains(dropout) else {
            throw TorchError("MultiheadAttention: dropout must be between 0 and 1, got \(dropout)")
        }
        self.embedDim = embedDim
        self.numHeads = numHeads
        self.headDim = embedDim / numHeads
        self.dropout = dropout
        let e = embedDim
        let weight = try Tensor.empty([3 * e, e], dtype: dtype, device: device)
        let biasTensor = bias ? try Tensor.empty([3 * e], dtype: dtype, device: device) : nil
        outProj = try Linear(e, e, bias: bias, dtype: dtype, device: device)  // draws weight, then bias
        try Init.xavierUniform_(weight)
        if let biasTensor { try Init.zeros_(biasTensor) }
        if let b = outProj.bias { try Init.zeros_(b) }
        inProjWeight = try weight.requiresGrad(true)
        inProjBias = try biasTensor?.requiresGrad(true)
    }

    public var localParameters: [(String, Tensor)] {
        if let inProjBias { return [("in_proj_weight", inProjWeight), ("in_proj_bias", inProjBias)] }
        return [("in_proj_weight", inProjWeight)]
    }

    public var children: [(String, any Module)] { [("out_proj", outProj)] }

    /// Self-attention without masks. x: [B, L, E] → [B, L, E]
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, x, x) }

    /// query: [B, L, E], key and value: [B, S, E] (or [L, E] and [S, E] unbatched) → [B, L, E].
    /// Passing the same tensor object as query, key and value (or as key and value) projects it with one matmul.
    public func callAsFunction(_ query: Tensor, _ key: Tensor, _ value: Tensor, keyPaddingMask: Tensor? = nil,
                               attnMask: Tensor? = nil) throws -> Tensor {
        if query.rank == 2 {
            // Unbatched: [L, E] → [1, L, E] and back.
            // Keep identical inputs identical, so the packed projection still applies.
            let q = try query.unsqueeze(0)
            let k = key === query ? q : try key.unsqueeze(0)
            let v = value === key ? k : value === query ? q : try value.unsqueeze(0)
            return try self(q, k, v, keyPaddingMask: try keyPaddingMask?.unsqueeze(0), attnMask: attnMask).squeeze(0)
        }
        try checkShapes(query, key, value)
        let b = query.size(0), l = query.size(1), s = key.size(1)
        let (q, k, v) = try project(query, key, value)  // q: [B, L, E]; k, v: [B, S, E]
        func heads(_ t: Tensor, _ n: Int) throws -> Tensor {
            try t.reshape([b, n, numHeads, headDim]).transpose(1, 2)  // [B, H, n, D]
        }
        let mask = try additiveMask(keyPaddingMask, attnMask, b: b, l: l, s: s, like: q)  // [B|1, H|1, L, S]
        let attn = try scaledDotProductAttention(query: try heads(q, l), key: try heads(k, s), value: try heads(v, s),
                                                 mask: mask, dropout: isTraining ? dropout : 0)  // [B, H, L, D]
        return try outProj(try attn.transpose(1, 2).reshape([b, l, embedDim]))  // [B, L, E]
    }

    /// The q, k, v projections, sharing one matmul when the inputs are the same tensor (as PyTorch's
    /// `_in_projection_packed`).
    private func project(_ query: Tensor, _ key: Tensor, _ value: Tensor) throws -> (Tensor, Tensor, Tensor) {
        let e = embedDim
        func w(_ from: Int, _ to: Int) throws -> Tensor { try inProjWeight.slice(0, from * e, to * e) }
        func bias(_ from: Int, _ to: Int) throws -> Tensor? { try inProjBias?.slice(0, from * e, to * e) }
        if query === key && key === value {
            let qkv = try query.linear(weight: inProjWeight, bias: inProjBias).chunk(3, dim: -1)  // 3 × [B, L, E]
            return (qkv[0], qkv[1], qkv[2])
        }
        let q = try query.linear(weight: try w(0, 1), bias: try bias(0, 1))
        if key === value {
            let kv = try key.linear(weight: try w(1, 3), bias: try bias(1, 3)).chunk(2, dim: -1)  // 2 × [B, S, E]
            return (q, kv[0], kv[1])
        }
        return (q, try key.linear(weight: try w(1, 2), bias: try bias(1, 2)),
                try value.linear(weight: try w(2, 3), bias: try bias(2, 3)))
    }

    private func checkShapes(_ query: Tensor, _ key: Tensor, _ value: Tensor) throws {
        guard query.rank == 3, key.rank == 3, value.rank == 3 else {
            throw TorchError("MultiheadAttention expects batched inputs [B, L, E] for query, key and value, got "
                                 + "\(query.shape), \(key.shape), \(value.shape)")
        }
        guard query.size(2) == embedDim, key.size(2) == embedDim, value.size(2) == embedDim else {
            throw TorchError("MultiheadAttention(embed_dim: \(embedDim)): query, key and value must end in "
                                 + "\(embedDim), got \(query.shape), \(key.shape), \(value.shape)")
        }
        guard key.shape == value.shape, key.size(0) == query.size(0) else {
            throw TorchError("MultiheadAttention: key \(key.shape) and value \(value.shape) must have equal shapes "
                                 + "and the batch size of query \(query.shape)")
        }
    }

    /// PyTorch's mask merging: boolean masks become 0 / −∞ in q's dtype, float masks are added; the key padding
    /// mask [B, S] broadcasts as [B, 1, 1, S], the attention mask [L, S] as [1, 1, L, S] or [B·H, L, S] as
    /// [B, H, L, S]. Nil when neither is given.
    private func additiveMask(_ keyPadding: Tensor?, _ attn: Tensor?, b: Int, l: Int, s: Int,
                              like q: Tensor) throws -> Tensor? {
        func additive(_ m: Tensor) throws -> Tensor {
            if m.dtype == .bool {
                return try Tensor.zeros(m.shape, dtype: q.dtype, device: q.device).maskedFill(m, -.infinity)
            }
            return try m.to(device: q.device, dtype: q.dtype)
        }
        var mask: Tensor?
        if let keyPadding {
            guard keyPadding.shape == [b, s] else {
                throw TorchError("MultiheadAttention: key_padding_mask must have shape [\(b), \(s)] (batch, key "
                                     + "length), got \(keyPadding.shape)")
            }
            mask = try additive(keyPadding).reshape([b, 1, 1, s])
        }
        if let attn {
            let shaped: Tensor
            if attn.shape == [l, s] {
                shaped = try additive(attn).reshape([1, 1, l, s])
            } else if attn.shape == [b * numHeads, l, s] {
                shaped = try additive(attn).reshape([b, numHeads, l, s])
            } else {
                throw TorchError("MultiheadAttention: attn_mask must have shape [\(l), \(s)] or "
                                     + "[\(b * numHeads), \(l), \(s)], got \(attn.shape)")
            }
            mask = try mask.map { try $0 + shaped } ?? shaped
        }
        return mask
    }
}
