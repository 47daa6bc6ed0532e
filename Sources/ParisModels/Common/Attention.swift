import Torch

/// Multi-head self-attention as timm's `Attention` (which facebookresearch/DiT uses): one fused `qkv` Linear
/// (dim → 3·dim, q, k, v stacked), `numHeads` heads of dim/numHeads, libtorch's fused
/// `scaledDotProductAttention` (scale 1/√headDim), then the `proj` Linear.
/// Checkpoint keys `qkv.weight` [3·dim, dim], `qkv.bias`, `proj.weight` [dim, dim], `proj.bias`.
public final class Attention: Layer {
    public let dim: Int
    public let numHeads: Int
    public let headDim: Int
    public let qkv: Linear
    public let proj: Linear
    /// Attention-probability dropout, applied in training mode only (DiT uses 0).
    public let attentionDropout: Double
    public var isTraining = true

    public init(dim: Int, numHeads: Int, qkvBias: Bool = true, attentionDropout: Double = 0, dtype: DType = .float32,
                device: Device = .cpu) throws {
        guard dim > 0, numHeads > 0, dim % numHeads == 0 else {
            throw TorchError("Attention: dim (\(dim)) must be divisible by num_heads (\(numHeads))")
        }
        self.dim = dim
        self.numHeads = numHeads
        self.headDim = dim / numHeads
        self.attentionDropout = attentionDropout
        qkv = try Linear(dim, 3 * dim, bias: qkvBias, dtype: dtype, device: device)
        proj = try Linear(dim, dim, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] { [("qkv", qkv), ("proj", proj)] }

    /// x: [B, N, dim] → [B, N, dim]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 3, x.size(2) == dim else {
            throw TorchError("Attention(dim: \(dim)) expects [B, N, \(dim)], got \(x.shape)")
        }
        let b = x.size(0), n = x.size(1)
        let qkvHeads = try qkv(x).reshape([b, n, 3, numHeads, headDim]).permute([2, 0, 3, 1, 4])  // [3, B, H, N, D]
        let out = try scaledDotProductAttention(query: try qkvHeads.select(0, 0), key: try qkvHeads.select(0, 1),
                                                value: try qkvHeads.select(0, 2),
                                                dropout: isTraining ? attentionDropout : 0)  // [B, H, N, D]
        return try proj(try out.transpose(1, 2).reshape([b, n, dim]))  // [B, N, dim]
    }
}
