import CTorch

/// Zeroes each element with probability `p` and scales the rest by 1/(1−p) in training mode; the identity in
/// evaluation mode (`torch.nn.Dropout`). The mask comes from libtorch's generator: the same as PyTorch's after the
/// same seed.
public final class Dropout: Layer {
    public let p: Double
    public var isTraining = true

    public init(p: Double = 0.5) throws {
        guard (0...1).contains(p) else {
            throw TorchError("dropout probability has to be between 0 and 1, but got \(p)")
        }
        self.p = p
    }

    /// x: any shape → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard isTraining, p > 0 else { return x }
        return try x.dropout(p: p, training: true)
    }
}

/// GELU, exact (erf) or with the tanh approximation (`torch.nn.GELU(approximate=...)`); DiT uses tanh.
public final class GELU: Layer {
    /// PyTorch's `approximate` argument.
    public enum Approximation: String, Sendable, Codable {
        case none, tanh
    }

    public let approximate: Approximation
    public var isTraining = true

    public init(approximate: Approximation = .none) { self.approximate = approximate }

    /// x: any shape → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.gelu(approximateTanh: approximate == .tanh) }
}

/// x·sigmoid(x) (`torch.nn.SiLU`), as in DiT's `adaLN_modulation` and timestep MLP.
public final class SiLU: Layer {
    public var isTraining = true
    public init() {}
    /// x: any shape → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.silu() }
}

/// max(x, 0) (`torch.nn.ReLU`).
public final class ReLU: Layer {
    public var isTraining = true
    public init() {}
    /// x: any shape → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.relu() }
}

/// tanh(x) (`torch.nn.Tanh`).
public final class Tanh: Layer {
    public var isTraining = true
    public init() {}
    /// x: any shape → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.tanh() }
}

/// Returns its input (`torch.nn.Identity`); a placeholder that keeps checkpoint indices in a `Sequential`.
public final class Identity: Layer {
    public var isTraining = true
    public init() {}
    /// x: any shape → same shape
    public func callAsFunction(_ x: Tensor) throws -> Tensor { x }
}

/// Layers applied in order (`torch.nn.Sequential`); child i is named "i", so `Sequential(SiLU(), Linear(...))` in
/// a module registered as `adaLN_modulation` gives the checkpoint keys `adaLN_modulation.1.weight`.
public final class Sequential: Layer {
    public let layers: [any Layer]
    public var isTraining = true

    public init(_ layers: [any Layer]) { self.layers = layers }
    public convenience init(_ layers: any Layer...) { self.init(layers) }

    public var children: [(String, any Module)] { layers.enumerated().map { (String($0.offset), $0.element) } }

    public subscript(index: Int) -> any Layer { layers[index] }
    public var count: Int { layers.count }

    /// x → layers[n−1](… layers[0](x))
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try layers.reduce(x) { try $1($0) }
    }
}
