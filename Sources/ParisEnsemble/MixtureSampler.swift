import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// The routing record of a sampling run, written as `trace.json`:
/// `{"strategy": "top2", "guidance_scale": 7.5, "solver": "euler", "num_experts": K, "missing_experts": [...],
///   "prompts": [...], "seeds": [...], "router_kind": "text-free", "router_input": "x_t, t",
///   "steps": [{"t": 1.0, "probabilities": [[...]], "weights": [[...]], "experts": [0, 3]}, ...]}`.
/// With Heun each step has two entries (t_i, then the corrector at t_{i+1}).
/// `warnings` (only when there are some) names each expert or router trained on other shards than the run's
/// partition holds now (`RunMixture.stale`).
public struct RoutingTrace: Codable, Sendable, Equatable {
    public var strategy: RoutingStrategy
    public var guidanceScale: Double
    public var solver: ODESolver
    public var numExperts: Int
    public var missingExperts: [Int]
    /// One prompt per sample (empty strings for unconditional samples).
    public var prompts: [String]
    /// The noise seed of each sample.
    public var seeds: [UInt64]
    public var steps: [StepRouting]
    /// The router consulted (nil when none was: no router, or the prompt strategy).
    public var routerKind: RouterKind?
    /// What the router read: `x_t, t` (text-free), `x_t, t, prompt`, or for a text-conditioned router given no
    /// prompt `RoutingTrace.unconditionalInput` (it routed unconditionally, on its null caption); nil as `routerKind`.
    public var routerInput: String?
    /// The stale-model warnings of the run (nil: none).
    public var warnings: [String]? = nil

    /// `router_input` of a text-conditioned router that sampled without prompts.
    public static let unconditionalInput = "x_t, t, null caption (no prompt: routed unconditionally)"

    enum CodingKeys: String, CodingKey {
        case strategy, guidanceScale = "guidance_scale", solver, numExperts = "num_experts"
        case missingExperts = "missing_experts", prompts, seeds, steps, warnings
        case routerKind = "router_kind", routerInput = "router_input"
    }

    /// Appends another batch's trace (same settings and step count): rows are concatenated per step.
    public mutating func append(_ other: RoutingTrace) throws {
        guard other.steps.count == steps.count else {
            throw EnsembleError("cannot merge traces with \(steps.count) and \(other.steps.count) steps")
        }
        prompts += other.prompts
        seeds += other.seeds
        for i in steps.indices {
            steps[i].weights += other.steps[i].weights
            if let p = other.steps[i].probabilities { steps[i].probabilities = (steps[i].probabilities ?? []) + p }
            steps[i].experts = Array(Set(steps[i].experts + other.steps[i].experts)).sorted()
        }
    }

    /// Each remote expert dropped from some steps (`StepRouting.dropped`): how many entries it missed and the first
    /// reason, in expert order.
    public var droppedExperts: [(expert: Int, steps: Int, reason: String)] {
        var counts: [Int: Int] = [:], reasons: [Int: String] = [:]
        for step in steps {
            for d in step.dropped ?? [] {
                counts[d.expert, default: 0] += 1
                if reasons[d.expert] == nil { reasons[d.expert] = d.reason }
            }
        }
        return counts.keys.sorted().map { ($0, counts[$0]!, reasons[$0]!) }
    }

    /// The samples `rows` of this trace (a batch of several requests, split back per request).
    public func rows(_ rows: Range<Int>) throws -> RoutingTrace {
        guard rows.lowerBound >= 0, rows.upperBound <= prompts.count else {
            throw EnsembleError("rows \(rows) of a trace of \(prompts.count) samples")
        }
        var t = self
        t.prompts = Array(prompts[rows])
        if seeds.count == prompts.count { t.seeds = Array(seeds[rows]) }
        t.steps = steps.map { $0.rows(rows) }
        return t
    }

    /// The trace as pretty JSON (sorted keys).
    public func jsonData() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(self)) + [10]
    }
}

/// Integrates dx/dt = v_mix(x, t) from noise (t = 1) to data (t = 0) with Euler or Heun (`ODESolver.integrate`)
/// over `SamplerConfig`'s time grid, routing at every model evaluation on the current x_t.
public struct MixtureSampler {
    public var config: SamplerConfig
    public var strategy: RoutingStrategy

    public init(config: SamplerConfig, strategy: RoutingStrategy) throws {
        try config.validate()
        self.config = config
        self.strategy = strategy
    }

    /// The initial noise of a batch: sample i gets `FlowSampler.initialNoise` of shape [1, C, H, W] with seed
    /// seeds[i], so an image depends on its own seed only, not on the batch it was drawn in. → [B, C, H, W]
    public static func noise(seeds: [UInt64], channels: Int, size: Int, device: Device = .cpu) throws -> Tensor {
        guard !seeds.isEmpty else { throw EnsembleError("no samples asked for") }
        return try Tensor.cat(seeds.map {
            try FlowSampler.initialNoise(shape: [1, channels, size, size], seed: $0, device: device)
        }, dim: 0)
    }

    /// Samples x(0) from `noise` [B, C, H, W] with the mixture. `text`: B prompts (nil: unconditional);
    /// `oracle`: B clusters for the oracle strategy; `routingSeed`: seeds `sample1`'s draws. A NaN or ∞ from the
    /// router or an expert at any step throws `NonFiniteError` (who, at which t and step, and why).
    /// `onStep` (for `paris serve`'s live view) gets, after each step, its 1-based number, the step count and the
    /// routing entries of that step (two with Heun); an error it throws stops sampling and is rethrown (cancel).
    public func sample(_ mixture: MixtureOfExperts, noise: Tensor, text: TextCondition?, prompts: [String]? = nil,
                       seeds: [UInt64] = [], oracle: [Int]? = nil, routingSeed: UInt64 = 0,
                       progress: ((Int, Int) -> Void)? = nil,
                       onStep: ((Int, Int, [StepRouting]) throws -> Void)? = nil)
        throws -> (images: Tensor, trace: RoutingTrace) {
        let available = mixture.members.map { $0 != nil }
        let routing = try RoutingWeights(strategy: strategy, available: available)
        if strategy.needsRouter && mixture.router == nil {
            throw EnsembleError("routing strategy \(strategy) needs a router, and this mixture has none")
        }
        if strategy == .prompt && (text == nil || oracle == nil) {
            throw EnsembleError("routing strategy prompt needs a prompt and its cluster per sample; "
                + (text == nil ? "these samples are unconditional (no prompt): route them with a router strategy"
                    : "pass the prompts' clusters (PromptRouting.clusters)"))
        }
        var generator = SplitMix64(seed: routingSeed)
        var steps: [StepRouting] = []  // one entry per model evaluation (Heun: two per step)
        var reported = 0               // the entries already handed to `onStep`
        let b = noise.size(0)
        let x = try config.solver.integrate(noise, times: config.times(), velocity: { x, t in
            let (v, r) = try mixture.velocity(x: x, t: t, text: text, guidance: config.guidanceScale,
                                              routing: routing, oracle: oracle, generator: &generator)
            steps.append(r)
            return v
        }, progress: progress == nil && onStep == nil ? nil : { (p: SamplerProgress) in
            progress?(p.step + 1, p.steps)
            try onStep?(p.step + 1, p.steps, Array(steps[reported...]))
            reported = steps.count
        })
        var trace = RoutingTrace(strategy: strategy, guidanceScale: config.guidanceScale, solver: config.solver,
                                 numExperts: mixture.numExperts, missingExperts: mixture.missing,
                                 prompts: prompts ?? Array(repeating: "", count: b), seeds: seeds, steps: steps)
        if mixture.router != nil && strategy != .prompt {
            trace.routerKind = mixture.routerReadsText ? .textConditioned : .textFree
            trace.routerInput = !mixture.routerReadsText ? RouterKind.textFree.inputs
                : text == nil ? RoutingTrace.unconditionalInput : RouterKind.textConditioned.inputs
        }
        return (x, trace)
    }
}
