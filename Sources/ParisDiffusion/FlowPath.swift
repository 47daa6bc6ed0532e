import Torch

/// The flow-matching path shared by every part of Paris (design.md, "Conventions that must not drift"):
/// x_t = (1 − t)·x0 + t·ε with t ∈ [0, 1], t = 1 pure noise; the velocity target is v = ε − x0; networks receive
/// t·1000; sampling integrates from t = 1 to t = 0.
public enum FlowPath {
    /// The network's time input for flow time t.
    public static let timeScale = 1000.0

    /// x_t = (1 − t)·x0 + t·ε, with t: [B] broadcast over the other dimensions of x0: [B, ...].
    public static func interpolate(x0: Tensor, noise: Tensor, t: Tensor) throws -> Tensor {
        let tt = try broadcast(t, like: x0)
        return try (1.0 - tt) * x0 + tt * noise
    }

    /// The velocity target v = ε − x0.
    public static func velocity(x0: Tensor, noise: Tensor) throws -> Tensor { try noise - x0 }

    /// The network's time input t·1000 for flow times t: [B].
    public static func networkTime(_ t: Tensor) throws -> Tensor { try t * timeScale }

    /// A batch of B copies of the network time t·1000 (float32, on `device`): what samplers feed the model.
    public static func networkTime(_ t: Double, batch: Int, device: Device = .cpu) throws -> Tensor {
        try Tensor.full([batch], t * timeScale, device: device)
    }

    /// t: [B] reshaped to [B, 1, ..., 1] so that it broadcasts over x: [B, ...].
    public static func broadcast(_ t: Tensor, like x: Tensor) throws -> Tensor {
        try t.reshape([t.size(0)] + Array(repeating: 1, count: max(0, x.rank - 1)))
    }
}
