import Torch

/// Tiled encoding and decoding, diffusers' `enable_tiling` (`_tiled_encode`, `tiled_decode`): memory bounded by
/// one tile whatever the image size. With a tile of S pixels (`tileSampleSize`, diffusers' `tile_sample_min_size`,
/// by default `sample_size`), T = S / f latents (`tile_latent_min_size`) and overlap factor r (0.25):
///
///     decode: latent tiles of T start every ⌊T·(1 − r)⌋; each is decoded to ≤ S pixels; each output tile's
///             first e = ⌊S·r⌋ rows are blended with the bottom rows of the tile above it, then its first e
///             columns with the right columns of the (already blended) tile to its left:
///                 b[y] ← a[−e + y]·(1 − y/e) + b[y]·(y/e),  y = 0 … e − 1
///             and each tile keeps its first S − e rows and columns before the tiles are concatenated.
///     encode: the same with the roles swapped: image tiles of S every ⌊S·(1 − r)⌋, e = ⌊T·r⌋, kept T − e.
///
/// Only images (latents) larger than one tile on a side are tiled. Because each tile sees only its own pixels (the
/// mid-block attention and the GroupNorm statistics are per tile) the result differs from the untiled one; the
/// blending hides the seams. Matches diffusers' tiled output (tests: `AutoencoderKLTests`).
public struct AutoencoderKLTiling: Sendable, Equatable {
    /// The side of an image tile in pixels, S.
    public var tileSampleSize: Int
    /// The fraction of a tile shared with its neighbour, r ∈ [0, 1).
    public var overlapFactor: Double

    public init(tileSampleSize: Int, overlapFactor: Double = 0.25) {
        self.tileSampleSize = tileSampleSize
        self.overlapFactor = overlapFactor
    }

    /// diffusers' defaults for `config`: tiles of `sample_size` pixels (256 for sd-vae-ft-mse), overlap 0.25.
    public static func defaults(for config: AutoencoderKLConfig) -> AutoencoderKLTiling {
        AutoencoderKLTiling(tileSampleSize: config.sampleSize)
    }

    /// T = S / f, diffusers' `int(sample_size / 2 ** (levels − 1))`; throws unless the tiling is usable.
    func tileLatentSize(_ config: AutoencoderKLConfig) throws -> Int {
        let f = config.downsamplingFactor
        guard tileSampleSize >= f, overlapFactor >= 0, overlapFactor < 1 else {
            throw TorchError("AutoencoderKLTiling: the tile (\(tileSampleSize) px) must hold at least \(f) pixels "
                                 + "(one latent) and the overlap factor (\(overlapFactor)) must lie in [0, 1)")
        }
        let t = tileSampleSize / f
        guard Self.floor(Double(t) * (1 - overlapFactor)) > 0 else {
            throw TorchError("AutoencoderKLTiling: a latent tile of \(t) with overlap \(overlapFactor) advances by 0; "
                                 + "use larger tiles or less overlap")
        }
        return t
    }

    /// Python's `int(v)` for v ≥ 0.
    static func floor(_ v: Double) -> Int { Int(v) }
}

extension AutoencoderKL {
    /// Tiled `moments`: x [B, in, H, W] → [B, 2L, H/f, W/f].
    func tiledEncode(_ x: Tensor, _ tiling: AutoencoderKLTiling) throws -> Tensor {
        let s = tiling.tileSampleSize, t = try tiling.tileLatentSize(config), r = tiling.overlapFactor
        let blend = AutoencoderKLTiling.floor(Double(t) * r)
        return try tiled(x, tile: s, step: AutoencoderKLTiling.floor(Double(s) * (1 - r)), blend: blend,
                         keep: t - blend) { try moments($0) }
    }

    /// Tiled `image`: z [B, L, h, w] → [B, out, h·f, w·f].
    func tiledDecode(_ z: Tensor, _ tiling: AutoencoderKLTiling) throws -> Tensor {
        let s = tiling.tileSampleSize, t = try tiling.tileLatentSize(config), r = tiling.overlapFactor
        let blend = AutoencoderKLTiling.floor(Double(s) * r)
        return try tiled(z, tile: t, step: AutoencoderKLTiling.floor(Double(t) * (1 - r)), blend: blend,
                         keep: s - blend) { try image($0) }
    }

    /// Cuts `input` [B, C, H, W] into tiles of `tile`×`tile` starting every `step` rows and columns, maps each
    /// through `body`, blends each result's first `blend` rows with the tile above and then its first `blend`
    /// columns with the tile to the left, keeps the first `keep` rows and columns of each, and concatenates.
    private func tiled(_ input: Tensor, tile: Int, step: Int, blend: Int, keep: Int,
                       _ body: (Tensor) throws -> Tensor) throws -> Tensor {
        let height = input.size(2), width = input.size(3)
        var rows: [[Tensor]] = try stride(from: 0, to: height, by: step).map { i in
            try stride(from: 0, to: width, by: step).map { j in
                try body(try input.slice(2, i, min(i + tile, height)).slice(3, j, min(j + tile, width)))
            }
        }
        for i in rows.indices {
            for j in rows[i].indices {
                if i > 0 { rows[i][j] = try blendSeam(rows[i - 1][j], rows[i][j], extent: blend, dim: 2) }
                if j > 0 { rows[i][j] = try blendSeam(rows[i][j - 1], rows[i][j], extent: blend, dim: 3) }
            }
        }
        let strips = try rows.map { row in
            try Tensor.cat(try row.map { try $0.slice(2, 0, min(keep, $0.size(2))).slice(3, 0, min(keep, $0.size(3))) },
                           dim: 3)
        }
        return try Tensor.cat(strips, dim: 2)
    }

    /// diffusers' `blend_v` (dim 2) and `blend_h` (dim 3): the first e = min(extent, both sizes) rows (columns) of
    /// `b` become a[−e + y]·(1 − y/e) + b[y]·(y/e); the rest of `b` is unchanged.
    private func blendSeam(_ a: Tensor, _ b: Tensor, extent: Int, dim: Int) throws -> Tensor {
        let e = min(extent, a.size(dim), b.size(dim))
        guard e > 0 else { return b }
        var shape = [1, 1, 1, 1]
        shape[dim] = e
        func weights(_ w: (Double) -> Double) throws -> Tensor {
            try Tensor((0..<e).map { Float(w(Double($0) / Double(e))) }, shape: shape)
                .to(device: b.device, dtype: b.dtype)
        }
        let fromA = try a.slice(dim, a.size(dim) - e, a.size(dim)) * (try weights { 1 - $0 })
        let blended = try fromA + b.slice(dim, 0, e) * (try weights { $0 })
        return try Tensor.cat([blended, try b.slice(dim, e, b.size(dim))], dim: dim)
    }
}
