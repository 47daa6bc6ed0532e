import Foundation
import Torch

/// Tiled image grids: the contact sheets of the partition's clusters, the sample grids of `paris sample` and
/// `paris eval`.
public enum ImageGrid {
    /// A grid of `images` [n, C, S, S] uint8, `columns` wide and ceil(n / columns) (or `rows`) high, with a white
    /// gap of `gap` pixels after every tile; missing tiles are white.
    public static func grid(_ images: Tensor, columns: Int, rows: Int? = nil, gap: Int = 2) throws -> Image {
        guard images.rank == 4, [1, 3].contains(images.size(1)), images.size(2) == images.size(3) else {
            throw ImageError("a grid needs images [n, C, S, S] with C 1 or 3, not \(images.shape)")
        }
        let n = images.size(0), c = images.size(1), s = images.size(2)
        let cols = max(1, columns), r = rows ?? max(1, (n + cols - 1) / cols)
        let cells = r * cols, p = s + gap
        // tiles: [n, C, P, P] float32 in [0, 255]
        var tiles = try images.to(device: .cpu, dtype: .float32).slice(0, 0, min(n, cells)).pad([0, gap, 0, gap], value: 255)
        if tiles.size(0) < cells {
            tiles = try Tensor.cat([tiles, Tensor.full([cells - tiles.size(0), c, p, p], 255)])
        }
        // [rows, cols, C, P, P] → [C, rows, P, cols, P] → [C, rows·P, cols·P]
        let sheet = try tiles.reshape([r, cols, c, p, p]).permute([2, 0, 3, 1, 4]).reshape([c, r * p, cols * p])
        return try Image(tensor: sheet / 255.0, range: .zeroToOne)
    }

}
