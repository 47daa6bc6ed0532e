import CTorch

/// Element-wise arithmetic with broadcasting, comparisons, math functions and reductions.
extension Tensor {
    @inline(__always)
    func binary(_ op: ct_binary_op, _ other: Tensor) throws -> Tensor {
        try withExtendedLifetime(other) { try checked(ct_binary(Int32(op.rawValue), handle, other.handle)) }
    }

    @inline(__always)
    func binary(_ op: ct_binary_op, _ scalar: Double) throws -> Tensor {
        try checked(ct_binary_scalar(Int32(op.rawValue), handle, scalar))
    }

    @inline(__always)
    func binary(_ op: ct_binary_op, _ scalar: Int) throws -> Tensor {
        try checked(ct_binary_scalar_int(Int32(op.rawValue), handle, Int64(scalar)))
    }

    @inline(__always)
    func unary(_ op: ct_unary_op) throws -> Tensor { try checked(ct_unary(Int32(op.rawValue), handle)) }

    // MARK: operators (a scalar never changes the tensor's dtype, as in PyTorch)

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(CT_ADD, b) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(CT_SUB, b) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(CT_MUL, b) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(CT_DIV, b) }
    public static func + (a: Tensor, b: Double) throws -> Tensor { try a.binary(CT_ADD, b) }
    public static func - (a: Tensor, b: Double) throws -> Tensor { try a.binary(CT_SUB, b) }
    public static func * (a: Tensor, b: Double) throws -> Tensor { try a.binary(CT_MUL, b) }
    public static func / (a: Tensor, b: Double) throws -> Tensor { try a.binary(CT_DIV, b) }
    public static func + (a: Double, b: Tensor) throws -> Tensor { try b.binary(CT_ADD, a) }
    public static func * (a: Double, b: Tensor) throws -> Tensor { try b.binary(CT_MUL, a) }
    public static func - (a: Double, b: Tensor) throws -> Tensor {
        try checked(ct_scalar_binary(Int32(CT_SUB.rawValue), a, b.handle))
    }
    public static func / (a: Double, b: Tensor) throws -> Tensor {
        try checked(ct_scalar_binary(Int32(CT_DIV.rawValue), a, b.handle))
    }
    public static prefix func - (a: Tensor) throws -> Tensor { try a.unary(CT_NEG) }

    // An Int scalar behaves as a Python int: an integer tensor stays integer (`idx + 1` is int64), a floating one
    // keeps its dtype, and `/` is true division (int64 / 2 is float32), as in PyTorch.
    public static func + (a: Tensor, b: Int) throws -> Tensor { try a.binary(CT_ADD, b) }
    public static func - (a: Tensor, b: Int) throws -> Tensor { try a.binary(CT_SUB, b) }
    public static func * (a: Tensor, b: Int) throws -> Tensor { try a.binary(CT_MUL, b) }
    public static func / (a: Tensor, b: Int) throws -> Tensor { try a.binary(CT_DIV, b) }
    public static func + (a: Int, b: Tensor) throws -> Tensor { try b.binary(CT_ADD, a) }
    public static func * (a: Int, b: Tensor) throws -> Tensor { try b.binary(CT_MUL, a) }
    public static func - (a: Int, b: Tensor) throws -> Tensor {
        try checked(ct_scalar_int_binary(Int32(CT_SUB.rawValue), Int64(a), b.handle))
    }
    public static func / (a: Int, b: Tensor) throws -> Tensor {
        try checked(ct_scalar_int_binary(Int32(CT_DIV.rawValue), Int64(a), b.handle))
    }

    public func pow(_ exponent: Double) throws -> Tensor { try binary(CT_POW, exponent) }
    public func pow(_ exponent: Tensor) throws -> Tensor { try binary(CT_POW, exponent) }
    public func maximum(_ other: Tensor) throws -> Tensor { try binary(CT_MAXIMUM, other) }
    public func minimum(_ other: Tensor) throws -> Tensor { try binary(CT_MINIMUM, other) }
    public func pow(_ exponent: Int) throws -> Tensor { try binary(CT_POW, exponent) }
    public func remainder(_ other: Double) throws -> Tensor { try binary(CT_REMAINDER, other) }
    public func floorDivide(_ other: Double) throws -> Tensor { try binary(CT_FLOOR_DIVIDE, other) }
    public func remainder(_ other: Int) throws -> Tensor { try binary(CT_REMAINDER, other) }
    public func floorDivide(_ other: Int) throws -> Tensor { try binary(CT_FLOOR_DIVIDE, other) }
    public func remainder(_ other: Tensor) throws -> Tensor { try binary(CT_REMAINDER, other) }
    public func floorDivide(_ other: Tensor) throws -> Tensor { try binary(CT_FLOOR_DIVIDE, other) }
    public func atan2(_ other: Tensor) throws -> Tensor { try binary(CT_ATAN2, other) }

    // MARK: comparisons (bool tensors)

    public func eq(_ other: Tensor) throws -> Tensor { try binary(CT_EQ, other) }
    public func ne(_ other: Tensor) throws -> Tensor { try binary(CT_NE, other) }
    public func lt(_ other: Tensor) throws -> Tensor { try binary(CT_LT, other) }
    public func le(_ other: Tensor) throws -> Tensor { try binary(CT_LE, other) }
    public func gt(_ other: Tensor) throws -> Tensor { try binary(CT_GT, other) }
    public func ge(_ other: Tensor) throws -> Tensor { try binary(CT_GE, other) }
    public func eq(_ v: Double) throws -> Tensor { try binary(CT_EQ, v) }
    public func ne(_ v: Double) throws -> Tensor { try binary(CT_NE, v) }
    public func lt(_ v: Double) throws -> Tensor { try binary(CT_LT, v) }
    public func le(_ v: Double) throws -> Tensor { try binary(CT_LE, v) }
    public func gt(_ v: Double) throws -> Tensor { try binary(CT_GT, v) }
    public func ge(_ v: Double) throws -> Tensor { try binary(CT_GE, v) }
    public func logicalAnd(_ other: Tensor) throws -> Tensor { try binary(CT_LOGICAL_AND, other) }
    public func logicalOr(_ other: Tensor) throws -> Tensor { try binary(CT_LOGICAL_OR, other) }
    public func logicalNot() throws -> Tensor { try unary(CT_LOGICAL_NOT) }

    // MARK: element-wise functions

    public func abs() throws -> Tensor { try unary(CT_ABS) }
    public func exp() throws -> Tensor { try unary(CT_EXP) }
    public func log() throws -> Tensor { try unary(CT_LOG) }
    public func sqrt() throws -> Tensor { try unary(CT_SQRT) }
    public func rsqrt() throws -> Tensor { try unary(CT_RSQRT) }
    public func sin() throws -> Tensor { try unary(CT_SIN) }
    public func cos() throws -> Tensor { try unary(CT_COS) }
    public func tanh() throws -> Tensor { try unary(CT_TANH) }
    public func sigmoid() throws -> Tensor { try unary(CT_SIGMOID) }
    public func relu() throws -> Tensor { try unary(CT_RELU) }
    /// x·sigmoid(x).
    public func silu() throws -> Tensor { try unary(CT_SILU) }
    /// GELU, exact (erf) or with PyTorch's tanh approximation (`approximate="tanh"`).
    public func gelu(approximateTanh: Bool = false) throws -> Tensor { try unary(approximateTanh ? CT_GELU_TANH : CT_GELU) }
    public func sign() throws -> Tensor { try unary(CT_SIGN) }
    public func floor() throws -> Tensor { try unary(CT_FLOOR) }
    public func ceil() throws -> Tensor { try unary(CT_CEIL) }
    public func round() throws -> Tensor { try unary(CT_ROUND) }
    public func square() throws -> Tensor { try unary(CT_SQUARE) }
    public func reciprocal() throws -> Tensor { try unary(CT_RECIPROCAL) }
    public func erf() throws -> Tensor { try unary(CT_ERF) }
    public func log1p() throws -> Tensor { try unary(CT_LOG1P) }
    public func expm1() throws -> Tensor { try unary(CT_EXPM1) }
    public func isNaN() throws -> Tensor { try unary(CT_ISNAN) }
    public func isFinite() throws -> Tensor { try unary(CT_ISFINITE) }

    public func clamp(min: Double? = nil, max: Double? = nil) throws -> Tensor {
        try checked(ct_clamp(handle, min ?? 0, min != nil, max ?? 0, max != nil))
    }

    /// clamp with integer bounds: an integer tensor stays integer (as with Python ints).
    public func clamp(min: Int? = nil, max: Int? = nil) throws -> Tensor {
        try checked(ct_clamp_int(handle, Int64(min ?? 0), min != nil, Int64(max ?? 0), max != nil))
    }

    /// `a + weight * (b - a)`.
    public func lerp(_ end: Tensor, weight: Double) throws -> Tensor {
        try withExtendedLifetime(end) { try checked(ct_lerp(handle, end.handle, weight)) }
    }

    /// Elements of `a` where `condition` is true, else of `b`.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try withExtendedLifetime((condition, a, b)) { try checked(ct_where(condition.handle, a.handle, b.handle)) }
    }

    public func maskedFill(_ mask: Tensor, _ value: Double) throws -> Tensor {
        try withExtendedLifetime(mask) { try checked(ct_masked_fill(handle, mask.handle, value)) }
    }

    /// Matrix product with broadcasting batch dimensions (`torch.matmul`).
    public func matmul(_ other: Tensor) throws -> Tensor {
        try withExtendedLifetime(other) { try checked(ct_matmul(handle, other.handle)) }
    }

    // MARK: reductions (no dims: all of them)

    private func reduce(_ op: ct_reduce_op, _ dims: [Int], _ keepDim: Bool) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer {
            try checked(ct_reduce(Int32(op.rawValue), handle, $0.baseAddress, Int64(d.count), keepDim))
        }
    }

    public func sum(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(CT_SUM, dims, keepDim) }
    public func mean(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(CT_MEAN, dims, keepDim) }
    public func amax(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(CT_AMAX, dims, keepDim) }
    public func amin(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(CT_AMIN, dims, keepDim) }
    public func prod(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(CT_PROD, dims, keepDim) }
    public func logSumExp(dims: [Int], keepDim: Bool = false) throws -> Tensor { try reduce(CT_LOGSUMEXP, dims, keepDim) }
    public func any(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(CT_ANY, dims, keepDim) }
    public func all(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(CT_ALL, dims, keepDim) }

    /// Variance with Bessel's `correction` (1 = unbiased, as `torch.var`'s default).
    public func variance(dims: [Int] = [], correction: Double = 1, keepDim: Bool = false) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer {
            try checked(ct_var(handle, $0.baseAddress, Int64(d.count), correction, keepDim))
        }
    }

    public func std(dims: [Int] = [], correction: Double = 1, keepDim: Bool = false) throws -> Tensor {
        try variance(dims: dims, correction: correction, keepDim: keepDim).sqrt()
    }

    /// The vector p-norm over `dims` (`torch.linalg.vector_norm`).
    public func norm(_ p: Double = 2, dims: [Int] = [], keepDim: Bool = false) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer {
            try checked(ct_norm(handle, p, $0.baseAddress, Int64(d.count), keepDim))
        }
    }

    public func argmax(dim: Int, keepDim: Bool = false) throws -> Tensor {
        try checked(ct_argmax(handle, Int64(dim), keepDim))
    }

    public func argmin(dim: Int, keepDim: Bool = false) throws -> Tensor {
        try checked(ct_argmin(handle, Int64(dim), keepDim))
    }

    public func cumsum(dim: Int) throws -> Tensor { try checked(ct_cumsum(handle, Int64(dim))) }

    /// The `k` largest (or smallest) values along `dim` and their indices.
    public func topk(_ k: Int, dim: Int = -1, largest: Bool = true) throws -> (values: Tensor, indices: Tensor) {
        var v: OpaquePointer?, i: OpaquePointer?
        try checkStatus(ct_topk(handle, Int64(k), Int64(dim), largest, &v, &i))
        return (Tensor(handle: v!), Tensor(handle: i!))
    }

    public func sort(dim: Int = -1, descending: Bool = false) throws -> (values: Tensor, indices: Tensor) {
        var v: OpaquePointer?, i: OpaquePointer?
        try checkStatus(ct_sort(handle, Int64(dim), descending, &v, &i))
        return (Tensor(handle: v!), Tensor(handle: i!))
    }

    /// |a − b| ≤ atol + rtol·|b| everywhere (`torch.allclose`).
    public func allClose(_ other: Tensor, rtol: Double = 1e-5, atol: Double = 1e-8) throws -> Bool {
        let r = withExtendedLifetime(other) { ct_allclose(handle, other.handle, rtol, atol) }
        if r < 0 { throw TorchError.last() }
        return r == 1
    }

    /// Same shape and the same values (`torch.equal`).
    public func equal(_ other: Tensor) throws -> Bool {
        let r = withExtendedLifetime(other) { ct_equal(handle, other.handle) }
        if r < 0 { throw TorchError.last() }
        return r == 1
    }
}
