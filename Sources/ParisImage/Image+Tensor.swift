import Foundation
import Torch

/// The value range of a float image tensor.
public enum PixelRange: Sendable {
    /// 0 → 0, 255 → 1.
    case zeroToOne
    /// 0 → −1, 255 → 1 (the diffusion models' input range).
    case minusOneToOne
}

extension Image {
    /// A float32 CPU tensor [C, H, W] in `range`.
    public func tensor(range: PixelRange = .minusOneToOne) throws -> Tensor {
        let hwc = try pixels.withUnsafeBytes { try Tensor(bytes: $0, shape: [height, width, channels], dtype: .uint8) }
        let chw = try hwc.permute([2, 0, 1]).to(dtype: .float32) / 255.0
        switch range {
        case .zeroToOne: return try chw.contiguous()
        case .minusOneToOne: return try chw * 2.0 - 1.0
        }
    }

    /// An image from a float tensor [C, H, W] (C 1, 3 or 4) in `range`; values are clamped and rounded.
    public init(tensor: Tensor, range: PixelRange = .minusOneToOne) throws {
        let s = tensor.shape
        guard s.count == 3, [1, 3, 4].contains(s[0]), s[1] > 0, s[2] > 0 else {
            throw ImageError("an image tensor is [C, H, W] with C 1, 3 or 4 and H, W > 0, not \(s)")
        }
        var x = try tensor.to(device: .cpu, dtype: .float32)
        if range == .minusOneToOne { x = try (x + 1.0) / 2.0 }
        let u8 = try (x * 255.0).round().clamp(min: 0.0, max: 255.0).to(dtype: .uint8).permute([1, 2, 0]).contiguous()
        try self.init(width: s[2], height: s[1], channels: s[0], pixels: try u8.bytes())
    }

    /// Stacks images of one size and channel count into a float32 tensor [N, C, H, W].
    public static func batch(_ images: [Image], range: PixelRange = .minusOneToOne) throws -> Tensor {
        guard let first = images.first else { throw ImageError("cannot batch an empty list of images") }
        for (i, im) in images.enumerated()
        where (im.width, im.height, im.channels) != (first.width, first.height, first.channels) {
            throw ImageError("image \(i) is \(im.width)×\(im.height)×\(im.channels), but image 0 is "
                + "\(first.width)×\(first.height)×\(first.channels): batch images of one size")
        }
        return try Tensor.stack(images.map { try $0.tensor(range: range) }, dim: 0)
    }

    /// Resized to `width`×`height` with antialiased bilinear filtering (torchvision `Resize(antialias=True)`,
    /// i.e. `F.interpolate(mode="bilinear", antialias=True)` on the float pixels, then rounded and clamped).
    public func resized(width w: Int, height h: Int) throws -> Image {
        guard w > 0, h > 0 else { throw ImageError("cannot resize to \(w)×\(h)") }
        let t = try ImageTransforms.resize(try tensor(range: .zeroToOne), height: h, width: w)
        return try Image(tensor: t, range: .zeroToOne)
    }
}

/// Transforms on float image tensors [C, H, W] or [N, C, H, W].
public enum ImageTransforms {
    /// Antialiased bilinear resize to `height`×`width`, as torchvision's `Resize(antialias=True)`.
    public static func resize(_ t: Tensor, height: Int, width: Int) throws -> Tensor {
        guard height > 0, width > 0 else { throw ImageError("cannot resize to \(width)×\(height)") }
        switch t.shape.count {
        case 3: return try t.unsqueeze(0).interpolate(size: (height, width), mode: .bilinear, antialias: true).squeeze(0)
        case 4: return try t.interpolate(size: (height, width), mode: .bilinear, antialias: true)
        default: throw ImageError("resize needs a [C, H, W] or [N, C, H, W] tensor, not \(t.shape)")
        }
    }

    /// The centre `height`×`width` region (offsets round half to even, like torchvision's `CenterCrop`).
    public static func centerCrop(_ t: Tensor, height: Int, width: Int) throws -> Tensor {
        let s = t.shape
        guard s.count >= 2 else { throw ImageError("centre crop needs a [..., H, W] tensor, not \(s)") }
        let H = s[s.count - 2], W = s[s.count - 1]
        guard height > 0, width > 0, height <= H, width <= W else {
            throw ImageError("cannot centre-crop \(W)×\(H) to \(width)×\(height)")
        }
        let top = Int((Double(H - height) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(W - width) / 2).rounded(.toNearestOrEven))
        return try t.slice(s.count - 2, top, top + height).slice(s.count - 1, left, left + width)
    }
}
