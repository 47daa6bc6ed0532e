import Foundation
import Torch

/// The fixed 2-D sine–cosine position embedding of facebookresearch/DiT (`get_2d_sincos_pos_embed`, from MAE) for
/// a `gridSize`×`gridSize` grid of patches, as float32 [1, gridSize², embedDim].
///
/// Token n = i·gridSize + j (row i, column j) gets [emb₁(j), emb₁(i)]: the first half encodes the column, the second
/// the row (the reference's meshgrid puts w first). emb₁(p) of size D' = embedDim/2 is
/// [sin(p·ω₀), …, sin(p·ω_{D'/2−1}), cos(p·ω₀), …] with ω_k = 1 / 10000^(k / (D'/2)).
/// Computed in float64, as numpy does, then rounded to float32. `embedDim` must be a multiple of 4.
public func sinCos2DPositionEmbedding(embedDim: Int, gridSize: Int) throws -> Tensor {
    guard embedDim > 0, embedDim % 4 == 0 else {
        throw TorchError("sinCos2DPositionEmbedding: embed_dim must be a positive multiple of 4, got \(embedDim)")
    }
    guard gridSize > 0 else {
        throw TorchError("sinCos2DPositionEmbedding: grid_size must be positive, got \(gridSize)")
    }
    let half = embedDim / 2      // per axis
    let quarter = half / 2       // frequencies per axis
    let omega: [Double] = (0..<quarter).map { k in
        var o = Double(k)
        o /= Double(half) / 2.0
        return 1.0 / Foundation.pow(10000.0, o)
    }
    var values = [Double](repeating: 0, count: gridSize * gridSize * embedDim)
    for i in 0..<gridSize {
        for j in 0..<gridSize {
            let base = (i * gridSize + j) * embedDim
            for (axis, pos) in [Double(j), Double(i)].enumerated() {
                let offset = base + axis * half
                for k in 0..<quarter {
                    let arg = pos * omega[k]
                    values[offset + k] = Foundation.sin(arg)
                    values[offset + quarter + k] = Foundation.cos(arg)
                }
            }
        }
    }
    return try Tensor(values, shape: [1, gridSize * gridSize, embedDim]).to(dtype: .float32)
}
