import Torch

/// A network call during training or sampling: (x_t [B, ...], network time [B] float, condition or nil) → output
/// shaped like x_t (a velocity for flow-matching models, ε̂ for DDPM ε models).
public typealias DenoiserFunction = (_ x: Tensor, _ networkTime: Tensor, _ condition: Tensor?) throws -> Tensor

/// How flow-matching training draws t ∈ [0, 1].
public enum TimeSampling: Equatable, Sendable {
    /// t ~ U[0, 1): `Tensor.rand([B])`.
    case uniform
    /// t = sigmoid(m + s·n), n ~ N(0, 1): `Tensor.randn([B])` (SD3's and minRF's logit-normal).
    case logitNormal(mean: Double, std: Double)

    /// Draws t: [B] (float32) on `device`: one draw from libtorch's generator.
    public func sample(batch: Int, device: Device = .cpu) throws -> Tensor {
        switch self {
        case .uniform:
            return try Tensor.rand([batch], device: device)
        case .logitNormal(let mean, let std):
            return try (Tensor.randn([batch], device: device) * std + mean).sigmoid()
        }
    }

    func validate() throws {
        if case .logitNormal(let mean, let std) = self {
            try require(mean.isFinite, "logit_mean must be finite, got \(mean)")
            try require(std.isFinite && std > 0, "logit_std must be positive, got \(std)")
        }
    }
}

/// What a network predicts.
public enum Prediction: String, Codable, Sendable {
    case velocity, epsilon
}

/// The loss of one batch: the mean (to back-propagate) and, per sample, the loss and the time drawn, so a trainer
/// can log the loss by timestep bucket.
public struct ObjectiveLoss {
    /// The mean of `perSample` (a scalar with autograd history).
    public let loss: Tensor
    /// The mean squared error of each sample: [B].
    public let perSample: Tensor
    /// The time drawn for each sample, in [0, 1] with 1 = noise: flow t, or DDPM step/(T − 1). [B], float32.
    public let t: Tensor
    /// What the network received as its time input: t·1000 (flow matching) or the DDPM step. [B], float32.
    public let networkTime: Tensor
    /// Which samples had their condition replaced by the null condition ([B], bool), when dropout was asked for.
    public let dropped: Tensor?

    public init(loss: Tensor, perSample: Tensor, t: Tensor, networkTime: Tensor, dropped: Tensor?) {
        self.loss = loss
        self.perSample = perSample
        self.t = t
        self.networkTime = networkTime
        self.dropped = dropped
    }
}

/// A training objective. Each expert picks one; the JSON form (snake_case) is
/// `{"type": "flow_matching", "time_sampling": "uniform"}`,
/// `{"type": "flow_matching", "time_sampling": "logit_normal", "logit_mean": 0, "logit_std": 1}` or
/// `{"type": "ddpm_epsilon", "beta_schedule": "cosine", "num_timesteps": 1000}`.
public enum Objective: Equatable, Sendable {
    /// Rectified flow: x_t = (1 − t)·x0 + t·ε, target v = ε − x0, network input t·1000.
    case flowMatching(TimeSampling)
    /// DDPM ε-prediction: t ∈ {0, …, T−1} uniform, x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, target ε, network input t.
    case ddpmEpsilon(BetaSchedule, numTimesteps: Int)

    /// Flow matching with t ~ U[0, 1].
    public static let flowMatchingUniform = Objective.flowMatching(.uniform)

    public var prediction: Prediction {
        switch self {
        case .flowMatching: .velocity
        case .ddpmEpsilon: .epsilon
        }
    }

    /// Throws a `DiffusionError` for a value out of range.
    public func validate() throws {
        switch self {
        case .flowMatching(let sampling): try sampling.validate()
        case .ddpmEpsilon(_, let T): try DDPMSchedule.checkTimesteps(T)
        }
    }

    /// The DDPM schedule of an ε objective (nil for flow matching).
    public func ddpmSchedule() throws -> DDPMSchedule? {
        guard case .ddpmEpsilon(let kind, let T) = self else { return nil }
        return try DDPMSchedule(kind, numTimesteps: T)
    }

    /// The loss of `model` on clean samples x0: [B, ...].
    ///
    /// Random draws, in this order, from libtorch's generator on x0's device (as minRF's and DiT's training
    /// loops draw them): the times ([B]: `rand` / `randn` for flow matching, `randint(0, T)` for DDPM), the noise
    /// (`randn` shaped like x0), then, when `dropout` is given with p > 0, the drop mask (`rand([B]) < p`).
    public func loss(model: DenoiserFunction, x0: Tensor, condition: Tensor? = nil,
                     dropout: ConditionDropout? = nil, null: NullCondition? = nil) throws -> ObjectiveLoss {
        try validate()
        let batch = x0.size(0), device = x0.device
        let t: Tensor, networkTime: Tensor, noise: Tensor, xt: Tensor, target: Tensor
        switch self {
        case .flowMatching(let sampling):
            t = try sampling.sample(batch: batch, device: device)
            noise = try Tensor.randn(x0.shape, dtype: x0.dtype, device: device)
            xt = try FlowPath.interpolate(x0: x0, noise: noise, t: t.to(dtype: x0.dtype))
            target = try FlowPath.velocity(x0: x0, noise: noise)
            networkTime = try FlowPath.networkTime(t)
        case .ddpmEpsilon(let kind, let T):
            let schedule = try DDPMSchedule(kind, numTimesteps: T)
            let steps = try Tensor.randint(0, T, [batch], device: device)
            noise = try Tensor.randn(x0.shape, dtype: x0.dtype, device: device)
            let (alpha, sigma) = try schedule.coefficients(at: steps, dtype: x0.dtype)
            xt = try FlowPath.broadcast(alpha, like: x0) * x0 + FlowPath.broadcast(sigma, like: x0) * noise
            target = noise
            networkTime = try steps.to(dtype: .float32)
            t = try networkTime / Double(T - 1)
        }
        var cond = condition, dropped: Tensor? = nil
        if let dropout, let c = condition {
            guard let null else { throw DiffusionError("condition dropout needs a null condition") }
            let applied = try dropout.apply(to: c, null: null)
            cond = applied.condition
            dropped = applied.dropped
        }
        let prediction = try model(xt, networkTime, cond)
        try require(prediction.shape == x0.shape,
                    "the model's output has shape \(prediction.shape), expected \(x0.shape)")
        let dims = Array(1..<max(2, x0.rank))
        let perSample = try (prediction - target).square().mean(dims: dims)
        return ObjectiveLoss(loss: try perSample.mean(), perSample: perSample, t: t, networkTime: networkTime,
                             dropped: dropped)
    }
}

extension Objective: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, timeSampling = "time_sampling", logitMean = "logit_mean", logitStd = "logit_std"
        case betaSchedule = "beta_schedule", numTimesteps = "num_timesteps"
    }

    /// Unknown keys are refused (`UnknownKeyError`), and a non-integer `num_timesteps` is a type error at its key.
    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "flow_matching":
            let sampling = try c.decodeIfPresent(String.self, forKey: .timeSampling) ?? "uniform"
            switch sampling {
            case "uniform":
                self = .flowMatching(.uniform)
            case "logit_normal":
                self = .flowMatching(.logitNormal(mean: try c.decodeIfPresent(Double.self, forKey: .logitMean) ?? 0,
                                                  std: try c.decodeIfPresent(Double.self, forKey: .logitStd) ?? 1))
            default:
                throw DiffusionError("unknown time_sampling '\(sampling)' (expected one of: uniform, logit_normal)")
            }
        case "ddpm_epsilon":
            self = .ddpmEpsilon(try c.decodeIfPresent(BetaSchedule.self, forKey: .betaSchedule) ?? .linear,
                                numTimesteps: try c.decodeIntegerIfPresent(Int.self, forKey: .numTimesteps) ?? 1000)
        default:
            throw DiffusionError("unknown objective type '\(type)' (expected one of: flow_matching, ddpm_epsilon)")
        }
        try validate()
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .flowMatching(let sampling):
            try c.encode("flow_matching", forKey: .type)
            switch sampling {
            case .uniform:
                try c.encode("uniform", forKey: .timeSampling)
            case .logitNormal(let mean, let std):
                try c.encode("logit_normal", forKey: .timeSampling)
                try c.encode(mean, forKey: .logitMean)
                try c.encode(std, forKey: .logitStd)
            }
        case .ddpmEpsilon(let kind, let T):
            try c.encode("ddpm_epsilon", forKey: .type)
            try c.encode(kind, forKey: .betaSchedule)
            try c.encode(T, forKey: .numTimesteps)
        }
    }
}

/// Accumulates per-sample losses into equal-width buckets of normalised time t ∈ [0, 1] (t = 1 in the last bucket),
/// so a trainer can log the loss by timestep.
public struct TimeBucketedLoss: Sendable, Equatable {
    public let buckets: Int
    public private(set) var sums: [Double]
    public private(set) var counts: [Int]

    public init(buckets: Int = 10) throws {
        try require(buckets >= 1, "the number of time buckets must be at least 1, got \(buckets)")
        self.buckets = buckets
        sums = Array(repeating: 0, count: buckets)
        counts = Array(repeating: 0, count: buckets)
    }

    /// Adds every sample of one batch (reads `t` and `perSample` back to the CPU).
    public mutating func add(_ out: ObjectiveLoss) throws {
        let t = try out.t.detach().to(device: .cpu, dtype: .float64).toArray(as: Double.self)
        let l = try out.perSample.detach().to(device: .cpu, dtype: .float64).toArray(as: Double.self)
        for (ti, li) in zip(t, l) {
            let b = Swift.min(buckets - 1, Swift.max(0, Int(ti * Double(buckets))))
            sums[b] += li
            counts[b] += 1
        }
    }

    /// The mean loss of each bucket (nil where empty).
    public var means: [Double?] { zip(sums, counts).map { $1 > 0 ? $0 / Double($1) : nil } }

    /// Starts over.
    public mutating func reset() {
        sums = Array(repeating: 0, count: buckets)
        counts = Array(repeating: 0, count: buckets)
    }
}
