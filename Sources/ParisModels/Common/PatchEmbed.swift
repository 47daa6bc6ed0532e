import Torch

/// Image to patch tokens, as timm's `PatchEmbed` (which facebookresearch/DiT uses): a Conv2d `proj` with kernel =
/// stride = `patchSize`, then the H/p × W/p grid flattened row by row into tokens.
/// Checkpoint keys `proj.weight` [embedDim, inChannels, p, p] and `proj.bias` [embedDim].
public final class PatchEmbed: Layer {
    /// The input height and width the model was built for (timm's `img_size`, checked in the forward pass), or
    /// nil to accept any size divisible by the patch.
    public let inputSize: Int?
    public let patchSize: Int
    public let inChannels: Int
    public let embedDim: Int
    public let proj: Conv2d
    public var isTraining = true

    public init(inputSize: Int?, patchSize: Int, inChannels: Int, embedDim: Int, bias: Bool = true,
                dtype: DType = .float32, device: Device = .cpu) throws {
        guard patchSize > 0, inChannels > 0, embedDim > 0 else {
            throw TorchError("PatchEmbed: patch size (\(patchSize)), input channels (\(inChannels)) and embed dim "
                                 + "(\(embedDim)) must be positive")
        }
        if let inputSize, inputSize <= 0 || inputSize % patchSize != 0 {
            throw TorchError("PatchEmbed: input size \(inputSize) must be a positive multiple of the patch size "
                                 + "\(patchSize)")
        }
        self.inputSize = inputSize
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.embedDim = embedDim
        proj = try Conv2d(inChannels, embedDim, kernelSize: patchSize, stride: patchSize, bias: bias, dtype: dtype,
                          device: device)
    }

    public var children: [(String, any Module)] { [("proj", proj)] }

    /// The number of tokens for the configured input size (nil without one).
    public var numPatches: Int? { inputSize.map { ($0 / patchSize) * ($0 / patchSize) } }

    /// x: [B, C, H, W] → [B, (H/p)·(W/p), embedDim]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.size(1) == inChannels else {
            throw TorchError("PatchEmbed expects input [B, \(inChannels), H, W] (\(inChannels) channels), got "
                                 + "\(x.shape)")
        }
        let h = x.size(2), w = x.size(3)
        if let inputSize, h != inputSize || w != inputSize {
            throw TorchError("PatchEmbed: input size \(h)×\(w) does not match the model's \(inputSize)×\(inputSize)")
        }
        guard h % patchSize == 0, w % patchSize == 0 else {
            throw TorchError("PatchEmbed: input size \(h)×\(w) is not divisible by the patch size \(patchSize)")
        }
        return try proj(x).flatten(start: 2).transpose(1, 2)  // [B, D, h, w] → [B, D, h·w] → [B, h·w, D]
    }
}

/// Patch tokens back to an image, as facebookresearch/DiT's `unpatchify`: each token holds a p×p×C patch in
/// (row, column, channel) order; tokens run row by row over a `gridHeight`×`gridWidth` grid (square by default).
/// x: [B, h·w, p·p·C] → [B, C, h·p, w·p]
public func unpatchify(_ x: Tensor, patchSize p: Int, channels c: Int, gridHeight: Int? = nil,
                       gridWidth: Int? = nil) throws -> Tensor {
    guard x.rank == 3, p > 0, c > 0, x.size(2) == p * p * c else {
        throw TorchError("unpatchify expects tokens [B, N, \(p)·\(p)·\(c)] (patch \(p), \(c) channels), got \(x.shape)")
    }
    let n = x.size(1)
    let h: Int, w: Int
    switch (gridHeight, gridWidth) {
    case let (gh?, gw?): (h, w) = (gh, gw)
    case let (gh?, nil): (h, w) = (gh, gh > 0 ? n / gh : 0)
    case let (nil, gw?): (h, w) = (gw > 0 ? n / gw : 0, gw)
    case (nil, nil):
        let s = Int(Double(n).squareRoot().rounded())
        (h, w) = (s, s)
    }
    guard h > 0, w > 0, h * w == n else {
        throw TorchError("unpatchify: \(n) tokens do not form a \(h)×\(w) grid")
    }
    return try x.reshape([x.size(0), h, w, p, p, c])  // [B, h, w, p, q, C]
        .permute([0, 5, 1, 3, 2, 4])                   // [B, C, h, p, w, q]
        .reshape([x.size(0), c, h * p, w * p])
}
