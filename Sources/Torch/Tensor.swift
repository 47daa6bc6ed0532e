import CTorch

/// An n-dimensional array backed by a libtorch tensor. The Swift object owns one libtorch handle and releases it in
/// `deinit`; several Swift tensors may share storage (views), as in PyTorch. Operations throw `TorchError` with
/// libtorch's message instead of crashing, so a bad shape is an error, never a dead process.
///
/// A tensor may be sent to another thread (`Sendable`), but must not be mutated from two threads at once.
public final class Tensor: @unchecked Sendable {
    let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }
    deinit { ct_free(handle) }

    /// The sizes of every dimension.
    public var shape: [Int] {
        let n = Int(ct_ndim(handle))
        var s = [Int64](repeating: 0, count: n)
        s.withUnsafeMutableBufferPointer { ct_shape(handle, $0.baseAddress) }
        return s.map(Int.init)
    }

    public var strides: [Int] {
        let n = Int(ct_ndim(handle))
        var s = [Int64](repeating: 0, count: n)
        s.withUnsafeMutableBufferPointer { ct_strides(handle, $0.baseAddress) }
        return s.map(Int.init)
    }

    public var rank: Int { Int(ct_ndim(handle)) }
    public var count: Int { Int(ct_numel(handle)) }
    public var dtype: DType { DType(rawValue: ct_dtype(handle)) ?? .float32 }
    public var device: Device { Device(code: ct_device(handle)) }
    public var isContiguous: Bool { ct_is_contiguous(handle) }

    /// The size of dimension `dim` (negative counts from the end). Like an array subscript, an out-of-range `dim`
    /// is a programming error that traps; check `rank` first when `dim` comes from input.
    public func size(_ dim: Int) -> Int {
        let s = shape
        let d = dim < 0 ? dim + s.count : dim
        precondition(d >= 0 && d < s.count, "Tensor.size(\(dim)): dimension out of range for a rank-\(s.count) tensor")
        return s[d]
    }

    /// A second handle to the same tensor (same storage, same autograd identity).
    public func alias() -> Tensor { Tensor(handle: ct_shallow_clone(handle)) }
}

extension Tensor: CustomStringConvertible {
    /// `Tensor([2, 3], float32, cpu)` followed by up to eight leading values.
    public var description: String {
        var s = "Tensor(\(shape), \(dtype), \(device)"
        if count > 0, let values = try? flat(limit: 8) {
            let shown: [String] = values.map { "\($0)" }
            let more: String = count > 8 ? ", …" : ""
            s += ", [" + shown.joined(separator: ", ") + more + "]"
        }
        return s + ")"
    }

    private func flat(limit: Int) throws -> [Double] {
        let head = try reshape([-1]).slice(0, 0, min(limit, count))
        return try head.to(dtype: .float64).toArray(as: Double.self)
    }
}

/// Swift scalar types that map to a tensor dtype, for moving data in and out of tensors.
public protocol TensorElement {
    static var dtype: DType { get }
}
extension Float: TensorElement { public static var dtype: DType { .float32 } }
extension Double: TensorElement { public static var dtype: DType { .float64 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: TensorElement { public static var dtype: DType { .float16 } }
#endif
