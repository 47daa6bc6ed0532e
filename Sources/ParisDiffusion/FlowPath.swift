import Torch

/// The flow-matching path shared by every part of Paris (design.md, "Conventions that must not drift"):
/// x_t = (1 − t)·x0 + t·ε with t ∈ [0, 1], t = 1 pure noise; the velocity target is v = ε − x0; networks receive
/// t·1000; sampling integrates from t = 1 to t = 0.
public enum FlowPath {
    /// The network's time input for flow time t.
    public static let timeScale = 1000.0

    /// x_t = (1 − t)·x0 + t·ε, with t: [B] broadcast over the other dimensions of x0: [B, ...].
    public static func interpolate(x0: Tensor, noise: Tensor, t: Tensor) throws -> Tensor {
        let shape = [t.size(0)] + Array(repeating: 1, count: x0.rank - 1)
        let tt = try t.reshape(shape)
        return try (1.0 - tt) * x0 + tt * noise
    }

    /// The velocity target v = ε − x0.
    public static func velocity(x0: Tensor, noise: Tensor) throws -> Tensor { try noise - x0 }
}
