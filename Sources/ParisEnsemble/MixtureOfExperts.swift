import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// The routing of one model evaluation: the time, the router's probabilities (when it ran) and the weights used.
public struct StepRouting: Codable, Sendable, Equatable {
    /// Flow time t ∈ [0, 1] (1 = noise).
    public var t: Double
    /// p(k | x_t, t) [B][K], nil when the router was not consulted (oracle without a router).
    public var probabilities: [[Double]]?
    /// The mixture weights [B][K] (rows sum to 1).
    public var weights: [[Double]]
    /// The experts evaluated for this step (non-zero weight for at least one sample).
    public var experts: [Int]
    /// Remote experts dropped at this step (down, too slow or a bad answer), with the reason; their weight went to
    /// the rest. Nil when none was.
    public var dropped: [DroppedExpert]? = nil

    /// The entry for the samples `rows` only (in range), its experts those these samples used.
    public func rows(_ rows: Range<Int>) -> StepRouting {
        let w = Array(weights[rows])
        return StepRouting(t: t, probabilities: probabilities.map { Array($0[rows]) }, weights: w,
                           experts: experts.filter { k in w.contains { $0[k] > 0 } }, dropped: dropped)
    }
}

/// A remote expert left out of one step, and why.
public struct DroppedExpert: Codable, Sendable, Equatable {
    public var expert: Int
    public var reason: String
}

/// Decentralized diffusion's inference: K independently trained experts and a router p(k | x_t, t); at every
/// evaluation the router scores the current x_t, the strategy turns the scores into weights, each selected expert
/// predicts a (CFG-guided, ε-converted) velocity, and the velocities are mixed: v = Σ_k w_k·v_k
/// (research/papers.md §1.1, §2.6).
///
/// Missing experts (nil members) get weight 0 and the rest are renormalised, which is DDM's resilience claim: the
/// mixture keeps working when an expert is lost. A remote member (`MixtureMember.remote`) whose call fails at a step
/// is dropped the same way for that step only, and the step's `StepRouting.dropped` says which and why. Each expert
/// only runs on the samples that give it a non-zero weight, so top-1 costs one expert pass per sample whatever K is.
public final class MixtureOfExperts {
    /// (x_t [B, C, H, W], network time t·1000 [B], pooled prompts [B, D] or nil) → probabilities [B, K]. The
    /// prompts (`TextCondition.pooled()`) are passed only to a router that reads them (`routerReadsText`), and are
    /// nil for unconditional samples: a text-conditioned router then routes on its null caption.
    public typealias RouterFunction = (_ x: Tensor, _ networkTime: Tensor, _ text: Tensor?) throws -> Tensor

    /// K slots; nil for an expert that is missing or failed to load.
    public let members: [MixtureMember?]
    public let router: RouterFunction?
    /// Whether the router is text-conditioned, p(k | x_t, t, c): it is given the prompts.
    public let routerReadsText: Bool

    public var numExperts: Int { members.count }
    /// The indices of the missing experts.
    public var missing: [Int] { members.indices.filter { members[$0] == nil } }

    public init(members: [MixtureMember?], router: RouterFunction?, routerReadsText: Bool = false) throws {
        guard !members.isEmpty else { throw EnsembleError("a mixture needs at least one expert slot (K ≥ 1)") }
        guard members.contains(where: { $0 != nil }) else {
            throw EnsembleError("all \(members.count) experts are missing; nothing can be sampled")
        }
        self.members = members
        self.router = router
        self.routerReadsText = router != nil && routerReadsText
    }

    /// A mixture of `members` (local or remote) weighed by a trained router's softmax, checked to score K experts;
    /// a text-conditioned router is given the prompts.
    public convenience init(members: [MixtureMember?], router: Router?) throws {
        if let router, router.config.numExperts != members.count {
            throw EnsembleError("the router scores \(router.config.numExperts) experts, but there are \(members.count)")
        }
        try self.init(members: members, router: router.map { r in { x, t, text in try r.probabilities(x: x, t: t, text: text) } },
                      routerReadsText: router?.config.kind == .textConditioned)
    }

    /// A mixture over trained modules: the router's softmax (checked to have K outputs) and the Paris experts.
    public convenience init(experts: [(model: ParisExpert, objective: Objective)?], router: Router?) throws {
        let members = try experts.enumerated().map { k, e in
            try e.map { try MixtureMember.expert($0.model, objective: $0.objective, name: "expert_\(k)") }
        }
        try self.init(members: members, router: router)
    }

    /// The same experts with another router (checked to score K experts), e.g. to sample one run's experts with a
    /// text-free and a text-conditioned router side by side.
    public func replacingRouter(with router: Router) throws -> MixtureOfExperts {
        try MixtureOfExperts(members: members, router: router)
    }

    /// The router's probabilities [B][K] at flow time t, as float64 arrays; `text` (B prompts, nil: unconditional)
    /// reaches only a text-conditioned router.
    public func probabilities(x: Tensor, t: Double, text: TextCondition? = nil) throws -> [[Double]] {
        guard let router else {
            throw EnsembleError("this mixture has no router; only the oracle and prompt strategies work without one")
        }
        let b = x.size(0), k = numExperts
        let pooled = routerReadsText ? try text.map { try $0.pooled().to(device: x.device) } : nil  // [B, D]
        let p = try router(x, FlowPath.networkTime(t, batch: b, device: x.device), pooled)
        guard p.shape == [b, k] else { throw EnsembleError("the router returned \(p.shape), expected [\(b), \(k)]") }
        let flat = try p.to(device: .cpu, dtype: .float64).contiguous().toArray(as: Double.self)
        return (0..<b).map { Array(flat[($0 * k)..<(($0 + 1) * k)]) }
    }

    /// The mixed velocity at flow time t, and the routing used. A NaN or ∞ in the router's probabilities or in an
    /// expert's guided velocity throws `NonFiniteError` naming the router or the expert, and the cause.
    /// - x: [B, C, H, W]; text: B prompts or nil (unconditional); guidance: the CFG scale, applied per expert;
    /// - oracle: one cluster per sample (for `.oracle` and `.prompt`; `.prompt` never calls the router);
    ///   generator: what `.sample1` draws from.
    public func velocity(x: Tensor, t: Double, text: TextCondition?, guidance: Double, routing: RoutingWeights,
                         oracle: [Int]? = nil, generator: inout SplitMix64) throws -> (Tensor, StepRouting) {
        let b = x.size(0)
        guard routing.numExperts == numExperts else {
            throw EnsembleError("routing is for \(routing.numExperts) experts, the mixture has \(numExperts)")
        }
        if let text, text.batch != b { throw EnsembleError("\(text.batch) prompts for a batch of \(b) samples") }
        if let oracle, oracle.count != b { throw EnsembleError("\(oracle.count) oracle clusters for \(b) samples") }
        var probs: [[Double]]? = nil
        if routing.strategy.needsRouter || (router != nil && routing.strategy != .prompt) {
            probs = try probabilities(x: x, t: t, text: text)
        }
        if let probs { try NonFinite.checkRouter(probs.flatMap { $0 }, input: x, t: t, guidance: guidance) }
        let netTime = try FlowPath.networkTime(t, batch: b, device: x.device)
        // A remote expert that fails is dropped for this step and the weights are made again without it (a sample
        // whose own expert it was goes to the router's next choice); local experts' errors are thrown.
        var routing = routing, dropped: [DroppedExpert] = []
        while true {
            let weights = try routing.weights(probabilities: probs, oracle: oracle, generator: &generator)
            let active = RoutingWeights.active(weights)
            do {
                let v = try mix(x, netTime, text, guidance, weights: weights, active: active, t: t)
                return (v, StepRouting(t: t, probabilities: probs, weights: weights, experts: active,
                                       dropped: dropped.isEmpty ? nil : dropped))
            } catch let failure as MemberFailure {
                dropped.append(DroppedExpert(expert: failure.expert, reason: failure.error.reason))
                routing = try routing.dropping(failure.expert, because: failure.error)
            }
        }
    }

    /// A remote member's failure while mixing, with its slot.
    struct MemberFailure: Error {
        let expert: Int
        let error: RemoteExpertError
    }

    /// Σ_k w_k·v_k over the `active` experts, each evaluated on the samples that give it weight.
    func mix(_ x: Tensor, _ netTime: Tensor, _ text: TextCondition?, _ guidance: Double, weights: [[Double]],
             active: [Int], t: Double) throws -> Tensor {
        let b = x.size(0)
        var mixed: Tensor? = nil
        for k in active {
            guard let member = members[k] else {
                throw EnsembleError("internal: expert \(k) is missing but has weight (check RoutingWeights.available)")
            }
            let rows = (0..<b).filter { weights[$0][k] > 0 }
            let w = try Tensor(rows.map { weights[$0][k] }).to(device: x.device, dtype: x.dtype)  // [n]
            let contribution: Tensor                                                             // [B, C, H, W]
            do {
                if rows.count == b {
                    let v = try member.checkedGuided(x, netTime, text, guidance, label: "expert \(k) (\(member.name))", t: t)
                    contribution = try v * FlowPath.broadcast(w, like: v)
                } else {
                    let index = try Tensor(rows.map { Int64($0) }).to(device: x.device)
                    let v = try member.checkedGuided(x.indexSelect(dim: 0, index: index),
                                                     netTime.indexSelect(dim: 0, index: index), text.map { try $0.rows(index) },
                                                     guidance, label: "expert \(k) (\(member.name))", t: t)  // [n, C, H, W]
                    let weighted = try (v * FlowPath.broadcast(w, like: v)).flatten(start: 1)         // [n, CHW]
                    // Scatter the n rows back to their places: S^T [B, n] @ weighted [n, CHW] with S one-hot.
                    let select = try index.oneHot(classes: b).to(dtype: x.dtype).transpose(0, 1)       // [B, n]
                    contribution = try select.matmul(weighted).reshape(x.shape)
                }
            } catch let error as RemoteExpertError where member.isRemote {
                throw MemberFailure(expert: k, error: error)
            }
            mixed = try mixed.map { try $0 + contribution } ?? contribution
        }
        guard let v = mixed else { throw EnsembleError("internal: no expert was selected") }
        return v
    }
}
