import Torch

/// The times t_0 = 1 > t_1 > … > t_N = 0 that a sampler visits.
public enum TimeGrid: String, NamedChoice, Sendable {
    public static let choiceKey = "time_grid"
    /// t_i = 1 − i/N, i = 0…N.
    case uniform
    /// diffusers' FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000).set_timesteps(N): σ = linspace(1,
    /// 1/1000, N), shifted by σ' = shift·σ/(1 + (shift − 1)·σ), then a final 0 appended. With shift 1 this is
    /// linspace(1, 0.001, N) + [0]: the last step goes from 0.001 to 0 (what Paris's reference sampler uses).
    case diffusers


    /// The N + 1 times of an N-step schedule, from 1 down to 0 (1 ≤ N ≤ `SamplerConfig.maxSteps`).
    public func times(steps: Int, shift: Double = 1) throws -> [Double] {
        try SamplerConfig.checkSteps(steps)
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
    /// The most sampling steps: 10,000. Paris samples with 50 Euler steps, DDPM was trained with 1000 and sampled
    /// with as many, and a flow ODE is integrated to within float32 precision far below 10,000 steps; more would
    /// only multiply the run time (one network call per step, two with Heun). The step count sizes the time grid
    /// and the routing trace (one entry per model call), so it is checked before anything is allocated:
    /// `--steps 1000000000` used to reserve 8 GB for the grid and 10¹² to abort.
    public static let maxSteps = 10_000

    /// Throws unless 1 ≤ `steps` ≤ `maxSteps`.
    public static func checkSteps(_ steps: Int) throws {
        try require(steps >= 1, "steps must be ≥ 1, not \(steps)")
        try require(steps <= maxSteps, "steps must be ≤ \(maxSteps) (SamplerConfig.maxSteps), not \(steps); "
            + "Paris samples with 50")
    }

    /// The largest guidance scale |s|: 100. Samplers guide with s of a few units (DiT 4, Stable Diffusion 7.5);
    /// the guided velocity v_u + s·(v_c − v_u) grows with s, and far above 100 every step overshoots, the state
    /// diverges and float32 overflows into NaN (`--cfg 1e30` ended in black PNGs). Checked before anything is loaded.
    public static let maxGuidanceScale = 100.0

    /// Throws unless `scale` is finite and |scale| ≤ `maxGuidanceScale`, naming the option.
    public static func checkGuidance(_ scale: Double) throws {
        try require(scale.isFinite && abs(scale) <= maxGuidanceScale,
                    "the guidance scale (--cfg, guidance_scale) must be finite and within ±\(Int(maxGuidanceScale)) "
                        + "(SamplerConfig.maxGuidanceScale), not \(scale); 1 means no guidance, DiT samples with 4")
    }

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
        try Self.checkSteps(steps)
        try require(shift.isFinite && shift > 0, "the time shift must be positive, got \(shift)")
        try Self.checkGuidance(guidanceScale)
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

/// Euler / Heun integration (`ODESolver.integrate`) of dx/dt = v(x, t) from t = 1 (noise) to t = 0 (data), with
/// classifier-free guidance (`Guidance`) on a `VelocityModel` and its null condition.
public struct FlowSampler {
    public var config: SamplerConfig

    public init(_ config: SamplerConfig) throws {
        try config.validate()
        self.config = config
    }

    /// Initial noise x_1 ~ N(0, I): the numbers `torch.manual_seed(seed); torch.randn(shape)` gives on the CPU,
    /// drawn from a generator of their own (`Tensor.randn(_:seed:)`) and then moved to `device`, so that the same
    /// seed gives the same noise on every device, and concurrent samplers (two jobs, a server's requests) never
    /// mix their draws through libtorch's global generator.
    public static func initialNoise(shape: [Int], seed: UInt64, dtype: DType = .float32,
                                    device: Device = .cpu) throws -> Tensor {
        let x = try Tensor.randn(shape, seed: seed, dtype: dtype)
        return device == .cpu ? x : try x.to(device: device)
    }

    /// The guided velocity at flow time t for the batch x: one conditional (or unconditional) call with s = 1 or
    /// no condition, else `Guidance.onePass` on [x; x] with [c; null] (cond first, as DiT's `forward_with_cfg`),
    /// v = v_u + s·(v_c − v_u). A NaN or ∞ in v throws `NonFiniteError` (the guidance or the model's weights).
    /// x: [B, ...], condition: [B, ...] → [B, ...]
    public func guidedVelocity(_ model: VelocityModel, x: Tensor, t: Double, condition: Tensor?,
                               null: NullCondition?) throws -> Tensor {
        let batch = x.size(0)
        let s = config.guidanceScale
        let networkTime = try FlowPath.networkTime(t, batch: batch, device: x.device)  // [B]
        guard let condition, Guidance.isGuided(scale: s) else {
            let v = try model(x, networkTime, condition)
            try NonFinite.checkVelocity(v, input: x, t: t, guidance: s, model: "the model") { [] }
            return v
        }
        guard let null else {
            throw DiffusionError("classifier-free guidance (scale \(s)) needs a null condition")
        }
        try require(condition.size(0) == batch,
                    "the condition has batch \(condition.size(0)) but x has batch \(batch)")
        let nullBatch = try null.batch(like: condition)
        let both = try Guidance.stack(condition, nullBatch)  // [2B, ...]
        let v = try Guidance.onePass(x: x, t: networkTime, scale: s) { x, t in try model(x, t, both) }
        try NonFinite.checkVelocity(v, input: x, t: t, guidance: s, model: "the model") {
            [try model(x, networkTime, condition), try model(x, networkTime, nullBatch)]  // v_c, v_u
        }
        return v
    }

    /// Integrates from `noise` (x at t = 1) over `times` (default: the configured grid) and returns every state
    /// x(t_0), …, x(t_N) (N + 1 tensors, the first being `noise`).
    public func trajectory(_ model: VelocityModel, noise: Tensor, condition: Tensor? = nil,
                           null: NullCondition? = nil, times: [Double]? = nil,
                           progress: ((SamplerProgress) throws -> Void)? = nil) throws -> [Tensor] {
        var states = [noise]
        _ = try integrate(model, noise: noise, condition: condition, null: null, times: times) {
            states.append($0.x)
            try progress?($0)
        }
        return states
    }

    /// The final sample x(0) from `noise`.
    public func sample(_ model: VelocityModel, noise: Tensor, condition: Tensor? = nil, null: NullCondition? = nil,
                       times: [Double]? = nil, progress: ((SamplerProgress) throws -> Void)? = nil) throws -> Tensor {
        try integrate(model, noise: noise, condition: condition, null: null, times: times, progress: progress)
    }

    /// `ODESolver.integrate` of the guided velocity over `times` (default: the configured grid).
    func integrate(_ model: VelocityModel, noise: Tensor, condition: Tensor?, null: NullCondition?,
                   times: [Double]?, progress: ((SamplerProgress) throws -> Void)?) throws -> Tensor {
        try config.solver.integrate(noise, times: times ?? config.times(), velocity: { x, t in
            try guidedVelocity(model, x: x, t: t, condition: condition, null: null)
        }, progress: progress)
    }

    /// An explicit time list must start at 1 or below, decrease strictly, stay in [0, 1] and have 2 to
    /// `SamplerConfig.maxSteps` + 1 entries.
    public static func validate(times: [Double]) throws {
        try require(times.count >= 2, "a time list needs at least 2 entries (1 step), got \(times.count)")
        try require(times.count <= SamplerConfig.maxSteps + 1,
                    "a time list has at most \(SamplerConfig.maxSteps + 1) entries (SamplerConfig.maxSteps), got \(times.count)")
        try require(times.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 }, "sampling times must lie in [0, 1]")
        for i in 1..<times.count {
            try require(times[i] < times[i - 1],
                        "sampling times must decrease strictly (t = 1 noise to t = 0 data), got \(times)")
        }
    }
}
