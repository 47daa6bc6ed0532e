import CTorch

/// How a loss reduces over the batch, as PyTorch's `reduction=` argument.
public enum Reduction: Int32, Sendable {
    case none = 0, mean = 1, sum = 2
}

/// Interpolation modes for `Tensor.interpolate`.
public enum InterpolationMode: Int32, Sendable {
    case nearest = 0, bilinear = 1, bicubic = 2
}

/// Neural-network functions, as in `torch.nn.functional`.
extension Tensor {
    /// x·Wᵀ + b, with `weight` [out, in] and `bias` [out].
    public func linear(weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        try withExtendedLifetime((weight, bias)) { try checked(ct_linear(handle, weight.handle, bias?.handle)) }
    }

    public func softmax(dim: Int) throws -> Tensor { try checked(ct_softmax(handle, Int64(dim))) }
    public func logSoftmax(dim: Int) throws -> Tensor { try checked(ct_log_softmax(handle, Int64(dim))) }

    /// Layer normalisation over the trailing dimensions `normalizedShape`.
    public func layerNorm(_ normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil,
                          eps: Double = 1e-5) throws -> Tensor {
        let s = normalizedShape.map(Int64.init)
        return try withExtendedLifetime((weight, bias)) {
            try s.withUnsafeBufferPointer {
                try checked(ct_layer_norm(handle, $0.baseAddress, Int64(s.count), weight?.handle, bias?.handle, eps))
            }
        }
    }

    /// Group normalisation of an [N, C, ...] tensor over `groups` groups of channels.
    public func groupNorm(groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Double = 1e-5) throws -> Tensor {
        try withExtendedLifetime((weight, bias)) {
            try checked(ct_group_norm(handle, Int64(groups), weight?.handle, bias?.handle, eps))
        }
    }

    /// Batch normalisation; in training mode the running statistics are updated in place.
    public func batchNorm(weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                          training: Bool, momentum: Double = 0.1, eps: Double = 1e-5) throws -> Tensor {
        try withExtendedLifetime((weight, bias, runningMean, runningVar)) {
            try checked(ct_batch_norm(handle, weight?.handle, bias?.handle, runningMean?.handle, runningVar?.handle,
                                      training, momentum, eps))
        }
    }

    /// 2-D convolution of an [N, C, H, W] tensor with `weight` [out, C/groups, kH, kW].
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                       dilation: (Int, Int) = (1, 1), groups: Int = 1) throws -> Tensor {
        let s = [Int64(stride.0), Int64(stride.1)], p = [Int64(padding.0), Int64(padding.1)]
        let d = [Int64(dilation.0), Int64(dilation.1)]
        return try withExtendedLifetime((weight, bias)) {
            try checked(ct_conv2d(handle, weight.handle, bias?.handle, s, p, d, Int64(groups)))
        }
    }

    /// Resizes an [N, C, H, W] tensor to `size` (H, W), like `F.interpolate`.
    public func interpolate(size: (Int, Int), mode: InterpolationMode = .bilinear, alignCorners: Bool = false,
                            antialias: Bool = false) throws -> Tensor {
        try checked(ct_interpolate(handle, [Int64(size.0), Int64(size.1)], mode.rawValue, alignCorners, antialias))
    }

    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil) throws -> Tensor {
        let s = stride ?? kernel
        return try checked(ct_avg_pool2d(handle, [Int64(kernel.0), Int64(kernel.1)], [Int64(s.0), Int64(s.1)]))
    }

    public func adaptiveAvgPool2d(_ size: (Int, Int)) throws -> Tensor {
        try checked(ct_adaptive_avg_pool2d(handle, [Int64(size.0), Int64(size.1)]))
    }

    /// Zeroes elements with probability `p` and rescales the rest, in training only.
    public func dropout(p: Double, training: Bool) throws -> Tensor { try checked(ct_dropout(handle, p, training)) }

    /// Rows of `self` [num, dim] picked by integer `indices` (`F.embedding`).
    public func embedding(_ indices: Tensor) throws -> Tensor {
        try withExtendedLifetime(indices) { try checked(ct_embedding(handle, indices.handle)) }
    }
}

/// softmax(q·kᵀ·scale + mask)·v over the last two dimensions, with libtorch's fused kernels (flash or
/// memory-efficient attention where they apply). q: [B, H, L, D], k and v: [B, H, S, D]. A boolean mask is true
/// where attention is allowed; a float mask is added. `scale` defaults to 1/√D.
public func scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor? = nil,
                                      dropout: Double = 0, isCausal: Bool = false,
                                      scale: Double? = nil) throws -> Tensor {
    try withExtendedLifetime((query, key, value, mask)) {
        try checked(ct_sdpa(query.handle, key.handle, value.handle, mask?.handle, dropout, isCausal, scale ?? 0))
    }
}

/// Cross-entropy of `logits` [N, C] (or [N, C, ...]) against class indices `target` [N] (`F.cross_entropy`).
public func crossEntropy(logits: Tensor, target: Tensor, reduction: Reduction = .mean, labelSmoothing: Double = 0,
                         ignoreIndex: Int = -100) throws -> Tensor {
    try withExtendedLifetime((logits, target)) {
        try checked(ct_cross_entropy(logits.handle, target.handle, reduction.rawValue, labelSmoothing, Int64(ignoreIndex)))
    }
}

/// Mean squared error (`F.mse_loss`).
public func mseLoss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
    try withExtendedLifetime((input, target)) { try checked(ct_mse_loss(input.handle, target.handle, reduction.rawValue)) }
}
