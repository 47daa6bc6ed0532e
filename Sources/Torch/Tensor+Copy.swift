import CTorch

/// Conversions, copies and in-place updates.
extension Tensor {
    /// This tensor on `device` with `dtype` (either may be omitted); returns `self`'s data when nothing changes.
    public func to(device: Device? = nil, dtype: DType? = nil, nonBlocking: Bool = false) throws -> Tensor {
        try checked(ct_to(handle, (device ?? self.device).code, (dtype ?? self.dtype).rawValue, nonBlocking))
    }

    public func contiguous() throws -> Tensor { try checked(ct_contiguous(handle)) }
    /// A copy with its own storage; gradients flow through it.
    public func clone() throws -> Tensor { try checked(ct_clone(handle)) }
    /// The same data, cut from the autograd graph.
    public func detach() throws -> Tensor { try checked(ct_detach(handle)) }

    /// Copies `source` into this tensor, broadcasting and converting dtype and device.
    public func copy_(_ source: Tensor) throws {
        try withExtendedLifetime(source) { try checkStatus(ct_copy_(handle, source.handle)) }
    }

    public func fill_(_ value: Double) throws { try checkStatus(ct_fill_(handle, value)) }
    public func zero_() throws { try checkStatus(ct_zero_(handle)) }
    /// Fills with uniform samples in [low, high) from libtorch's generator (as `nn.init.uniform_`).
    public func uniform_(_ low: Double, _ high: Double) throws { try checkStatus(ct_uniform_(handle, low, high)) }
    /// Fills with normal samples (as `nn.init.normal_`).
    public func normal_(mean: Double = 0, std: Double = 1) throws { try checkStatus(ct_normal_(handle, mean, std)) }

    public func add_(_ other: Tensor, alpha: Double = 1) throws {
        try withExtendedLifetime(other) {
            try checkStatus(alpha == 1 ? ct_binary_(Int32(CT_ADD.rawValue), handle, other.handle)
                                       : ct_add_scaled_(handle, other.handle, alpha))
        }
    }
    public func sub_(_ other: Tensor) throws {
        try withExtendedLifetime(other) { try checkStatus(ct_binary_(Int32(CT_SUB.rawValue), handle, other.handle)) }
    }
    public func mul_(_ other: Tensor) throws {
        try withExtendedLifetime(other) { try checkStatus(ct_binary_(Int32(CT_MUL.rawValue), handle, other.handle)) }
    }
    public func div_(_ other: Tensor) throws {
        try withExtendedLifetime(other) { try checkStatus(ct_binary_(Int32(CT_DIV.rawValue), handle, other.handle)) }
    }
    public func add_(_ v: Double) throws { try checkStatus(ct_binary_scalar_(Int32(CT_ADD.rawValue), handle, v)) }
    public func sub_(_ v: Double) throws { try checkStatus(ct_binary_scalar_(Int32(CT_SUB.rawValue), handle, v)) }
    public func mul_(_ v: Double) throws { try checkStatus(ct_binary_scalar_(Int32(CT_MUL.rawValue), handle, v)) }
    public func div_(_ v: Double) throws { try checkStatus(ct_binary_scalar_(Int32(CT_DIV.rawValue), handle, v)) }
    /// Integer scalars keep an integer tensor integer (`counts.add_(1)` on int64).
    public func add_(_ v: Int) throws { try checkStatus(ct_binary_scalar_int_(Int32(CT_ADD.rawValue), handle, Int64(v))) }
    public func sub_(_ v: Int) throws { try checkStatus(ct_binary_scalar_int_(Int32(CT_SUB.rawValue), handle, Int64(v))) }
    public func mul_(_ v: Int) throws { try checkStatus(ct_binary_scalar_int_(Int32(CT_MUL.rawValue), handle, Int64(v))) }
    public func clamp_(min: Double? = nil, max: Double? = nil) throws { try copy_(try clamp(min: min, max: max)) }
}
