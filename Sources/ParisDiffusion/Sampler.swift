import Torch

/// The ODE integrator of the samplers.
public enum ODESolver: String, NamedChoice, Sendable {
    public static let choiceKey = "solver"
    /// x ← x + (t_{i+1} − t_i)·v(x, t_i): one model call per step (Paris: 50 steps).
    case euler
    /// Heun's second-order method: x̃ = x + h·v(x, t_i), x ← x + h·(v(x, t_i) + v(x̃, t_{i+1}))/2, h = t_{i+1} − t_i.
    /// Two model calls per step, the correction included on the last step (a velocity model is defined at t = 0).
    case heun

}

/// The times t_0 = 1 > t_1 > … > t_N = 0 that a sampler visits.
public enum TimeGrid: String, NamedChoice, Sendable {
    public static let choiceKey = "time_grid"
    /// t_i = 1 − i/N, i = 0…N.
    case uniform
    /// diffusers' FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000).set_timesteps(N): σ = linspace(1,
    /// 1/1000, N), shifted by σ' = shift·σ/(1 + (shift − 1)·σ), then a final 0 appended. With shift 1 this is
    /// linspace(1, 0.001, N) + [0]: the last step goes from 0.001 to 0 (what Paris's reference sampler uses).
    case diffusers


    /// The N + 1 times of an N-step schedule, from 1 down to 0.
    public func times(steps: Int, shift: Double = 1) throws -> [Double] {
        try require(steps >= 1, "the number of sampling steps must be at least 1, got \(steps)")
        try require(shift.isFinite && shift > 0, "the time shift must be positive, got \(shift)")
        var sigmas: [Double]
        switch self {
        case .uniform:
            sigmas = (0..<steps).map { 1 - Double($0) / Double(steps) }
        case .diffusers:
            // numpy.linspace(1000, 1, N) / 1000, in float64 as diffusers computes it (then float32).
            let start = 1000.0, stop = 1.0
            let step = steps > 1 ? (stop - start) / Double(steps - 1) : 0
            sigmas = (0..<steps).map { (Double($0) * step + start) / 1000 }
            if steps > 1 { sigmas[steps - 1] = stop / 1000 }
            sigmas = sigmas.map { Double(Float($0)) }
        }
        if shift != 1 { sigmas = sigmas.map { shift * $0 / (1 + (shift - 1) * $0) } }
        return sigmas + [0]
    }
}

/// Sampling settings (JSON, snake_case): `{"solver": "euler", "steps": 50, "time_grid": "uniform",
/// "shift": 1, "guidance_scale": 7.5}`.
public struct SamplerConfig: Codable, Sendable, Equatable {
    public var solver: ODESolver
    public var steps: Int
    public var timeGrid: TimeGrid
    public var shift: Double
    /// Classifier-free guidance scale s: v = v_u + s·(v_c − v_u); 1 means no guidance (one forward pass).
    public var guidanceScale: Double

    public init(solver: ODESolver = .euler, steps: Int = 50, timeGrid: TimeGrid = .uniform, shift: Double = 1,
                guidanceScale: Double = 1) throws {
        self.solver = solver
        self.steps = steps
        self.timeGrid = timeGrid
        self.shift = shift
        self.guidanceScale = guidanceScale
        try validate()
    }

    public func validate() throws {
        try require(steps >= 1, "the number of sampling steps must be at least 1, got \(steps)")
        try require(shift.isFinite && shift > 0, "the time shift must be positive, got \(shift)")
        try require(guidanceScale.isFinite, "guidance_scale must be finite, got \(guidanceScale)")
    }

    enum CodingKeys: String, CodingKey {
        case solver, steps, timeGrid = "time_grid", shift, guidanceScale = "guidance_scale"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(solver: try c.decodeIfPresent(ODESolver.self, forKey: .solver) ?? .euler,
                      steps: try c.decodeIfPresent(Int.self, forKey: .steps) ?? 50,
                      timeGrid: try c.decodeIfPresent(TimeGrid.self, forKey: .timeGrid) ?? .uniform,
                      shift: try c.decodeIfPresent(Double.self, forKey: .shift) ?? 1,
                      guidanceScale: try c.decodeIfPresent(Double.self, forKey: .guidanceScale) ?? 1)
    }

    /// The times this configuration visits.
    public func times() throws -> [Double] { try timeGrid.times(steps: steps, shift: shift) }
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

/// Euler / Heun integration of dx/dt = v(x, t) from t = 1 (noise) to t = 0 (data), with classifier-free guidance.
public struct FlowSampler {
    public var config: SamplerConfig

    public init(_ config: SamplerConfig) throws {
        try config.validate()
        self.config = config
    }

    /// Initial noise x_1 ~ N(0, I): `Runtime.manualSeed(seed)` then `Tensor.randn(shape)`, the numbers
    /// `torch.manual_seed(seed); torch.randn(shape)` gives.
    public static func initialNoise(shape: [Int], seed: UInt64, dtype: DType = .float32,
                                    device: Device = .cpu) throws -> Tensor {
        Runtime.manualSeed(seed)
        return try Tensor.randn(shape, dtype: dtype, device: device)
    }

    /// The guided velocity at time t for the batch x. With a condition, a null condition and s ≠ 1, cond and
    /// uncond run in one forward pass on [x; x] with [c; null] (cond first, as DiT's `forward_with_cfg`), then
    /// v = v_u + s·(v_c − v_u).
    public func guidedVelocity(_ model: VelocityModel, x: Tensor, t: Double, condition: Tensor?,
                               null: NullCondition?) throws -> Tensor {
        let batch = x.size(0)
        let s = config.guidanceScale
        guard let condition, s != 1 else {
            return try model(x, FlowPath.networkTime(t, batch: batch, device: x.device), condition)
        }
        guard let null else {
            throw DiffusionError("classifier-free guidance (scale \(s)) needs a null condition")
        }
        try require(condition.size(0) == batch,
                    "the condition has batch \(condition.size(0)) but x has batch \(batch)")
        let both = try Tensor.cat([condition, null.batch(like: condition)], dim: 0)
        let out = try model(Tensor.cat([x, x], dim: 0), FlowPath.networkTime(t, batch: 2 * batch, device: x.device),
                            both)
        let halves = try out.chunk(2, dim: 0)
        let vc = halves[0], vu = halves[1]
        return try vu + (vc - vu) * s
    }

    /// Integrates from `noise` (x at t = 1) over `times` (default: the configured grid) and returns every state
    /// x(t_0), …, x(t_N) (N + 1 tensors, the first being `noise`).
    public func trajectory(_ model: VelocityModel, noise: Tensor, condition: Tensor? = nil,
                           null: NullCondition? = nil, times: [Double]? = nil,
                           progress: ((SamplerProgress) throws -> Void)? = nil) throws -> [Tensor] {
        try integrate(model, noise: noise, condition: condition, null: null, times: times, keep: true,
                      progress: progress)
    }

    func integrate(_ model: VelocityModel, noise: Tensor, condition: Tensor?, null: NullCondition?,
                   times explicitTimes: [Double]?, keep: Bool,
                   progress: ((SamplerProgress) throws -> Void)?) throws -> [Tensor] {
        let times = try explicitTimes ?? config.times()
        try Self.validate(times: times)
        return try withNoGrad {
            var x = noise
            var states = [x]
            let n = times.count - 1
            for i in 0..<n {
                let t = times[i], tNext = times[i + 1], h = tNext - t
                let v = try guidedVelocity(model, x: x, t: t, condition: condition, null: null)
                switch config.solver {
                case .euler:
                    x = try x + v * h
                case .heun:
                    let predicted = try x + v * h
                    let v2 = try guidedVelocity(model, x: predicted, t: tNext, condition: condition, null: null)
                    x = try x + (v + v2) * (h / 2)
                }
                if keep { states.append(x) }
                try progress?(SamplerProgress(step: i, steps: n, t: t, tNext: tNext, x: x))
            }
            return keep ? states : [x]
        }
    }

    /// The final sample x(0) from `noise`.
    public func sample(_ model: VelocityModel, noise: Tensor, condition: Tensor? = nil, null: NullCondition? = nil,
                       times: [Double]? = nil, progress: ((SamplerProgress) throws -> Void)? = nil) throws -> Tensor {
        try integrate(model, noise: noise, condition: condition, null: null, times: times, keep: false,
                      progress: progress)[0]
    }

    /// An explicit time list must start at 1 or below, decrease strictly, stay in [0, 1] and have ≥ 2 entries.
    public static func validate(times: [Double]) throws {
        try require(times.count >= 2, "a time list needs at least 2 entries (1 step), got \(times.count)")
        try require(times.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 }, "sampling times must lie in [0, 1]")
        for i in 1..<times.count {
            try require(times[i] < times[i - 1],
                        "sampling times must decrease strictly (t = 1 noise to t = 0 data), got \(times)")
        }
    }
}
