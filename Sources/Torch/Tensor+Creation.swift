import CTorch

/// Factories and data transfer between Swift arrays and tensors.
extension Tensor {
    private static func make(
        _ shape: [Int], _ body: (UnsafePointer<Int64>, Int64) -> OpaquePointer?
    ) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try s.withUnsafeBufferPointer { try checked(body($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, Int64(s.count))) }
    }

    public static func empty(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let dev = device.code
        return try make(shape) { ct_empty($0, $1, dtype.rawValue, dev) }
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let dev = device.code
        return try make(shape) { ct_zeros($0, $1, dtype.rawValue, dev) }
    }

    public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let dev = device.code
        return try make(shape) { ct_ones($0, $1, dtype.rawValue, dev) }
    }

    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let dev = device.code
        return try make(shape) { ct_full($0, $1, value, dtype.rawValue, dev) }
    }

    /// Values from `start` up to (not including) `end`, like `torch.arange`.
    public static func arange(_ start: Double = 0, _ end: Double, step: Double = 1, dtype: DType = .int64,
                              device: Device = .cpu) throws -> Tensor {
        try checked(ct_arange(start, end, step, dtype.rawValue, device.code))
    }

    public static func linspace(_ start: Double, _ end: Double, steps: Int, dtype: DType = .float32,
                                device: Device = .cpu) throws -> Tensor {
        try checked(ct_linspace(start, end, Int64(steps), dtype.rawValue, device.code))
    }

    /// Standard normal samples from libtorch's generator: the same numbers as `torch.randn` after the same seed.
    public static func randn(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let dev = device.code
        return try make(shape) { ct_randn($0, $1, dtype.rawValue, dev) }
    }

    /// Standard normal samples on the CPU from a generator of their own seeded with `seed`: the numbers
    /// `torch.randn(shape, generator=torch.Generator().manual_seed(seed))` gives, which are those of
    /// `torch.manual_seed(seed); torch.randn(shape)`. libtorch's global generator is neither read nor changed, so
    /// callers on different threads cannot disturb each other's draws (or a trainer's random state).
    public static func randn(_ shape: [Int], seed: UInt64, dtype: DType = .float32) throws -> Tensor {
        try make(shape) { ct_randn_seeded($0, $1, dtype.rawValue, seed) }
    }

    /// Uniform samples in [0, 1), like `torch.rand`.
    public static func rand(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let dev = device.code
        return try make(shape) { ct_rand($0, $1, dtype.rawValue, dev) }
    }

    /// Integers in [low, high), like `torch.randint`.
    public static func randint(_ low: Int, _ high: Int, _ shape: [Int], dtype: DType = .int64,
                               device: Device = .cpu) throws -> Tensor {
        let dev = device.code
        return try make(shape) { ct_randint(Int64(low), Int64(high), $0, $1, dtype.rawValue, dev) }
    }

    /// A random permutation of 0..<n, like `torch.randperm`.
    public static func randperm(_ n: Int, device: Device = .cpu) throws -> Tensor {
        try checked(ct_randperm(Int64(n), device.code))
    }

    /// Draws `samples` indices per row from the probabilities in `self` (like `torch.multinomial`).
    public func multinomial(_ samples: Int, replacement: Bool = false) throws -> Tensor {
        try checked(ct_multinomial(handle, Int64(samples), replacement))
    }

    /// The number of elements of `shape`, with libtorch's errors for a negative size or an overflowing product
    /// (checked here because the data pointer is handed to libtorch, which trusts the shape).
    static func elementCount(_ shape: [Int]) throws -> Int {
        if let bad = shape.first(where: { $0 < 0 }) {
            throw TorchError("Trying to create tensor with negative dimension \(bad): \(shape)")
        }
        var n = 1
        for s in shape {
            let (p, overflow) = n.multipliedReportingOverflow(by: s)
            if overflow { throw TorchError("Storage size calculation overflowed with sizes=\(shape)") }
            n = p
        }
        return n
    }

    /// A CPU tensor holding a copy of `values`, with the given shape (default: one dimension).
    public convenience init<T: TensorElement>(_ values: [T], shape: [Int]? = nil) throws {
        let shape = shape ?? [values.count]
        let n = try Tensor.elementCount(shape)
        guard n == values.count else {
            throw TorchError("shape \(shape) holds \(n) elements, but \(values.count) values were given")
        }
        let s = shape.map(Int64.init)
        let h = values.withUnsafeBytes { raw in
            s.withUnsafeBufferPointer { ct_from_data(raw.baseAddress, $0.baseAddress, Int64(s.count), T.dtype.rawValue) }
        }
        guard let h else { throw TorchError.last() }
        self.init(handle: h)
    }

    /// A 0-dimensional tensor holding `value`.
    public convenience init(scalar value: Double, dtype: DType = .float32) throws {
        let h: OpaquePointer? = ct_full(nil, 0, value, dtype.rawValue, Device.cpu.code)
        guard let h else { throw TorchError.last() }
        self.init(handle: h)
    }

    /// The elements in row-major order. The tensor's dtype must match `T` (use `to(dtype:)` first).
    public func toArray<T: TensorElement>(as type: T.Type = T.self) throws -> [T] {
        guard dtype == T.dtype else {
            throw TorchError("toArray(as: \(T.self)) needs dtype \(T.dtype), but the tensor is \(dtype)")
        }
        let n = count
        return try [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            try checkStatus(ct_copy_to_host(handle, UnsafeMutableRawPointer(buffer.baseAddress), n * dtype.size))
            initialized = n
        }
    }

    /// Raw bytes in row-major order (for serialization).
    public func bytes() throws -> [UInt8] {
        let n = count * dtype.size
        return try [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
            try checkStatus(ct_copy_to_host(handle, UnsafeMutableRawPointer(buffer.baseAddress), n))
            initialized = n
        }
    }

    /// Wraps raw little-endian bytes as a CPU tensor (copied).
    public convenience init(bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType) throws {
        let (need, overflow) = try Tensor.elementCount(shape).multipliedReportingOverflow(by: dtype.size)
        guard !overflow else { throw TorchError("Storage size calculation overflowed with sizes=\(shape)") }
        guard bytes.count == need else {
            throw TorchError("\(bytes.count) bytes cannot hold a \(dtype) tensor of shape \(shape) (\(need) bytes)")
        }
        let s = shape.map(Int64.init)
        let h = s.withUnsafeBufferPointer {
            ct_from_data(bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, $0.baseAddress, Int64(s.count), dtype.rawValue)
        }
        guard let h else { throw TorchError.last() }
        self.init(handle: h)
    }

    /// The single value of a one-element tensor, as a Double.
    public func item() throws -> Double {
        var v = 0.0
        try checkStatus(ct_item_double(handle, &v))
        return v
    }

    /// The single value of a one-element tensor, as an integer.
    public func itemInt() throws -> Int {
        var v: Int64 = 0
        try checkStatus(ct_item_int64(handle, &v))
        return Int(v)
    }
}
