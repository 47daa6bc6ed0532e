import Torch

/// What `FlowSampler` integrates: (x_t [B, ...], network time t·1000 [B] float32, condition or nil) → the
/// flow-matching velocity v ≈ ε − x0 shaped like x_t, guided by the sampler with a `NullCondition`. Wrap a
/// class-conditional network or a converted ε network in one of these; a Paris expert is `ExpertVelocity`
/// (ParisModels), the router-weighted mixture `MixtureSampler`, both integrated by `ODESolver.integrate`.
public struct VelocityModel {
    public let call: DenoiserFunction

    public init(_ call: @escaping DenoiserFunction) { self.call = call }

    public func callAsFunction(_ x: Tensor, _ networkTime: Tensor, _ condition: Tensor?) throws -> Tensor {
        try call(x, networkTime, condition)
    }

    /// A network trained with `objective`, as a velocity model: used as is for flow matching, converted with
    /// `EpsilonConversion` (default options) for DDPM ε.
    public static func trained(with objective: Objective, network: @escaping DenoiserFunction,
                               conversion: EpsilonConversion.Options = .init()) throws -> VelocityModel {
        guard let schedule = try objective.ddpmSchedule() else { return VelocityModel(network) }
        return EpsilonConversion(schedule: schedule, options: conversion).velocityModel(epsilon: network)
    }
}

/// Turns a DDPM ε-prediction network into a flow-matching velocity at flow time t, so it plugs into the same
/// samplers and mixtures as velocity experts (HDDM, arXiv 2603.06741; research/papers.md §3.2).
///
/// 1. Map t to a DDPM step τ (see `TimeMapping`) and build the ε network's input.
/// 2. α = max(√ᾱ_τ, αmin), σ = √(1 − ᾱ_τ); x̂0 = clamp((x_in − σ·ε̂)/α, −20, 20).
/// 3. v = ε̂ − x̂0 (the FM velocity, ε − x0, with both replaced by their estimates).
public struct EpsilonConversion: Sendable {
    /// How flow time t picks the DDPM step τ and the ε network's input.
    public enum TimeMapping: String, Codable, Sendable {
        /// Signal-to-noise matching (default). The FM state x_t = (1−t)·x0 + t·ε is the VP state
        /// √ᾱ·x0 + √(1−ᾱ)·ε scaled by s = √((1−t)² + t²), with ᾱ = (1−t)²/s². τ is the step whose ᾱ_τ is
        /// nearest to that value, and the network gets x_t/s: the input distribution it was trained on.
        case snrMatched = "snr_matched"
        /// τ = round((T−1)·t) and the network gets x_t unscaled (HDDM's t_DiT = round(999·t), which papers.md
        /// gives for DDPM-initialised FM experts; the "same schedule" variant).
        case direct
    }

    public struct Options: Sendable, Codable, Equatable {
        public var mapping: TimeMapping
        /// x̂0 is clamped to [−x0Clamp, x0Clamp] (HDDM: 20).
        public var x0Clamp: Double
        /// α is clamped below at this value (HDDM: α_safe = max(α, 0.01)).
        public var minAlpha: Double

        public init(mapping: TimeMapping = .snrMatched, x0Clamp: Double = 20, minAlpha: Double = 0.01) {
            self.mapping = mapping
            self.x0Clamp = x0Clamp
            self.minAlpha = minAlpha
        }

        enum CodingKeys: String, CodingKey { case mapping, x0Clamp = "x0_clamp", minAlpha = "min_alpha" }
    }

    public let schedule: DDPMSchedule
    public let options: Options

    public init(schedule: DDPMSchedule, options: Options = .init()) {
        self.schedule = schedule
        self.options = options
    }

    /// The DDPM step τ [B] (int64) and the factor the ε network's input is multiplied by ([B], float64) for
    /// flow times t: [B].
    public func steps(flowTime t: Tensor) throws -> (steps: Tensor, inputScale: Tensor) {
        let t64 = try t.to(dtype: .float64).clamp(min: 0.0, max: 1.0)
        let T = schedule.numTimesteps
        switch options.mapping {
        case .direct:
            let steps = try (t64 * Double(T - 1)).round().to(dtype: .int64)
            return (steps, try Tensor.ones(t.shape, dtype: .float64, device: t.device))
        case .snrMatched:
            let a = try 1.0 - t64
            let s2 = try a.square() + t64.square()
            let steps = try schedule.nearestStep(alphaBar: a.square() / s2)
            return (steps, try s2.rsqrt())
        }
    }

    /// The velocity for the ε prediction `epsilon` made on the network input `input` (= x_t·inputScale) at step
    /// τ: α = max(√ᾱ_τ, minAlpha), σ = √(1−ᾱ_τ), x̂0 = clamp((input − σ·ε̂)/α), v = ε̂ − x̂0.
    public func velocity(epsilon: Tensor, input: Tensor, steps: Tensor) throws -> Tensor {
        let (alpha, sigma) = try schedule.coefficients(at: steps, dtype: input.dtype)
        let a = try FlowPath.broadcast(alpha.clamp(min: options.minAlpha), like: input)
        let x0 = try ((input - FlowPath.broadcast(sigma, like: input) * epsilon) / a)
            .clamp(min: -options.x0Clamp, max: options.x0Clamp)
        return try epsilon - x0
    }

    /// A velocity model from an ε network (which receives the DDPM step τ as a float [B] time input).
    public func velocityModel(epsilon network: @escaping DenoiserFunction) -> VelocityModel {
        VelocityModel { x, networkTime, condition in
            let t = try networkTime.to(dtype: .float64) / FlowPath.timeScale
            let (steps, scale) = try self.steps(flowTime: t)
            let input = try x * FlowPath.broadcast(scale.to(dtype: x.dtype), like: x)
            let eps = try network(input, steps.to(dtype: .float32), condition)
            return try self.velocity(epsilon: eps, input: input, steps: steps)
        }
    }
}
