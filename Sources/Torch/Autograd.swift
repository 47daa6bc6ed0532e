import CTorch

/// Reverse-mode differentiation through libtorch's autograd engine.
extension Tensor {
    /// Whether operations on this tensor are recorded for differentiation. Set it on leaves (parameters).
    public var requiresGrad: Bool { ct_requires_grad(handle) }

    /// Marks this leaf as needing a gradient (or not); returns `self` for chaining.
    @discardableResult
    public func requiresGrad(_ on: Bool) throws -> Tensor {
        try checkStatus(ct_set_requires_grad(handle, on))
        return self
    }

    /// Accumulates d(self)/d(leaf) into every leaf's `grad`. `self` must be a scalar unless `gradient` is given.
    public func backward(gradient: Tensor? = nil, retainGraph: Bool = false) throws {
        try withExtendedLifetime(gradient) { try checkStatus(ct_backward(handle, gradient?.handle, retainGraph)) }
    }

    /// The accumulated gradient, or nil before any backward pass (or after `zeroGrad`).
    public var grad: Tensor? { ct_grad(handle).map { Tensor(handle: $0) } }

    /// Drops the gradient (PyTorch's `zero_grad(set_to_none=True)`).
    public func zeroGrad() throws { try checkStatus(ct_zero_grad(handle)) }

    /// Replaces this tensor's data (another device, dtype or shape) while keeping its identity: `param.data = x`.
    public func setData(_ data: Tensor) throws {
        try withExtendedLifetime(data) { try checkStatus(ct_set_data(handle, data.handle)) }
    }
}

/// Runs `body` without recording operations for autograd (`torch.no_grad()`), on this thread.
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    let previous = ct_is_grad_enabled()
    ct_set_grad_enabled(false)
    defer { ct_set_grad_enabled(previous) }
    return try body()
}

/// Whether autograd records operations on this thread.
public var isGradEnabled: Bool { ct_is_grad_enabled() }

/// Runs `body` with automatic mixed precision on `device`'s type (`torch.autocast`): matmuls, convolutions and
/// attention run in `dtype` (bf16 by default) while reductions and losses stay in float32.
public func withAutocast<R>(device: Device, dtype: DType = .bfloat16, enabled: Bool = true,
                            _ body: () throws -> R) rethrows -> R {
    let code = device.code
    let wasEnabled = ct_autocast_is_enabled(code)
    let oldDType = ct_autocast_get_dtype(code)
    ct_autocast_set_enabled(code, enabled)
    ct_autocast_set_dtype(code, dtype.rawValue)
    defer {
        ct_autocast_set_enabled(code, wasEnabled)
        ct_autocast_set_dtype(code, oldDType)
        if !wasEnabled { ct_autocast_clear_cache() }
    }
    return try body()
}

/// Whether autocast is on for `device`'s type (CPU or CUDA) on this thread.
public func isAutocastEnabled(device: Device) -> Bool { ct_autocast_is_enabled(device.code) }
