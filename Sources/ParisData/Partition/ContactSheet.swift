import Foundation
import ParisImage
import Torch

/// Image grids ("contact sheets") so a person can see what each cluster holds, and the image preparation the
/// partition shares with them.
public enum ContactSheet {
    /// Stacks grids of equal width vertically (one row of tiles per cluster in `grids.png`).
    static func rowsSheet(_ rows: [Tensor], columns: Int, gap: Int = 2) throws -> Image {
        var tiles: [Tensor] = []
        for row in rows {
            let n = row.size(0)
            var t = try row.slice(0, 0, min(n, columns))
            if t.size(0) < columns {
                t = try Tensor.cat([t, Tensor.full([columns - t.size(0), row.size(1), row.size(2), row.size(3)], 255,
                                                   dtype: .uint8)])
            }
            tiles.append(t)
        }
        return try ImageGrid.grid(try Tensor.cat(tiles), columns: columns, rows: rows.count, gap: gap)
    }

    /// The image at the training resolution: centre-cropped to a square, resized (antialiased bilinear) to
    /// `size` × `size`, with `channels` 3 (RGB; alpha composited over white) or 1 (ITU-R 601 luma, as PIL "L").
    public static func prepare(_ image: Image, size: Int, channels: Int) throws -> Image {
        var im = image.rgb(background: .white)
        if im.width != im.height {
            let side = min(im.width, im.height)
            im = try im.centerCropped(width: side, height: side)
        }
        if im.width != size { im = try im.resized(width: size, height: size) }
        return channels == 1 ? try gray(im) : im
    }

    /// Luma of an RGB image: (299·R + 587·G + 114·B) / 1000, rounded down, as PIL's `convert("L")`.
    public static func gray(_ image: Image) throws -> Image {
        if image.channels == 1 { return image }
        let rgb = image.rgb(background: .white)
        var out = [UInt8](repeating: 0, count: rgb.width * rgb.height)
        rgb.pixels.withUnsafeBufferPointer { p in
            for i in out.indices {
                let r: Int = Int(p[3 * i]) * 299
                let g: Int = Int(p[3 * i + 1]) * 587
                let b: Int = Int(p[3 * i + 2]) * 114
                out[i] = UInt8((r + g + b) / 1000)
            }
        }
        return try Image(width: rgb.width, height: rgb.height, channels: 1, pixels: out)
    }
}
