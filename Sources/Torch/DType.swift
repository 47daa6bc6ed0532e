import CTorch

/// Element types, numbered as c10::ScalarType (the numbers cross the C boundary).
public enum DType: Int32, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, int16 = 2, int32 = 3, int64 = 4
    case float16 = 5, float32 = 6, float64 = 7
    case bool = 11
    case bfloat16 = 15

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .int16, .float16, .bfloat16: 2
        case .int32, .float32: 4
        case .int64, .float64: 8
        }
    }

    public var isFloatingPoint: Bool { [.float16, .float32, .float64, .bfloat16].contains(self) }

    /// The name PyTorch prints (`torch.float32` → `float32`).
    public var description: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .int16: "int16"
        case .int32: "int32"
        case .int64: "int64"
        case .float16: "float16"
        case .float32: "float32"
        case .float64: "float64"
        case .bool: "bool"
        case .bfloat16: "bfloat16"
        }
    }

    /// Parses PyTorch-style names: `float32`, `f32`, `bf16`, `bfloat16`, `half`, `long`...
    public init?(name: String) {
        switch name.lowercased() {
        case "uint8", "u8": self = .uint8
        case "int8", "i8": self = .int8
        case "int16", "i16": self = .int16
        case "int32", "i32", "int": self = .int32
        case "int64", "i64", "long": self = .int64
        case "float16", "f16", "half", "fp16": self = .float16
        case "float32", "f32", "float", "fp32": self = .float32
        case "float64", "f64", "double": self = .float64
        case "bool": self = .bool
        case "bfloat16", "bf16": self = .bfloat16
        default: return nil
        }
    }
}

/// Where a tensor lives. Parsed from and printed as PyTorch's strings: `cpu`, `cuda`, `cuda:1`.
public enum Device: Hashable, Sendable, CustomStringConvertible, Codable {
    case cpu
    case cuda(Int)

    /// The shim's number: -1 for the CPU, n for cuda:n. Using a CUDA device loads libtorch_cuda first.
    var code: Int32 {
        switch self {
        case .cpu: return -1
        case .cuda(let n):
            Runtime.loadCUDA()
            return Int32(n)
        }
    }

    init(code: Int32) { self = code < 0 ? .cpu : .cuda(Int(code)) }

    public var description: String {
        switch self {
        case .cpu: "cpu"
        case .cuda(let n): "cuda:\(n)"
        }
    }

    public var isCUDA: Bool { if case .cuda = self { true } else { false } }

    /// The default device everywhere in paris: cuda:0 when CUDA is available, else the CPU (`auto`).
    public static var auto: Device { Runtime.cudaIsAvailable ? .cuda(0) : .cpu }

    /// Parses `cpu`, `cuda`, `cuda:N` (with libtorch's parser, so a bad string gets libtorch's message), `gpu`
    /// (cuda:0) and `auto` (cuda:0 when CUDA is available, else the CPU).
    public init(parsing s: String) throws {
        switch s.lowercased() {
        case "gpu": self = .cuda(0)
        case "auto": self = .auto
        case let name:
            var code: Int32 = 0
            try checkStatus(ct_parse_device(name, &code))
            self.init(code: code)
        }
    }

    public init(from decoder: Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
