import Torch

/// The ODE integrator of the samplers: dx/dt = v(x, t) from t_0 = 1 (noise) down to t_N = 0 (data), with
/// h = t_{i+1} − t_i < 0 on every step.
public enum ODESolver: String, NamedChoice, Sendable {
    public static let choiceKey = "solver"
    /// x ← x + (t_{i+1} − t_i)·v(x, t_i): one model call per step (Paris: 50 steps).
    case euler
    /// Heun's second-order method: x̃ = x + h·v(x, t_i), x ← x + h·(v(x, t_i) + v(x̃, t_{i+1}))/2, h = t_{i+1} − t_i.
    /// Two model calls per step, the correction included on the last step (a velocity model is defined at t = 0).
    case heun

}

/// One finished step, reported to the progress callback.
public struct SamplerProgress {
    /// 0-based index of the step just taken, and the number of steps.
    public let step: Int, steps: Int
    /// The step went from time `t` to `tNext`.
    public let t: Double, tNext: Double
    /// The state at `tNext`.
    public let x: Tensor
}

extension ODESolver {
    /// The velocity field: (x_t [B, ...], flow time t ∈ [0, 1]) → v [B, ...], the guided (and, for a mixture,
    /// routed and mixed) prediction. Called in time order, so a closure may record what each evaluation did.
    public typealias Velocity = (_ x: Tensor, _ t: Double) throws -> Tensor

    /// Integrates dx/dt = v(x, t) from x(t_0) = `x` over `times` (checked by `FlowSampler.validate(times:)`:
    /// strictly decreasing in [0, 1], at least 2 entries) and returns x(t_N). Runs under `withNoGrad`;
    /// `progress` is called after each of the N steps with the new state. Euler evaluates v once per step, at
    /// (x, t_i); Heun twice, at (x, t_i) then at the predictor (x̃, t_{i+1}). A `NonFiniteError` thrown by `velocity`
    /// (the samplers' per-step checks) passes through with the step it happened on. x: [B, ...] → [B, ...]
    public func integrate(_ x: Tensor, times: [Double], velocity: Velocity,
                          progress: ((SamplerProgress) throws -> Void)? = nil) throws -> Tensor {
        try FlowSampler.validate(times: times)
        return try withNoGrad {
            var x = x
            let n = times.count - 1
            for i in 0..<n {
                let t = times[i], tNext = times[i + 1], h = tNext - t
                // A `NonFiniteError` from the velocity gets this step's number (1-based) for its message.
                func evaluate(_ x: Tensor, _ t: Double) throws -> Tensor {
                    do { return try velocity(x, t) } catch var e as NonFiniteError {
                        (e.step, e.steps) = (e.step ?? i + 1, e.steps ?? n)
                        throw e
                    }
                }
                let v = try evaluate(x, t)
                switch self {
                case .euler:
                    x = try x + v * h
                case .heun:
                    let predicted = try x + v * h
                    let v2 = try evaluate(predicted, tNext)
                    x = try x + (v + v2) * (h / 2)
                }
                try progress?(SamplerProgress(step: i, steps: n, t: t, tNext: tNext, x: x))
            }
            return x
        }
    }
}
