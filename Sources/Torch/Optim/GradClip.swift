import CTorch

/// Rescales the gradients of `parameters` in place so that their joint `normType`-norm is at most `maxNorm`, and
/// returns the norm before clipping: `torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)`.
///
/// total = ‖(‖g₁‖, ‖g₂‖, …)‖ over the parameters that have a gradient; every gradient is multiplied by
/// min(1, maxNorm / (total + 1e-6)). Parameters without a gradient are ignored; with none at all the norm is 0.
/// `normType` may be `.infinity` (the largest absolute value). Reading the norm waits for the device.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Double, normType: Double = 2) throws -> Double {
    guard maxNorm >= 0, !maxNorm.isNaN else { throw TorchError("clipGradNorm: max_norm must be >= 0, got \(maxNorm)") }
    guard normType >= 0 else { throw TorchError("clipGradNorm: invalid norm type \(normType)") }
    var total = 0.0
    let status = withHandles(parameters) { h in
        ct_clip_grad_norm_(mutating(h), Int64(parameters.count), maxNorm, normType, &total)
    }
    try checkStatus(status)
    return total
}
