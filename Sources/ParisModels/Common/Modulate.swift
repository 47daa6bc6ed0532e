import Torch

/// adaLN modulation, as facebookresearch/DiT's `modulate`: x·(1 + scale) + shift, with per-sample shift and
/// scale broadcast over the tokens.
/// x: [B, N, C], shift and scale: [B, C] → [B, N, C]
public func modulate(_ x: Tensor, shift: Tensor, scale: Tensor) throws -> Tensor {
    try x * (try 1.0 + scale.unsqueeze(1)) + shift.unsqueeze(1)
}
