import Torch

/// Classifier-free guidance (Ho & Salimans, arXiv 2207.12598): from the conditional prediction v_c and the
/// unconditional one v_u (the null condition: DiT's null class, a null or empty-prompt text embedding),
///
///     v = v_u + s·(v_c − v_u)
///
/// with s the guidance scale: s = 1 is no guidance (v = v_c, one plain conditional pass), s = 0 the
/// unconditional model, s > 1 pushes away from it. Every sampler, expert adapter and DiT's `forwardWithCFG`
/// guides through these functions; Paris guides each expert before the router-weighted mixture.
public enum Guidance {
    /// Whether the scale s guides at all (s ≠ 1). With s = 1 callers make one conditional pass and never
    /// evaluate the unconditional branch.
    public static func isGuided(scale s: Double) -> Bool { s != 1 }

    /// v = v_u + s·(v_c − v_u). conditional, unconditional: the same shape [B, ...] → [B, ...]
    public static func combine(conditional vc: Tensor, unconditional vu: Tensor, scale s: Double) throws -> Tensor {
        try vu + (vc - vu) * s
    }

    /// Both branches in one forward pass, as facebookresearch/DiT's `forward_with_cfg`: `network` receives the
    /// doubled batch [x; x] and [t; t] (2B rows) and must condition rows 0..<B on the condition and rows B..<2B on
    /// the null condition (`stack(_:_:)` builds such a [c; null]); its output is split, conditional half first,
    /// and combined. x: [B, ...], t: [B] (network time) → [B, ...]
    public static func onePass(x: Tensor, t: Tensor, scale s: Double,
                               _ network: (_ x: Tensor, _ t: Tensor) throws -> Tensor) throws -> Tensor {
        let out = try network(Tensor.cat([x, x], dim: 0), Tensor.cat([t, t], dim: 0))  // [2B, ...]
        let halves = try out.chunk(2, dim: 0)                                            // v_c, v_u: [B, ...]
        return try combine(conditional: halves[0], unconditional: halves[1], scale: s)
    }

    /// The condition of a one-pass call: [c; null] along the batch. condition, null: [B, ...] → [2B, ...]
    public static func stack(_ condition: Tensor, _ null: Tensor) throws -> Tensor {
        try Tensor.cat([condition, null], dim: 0)
    }
}
