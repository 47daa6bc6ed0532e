import Torch

/// The benchmark's model: a stack of DiT blocks (facebookresearch/DiT's DiTBlock: adaLN-Zero modulation, fused
/// attention, tanh-GELU MLP), the same as `bench/block_stack.py`.
final class Block: Module {
    let heads: Int
    let norm1: LayerNorm, norm2: LayerNorm
    let qkv: Linear, proj: Linear, fc1: Linear, fc2: Linear
    let adaLNModulation: Linear
    var isTraining = true

    init(hidden: Int, heads: Int) throws {
        self.heads = heads
        norm1 = try LayerNorm(hidden, eps: 1e-6, elementwiseAffine: false)
        qkv = try Linear(hidden, 3 * hidden)
        proj = try Linear(hidden, hidden)
        norm2 = try LayerNorm(hidden, eps: 1e-6, elementwiseAffine: false)
        fc1 = try Linear(hidden, 4 * hidden)
        fc2 = try Linear(4 * hidden, hidden)
        adaLNModulation = try Linear(hidden, 6 * hidden)
    }

    var children: [(String, any Module)] {
        [("norm1", norm1), ("qkv", qkv), ("proj", proj), ("norm2", norm2), ("fc1", fc1), ("fc2", fc2),
         ("adaLN_modulation", adaLNModulation)]
    }

    private func modulate(_ x: Tensor, _ shift: Tensor, _ scale: Tensor) throws -> Tensor {
        try x * (try 1.0 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    }

    // x: [B, N, C], c: [B, C]
    func callAsFunction(_ x: Tensor, _ c: Tensor) throws -> Tensor {
        let (b, n, ch) = (x.size(0), x.size(1), x.size(2))
        let m = try adaLNModulation(c.silu()).chunk(6, dim: 1)  // 6 × [B, C]
        var h = try modulate(norm1(x), m[0], m[1])
        let qkvOut = try qkv(h).reshape([b, n, 3, heads, ch / heads]).permute([2, 0, 3, 1, 4])  // [3, B, H, N, D]
        let a = try scaledDotProductAttention(query: qkvOut[0], key: qkvOut[1], value: qkvOut[2])  // [B, H, N, D]
            .transpose(1, 2).reshape([b, n, ch])
        let x = try x + m[2].unsqueeze(1) * proj(a)
        h = try modulate(norm2(x), m[3], m[4])
        return try x + m[5].unsqueeze(1) * fc2(fc1(h).gelu(approximateTanh: true))
    }
}
