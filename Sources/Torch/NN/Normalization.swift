import CTorch

/// Layer normalisation over the trailing `normalizedShape` dimensions (`torch.nn.LayerNorm`). With
/// `elementwiseAffine` it has `weight` (ones) and, unless `bias: false`, `bias` (zeros), both of `normalizedShape`.
/// DiT's adaLN blocks use `LayerNorm(hidden, elementwiseAffine: false, eps: 1e-6)`.
public final class LayerNorm: Layer {
    public let normalizedShape: [Int]
    public let eps: Double
    /// normalizedShape, or nil without elementwise affine.
    public let weight: Tensor?
    /// normalizedShape, or nil.
    public let bias: Tensor?
    public var isTraining = true

    public init(_ normalizedShape: [Int], eps: Double = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true,
                dtype: DType = .float32, device: Device = .cpu) throws {
        guard !normalizedShape.isEmpty, normalizedShape.allSatisfy({ $0 > 0 }) else {
            throw TorchError("LayerNorm: normalized_shape must be non-empty positive sizes, got \(normalizedShape)")
        }
        self.normalizedShape = normalizedShape
        self.eps = eps
        weight = elementwiseAffine ? try makeParameter(normalizedShape, dtype: dtype, device: device) { try Init.ones_($0) } : nil
        self.bias = elementwiseAffine && bias
            ? try makeParameter(normalizedShape, dtype: dtype, device: device) { try Init.zeros_($0) } : nil
    }

    /// Normalises over one trailing dimension of size `dim`.
    public convenience init(_ dim: Int, eps: Double = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true,
                            dtype: DType = .float32, device: Device = .cpu) throws {
        try self.init([dim], eps: eps, elementwiseAffine: elementwiseAffine, bias: bias, dtype: dtype, device: device)
    }

    public var localParameters: [(String, Tensor)] {
        [("weight", weight), ("bias", bias)].compactMap { name, t in t.map { (name, $0) } }
    }

    /// x: [..., *normalizedShape] → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.layerNorm(normalizedShape, weight: weight, bias: bias, eps: eps)
    }
}

/// Group normalisation of [N, C, ...] over `numGroups` groups of channels (`torch.nn.GroupNorm`). With `affine` it
/// has per-channel `weight` (ones) and `bias` (zeros) of shape [C].
public final class GroupNorm: Layer {
    public let numGroups: Int
    public let numChannels: Int
    public let eps: Double
    /// [numChannels], or nil without affine.
    public let weight: Tensor?
    /// [numChannels], or nil without affine.
    public let bias: Tensor?
    public var isTraining = true

    public init(numGroups: Int, numChannels: Int, eps: Double = 1e-5, affine: Bool = true, dtype: DType = .float32,
                device: Device = .cpu) throws {
        guard numGroups > 0, numChannels % numGroups == 0 else {
            throw TorchError("GroupNorm: num_channels (\(numChannels)) must be divisible by num_groups (\(numGroups))")
        }
        self.numGroups = numGroups
        self.numChannels = numChannels
        self.eps = eps
        weight = affine ? try makeParameter([numChannels], dtype: dtype, device: device) { try Init.ones_($0) } : nil
        bias = affine ? try makeParameter([numChannels], dtype: dtype, device: device) { try Init.zeros_($0) } : nil
    }

    public var localParameters: [(String, Tensor)] {
        [("weight", weight), ("bias", bias)].compactMap { name, t in t.map { (name, $0) } }
    }

    /// x: [N, C, ...] → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 2, x.size(1) == numChannels else {
            throw TorchError("GroupNorm(\(numGroups), \(numChannels)) expects input [N, \(numChannels), ...], "
                                 + "got \(x.shape)")
        }
        return try x.groupNorm(groups: numGroups, weight: weight, bias: bias, eps: eps)
    }
}

/// Batch normalisation of [N, C, H, W] over N, H and W per channel (`torch.nn.BatchNorm2d`). Parameters `weight`
/// (ones) and `bias` (zeros) of [C] with `affine`; buffers `running_mean` (zeros), `running_var` (ones) and
/// `num_batches_tracked` (int64 scalar) with `trackRunningStats`. In training mode it normalises with the batch's
/// statistics and updates the running ones (running = (1 − momentum)·running + momentum·batch, unbiased variance);
/// in evaluation mode it uses the running statistics. Note PyTorch's momentum is 1 − TensorFlow's (0.99 → 0.01).
public final class BatchNorm2d: Layer {
    public let numFeatures: Int
    public let eps: Double
    public let momentum: Double
    /// [numFeatures], or nil without affine.
    public let weight: Tensor?
    /// [numFeatures], or nil without affine.
    public let bias: Tensor?
    /// [numFeatures], or nil without running statistics.
    public let runningMean: Tensor?
    /// [numFeatures], or nil without running statistics.
    public let runningVar: Tensor?
    /// int64 scalar: how many training batches updated the statistics; nil without running statistics.
    public let numBatchesTracked: Tensor?
    public var isTraining = true

    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true, dtype: DType = .float32, device: Device = .cpu) throws {
        guard numFeatures > 0 else { throw TorchError("BatchNorm2d: num_features must be positive, got \(numFeatures)") }
        self.numFeatures = numFeatures
        self.eps = eps
        self.momentum = momentum
        weight = affine ? try makeParameter([numFeatures], dtype: dtype, device: device) { try Init.ones_($0) } : nil
        bias = affine ? try makeParameter([numFeatures], dtype: dtype, device: device) { try Init.zeros_($0) } : nil
        runningMean = trackRunningStats ? try Tensor.zeros([numFeatures], dtype: dtype, device: device) : nil
        runningVar = trackRunningStats ? try Tensor.ones([numFeatures], dtype: dtype, device: device) : nil
        numBatchesTracked = trackRunningStats ? try Tensor.zeros([], dtype: .int64, device: device) : nil
    }

    public var localParameters: [(String, Tensor)] {
        [("weight", weight), ("bias", bias)].compactMap { name, t in t.map { (name, $0) } }
    }

    public var localBuffers: [(String, Tensor)] {
        [("running_mean", runningMean), ("running_var", runningVar), ("num_batches_tracked", numBatchesTracked)]
            .compactMap { name, t in t.map { (name, $0) } }
    }

    /// x: [N, C, H, W] → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.size(1) == numFeatures else {
            throw TorchError("BatchNorm2d(\(numFeatures)) expects input [N, \(numFeatures), H, W], got \(x.shape)")
        }
        let useBatchStats = isTraining || runningMean == nil
        if isTraining, let numBatchesTracked { try withNoGrad { try numBatchesTracked.add_(1) } }
        return try x.batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                               training: useBatchStats, momentum: momentum, eps: eps)
    }
}
