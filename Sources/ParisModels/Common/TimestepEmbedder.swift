import Foundation
import Torch

/// facebookresearch/DiT's timestep embedder: a sinusoidal embedding of the (fractional) timestep, of
/// `frequencyEmbeddingSize` (256) dimensions, then `mlp.0` Linear → SiLU → `mlp.2` Linear to `hiddenSize`.
/// Checkpoint keys `mlp.0.weight`, `mlp.0.bias`, `mlp.2.weight`, `mlp.2.bias` (`mlp.1` is the SiLU).
public final class TimestepEmbedder: Module {
    public let hiddenSize: Int
    public let frequencyEmbeddingSize: Int
    /// Linear(frequencyEmbeddingSize, hiddenSize)
    public let linear1: Linear
    /// Linear(hiddenSize, hiddenSize)
    public let linear2: Linear
    public var isTraining = true

    public init(hiddenSize: Int, frequencyEmbeddingSize: Int = 256, dtype: DType = .float32,
                device: Device = .cpu) throws {
        self.hiddenSize = hiddenSize
        self.frequencyEmbeddingSize = frequencyEmbeddingSize
        linear1 = try Linear(frequencyEmbeddingSize, hiddenSize, dtype: dtype, device: device)
        linear2 = try Linear(hiddenSize, hiddenSize, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] { [("mlp.0", linear1), ("mlp.2", linear2)] }

    /// Sinusoidal embeddings of timesteps, as GLIDE / DiT: with half = dim/2 and
    /// f_k = exp(−ln(maxPeriod)·k/half) (float32), the embedding is [cos(t·f), sin(t·f)], zero-padded by one
    /// column when `dim` is odd. t: [N] (any real dtype, fractional allowed) → float32 [N, dim].
    public static func timestepEmbedding(t: Tensor, dim: Int, maxPeriod: Double = 10000) throws -> Tensor {
        guard t.rank == 1 else {
            throw TorchError("timestepEmbedding expects a 1-D tensor of timesteps [N], got shape \(t.shape)")
        }
        guard dim > 0 else { throw TorchError("timestepEmbedding: dim must be positive, got \(dim)") }
        let half = dim / 2
        let freqs = try (Tensor.arange(0, Double(half), dtype: .float32, device: t.device)
            * -Foundation.log(maxPeriod) / Double(half)).exp()                        // [half]
        let args = try t.unsqueeze(1).to(dtype: .float32) * freqs.unsqueeze(0)       // [N, half]
        var embedding = try Tensor.cat([args.cos(), args.sin()], dim: -1)             // [N, 2·half]
        if dim % 2 == 1 {
            embedding = try Tensor.cat([embedding, Tensor.zeros([t.size(0), 1], device: t.device)], dim: -1)
        }
        return embedding
    }

    /// t: [N] → [N, hiddenSize]
    public func callAsFunction(_ t: Tensor) throws -> Tensor {
        let frequencies = try Self.timestepEmbedding(t: t, dim: frequencyEmbeddingSize)  // [N, 256]
        return try linear2(try linear1(frequencies.to(dtype: linear1.weight.dtype)).silu())
    }
}
