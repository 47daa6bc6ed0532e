import CTorch

/// An error raised by libtorch (its message, without the C++ backtrace) or by the Swift layer's own checks.
public struct TorchError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// The message of the last failed shim call on this thread.
    static func last() -> TorchError {
        TorchError(ct_last_error().map { String(cString: $0) } ?? "libtorch call failed without a message")
    }
}

/// Wraps a handle returned by the shim, throwing libtorch's message when it is null.
@inline(__always)
func checked(_ handle: OpaquePointer?) throws -> Tensor {
    guard let handle else { throw TorchError.last() }
    return Tensor(handle: handle)
}

/// Throws libtorch's message when a status-returning shim call failed.
@inline(__always)
func checkStatus(_ status: Int32) throws {
    if status != 0 { throw TorchError.last() }
}

/// Calls `body` with the handles of `tensors`, keeping the tensors alive for the whole call.
@inline(__always)
func withHandles<R>(_ tensors: [Tensor], _ body: (UnsafePointer<OpaquePointer?>) throws -> R) rethrows -> R {
    let handles: [OpaquePointer?] = tensors.map { $0.handle }
    return try withExtendedLifetime(tensors) {
        try handles.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else {
                var none: OpaquePointer? = nil
                return try body(&none)
            }
            return try body(base)
        }
    }
}
