import Foundation
import Torch

/// Turns router probabilities into mixture weights, per sample, on the CPU in float64 (B × K is tiny).
///
/// For every sample b:
/// 1. the probabilities of unavailable (missing) experts are zeroed;
/// 2. the strategy selects experts: the N largest (`top`), all with p ≥ 1e-6 (`full`), one drawn from the
///    renormalised distribution (`sample1`), or the sample's given cluster (`oracle`: its known cluster; `prompt`:
///    its prompt's nearest caption centroid);
/// 3. the selected probabilities are renormalised to sum to 1 (for `sample1`, `oracle` and `prompt` the weight is 1).
///
/// When every available expert has probability 0 (a router that is certain about a missing expert), the
/// weights fall back to uniform over the available experts before selection.
public struct RoutingWeights: Sendable {
    public let strategy: RoutingStrategy
    /// K flags: false for an expert that is missing or failed to load.
    public let available: [Bool]
    /// Set once a remote expert was dropped during a step (`dropping`): a sample whose given cluster (`oracle`,
    /// `prompt`) is that expert goes to the router's most probable available expert (or, without probabilities, an
    /// equal share of the available ones) instead of failing.
    public private(set) var reroutesGivenClusters = false

    public init(strategy: RoutingStrategy, available: [Bool]) throws {
        guard !available.isEmpty else { throw EnsembleError("a mixture needs at least one expert slot (K ≥ 1)") }
        try strategy.validate(numExperts: available.count)
        guard available.contains(true) else {
            throw EnsembleError("no expert of the \(available.count) is available; nothing can be sampled")
        }
        self.strategy = strategy
        self.available = available
    }

    public var numExperts: Int { available.count }

    /// These weights without expert k (a remote expert that failed this step), rerouting given clusters.
    public func dropping(_ k: Int, because error: any Error) throws -> RoutingWeights {
        var flags = available
        flags[k] = false
        guard flags.contains(true) else {
            throw EnsembleError("every expert of the step is gone: the last one left, expert \(k), failed: \(error)")
        }
        var copy = try RoutingWeights(strategy: strategy, available: flags)
        copy.reroutesGivenClusters = true
        return copy
    }

    /// The weights [B][K] for probabilities [B][K] (nil only for `oracle` and `prompt`), the given clusters (one per
    /// sample, for `oracle` and `prompt`) and the generator that `sample1` draws from.
    public func weights(probabilities: [[Double]]?, oracle: [Int]? = nil,
                        generator: inout SplitMix64) throws -> [[Double]] {
        let k = numExperts
        switch strategy {
        case .oracle, .prompt:
            guard let oracle else {
                throw EnsembleError(strategy == .oracle ? "the oracle strategy needs each sample's cluster"
                    : "the prompt strategy needs each sample's prompt cluster (unconditional samples have no prompt: "
                        + "route them with a router strategy)")
            }
            return try oracle.enumerated().map { b, c in
                guard (0..<k).contains(c) else {
                    throw EnsembleError("sample \(b): \(strategy) cluster \(c) is outside 0..<\(k)")
                }
                var row = [Double](repeating: 0, count: k)
                guard available[c] else {
                    guard reroutesGivenClusters else {
                        throw EnsembleError("sample \(b): the \(strategy) expert \(c) is missing")
                    }
                    let open = (0..<k).filter { available[$0] }
                    if let p = probabilities?[b], p.count == k {
                        row[open.max { (p[$0], -$0) < (p[$1], -$1) }!] = 1
                    } else {
                        for i in open { row[i] = 1 / Double(open.count) }
                    }
                    return row
                }
                row[c] = 1
                return row
            }
        case .top, .full, .sample1:
            guard let probabilities else {
                throw EnsembleError("routing strategy \(strategy) needs the router's probabilities")
            }
            return try probabilities.enumerated().map { b, p in
                guard p.count == k else {
                    throw EnsembleError("sample \(b): the router gave \(p.count) probabilities for \(k) experts")
                }
                return try row(p, generator: &generator)
            }
        }
    }

    /// One sample's weights.
    func row(_ p: [Double], generator: inout SplitMix64) throws -> [Double] {
        let k = numExperts
        var q = (0..<k).map { available[$0] && $0 < p.count && p[$0].isFinite ? max(p[$0], 0) : 0 }
        if q.reduce(0, +) <= 0 { q = available.map { $0 ? 1 : 0 } }
        var keep = [Bool](repeating: false, count: k)
        switch strategy {
        case .top(let n):
            // The n largest available probabilities; ties go to the lower index.
            let order = (0..<k).filter { available[$0] }.sorted { (q[$0], -$0) > (q[$1], -$1) }
            for i in order.prefix(n) { keep[i] = true }
        case .full:
            for i in 0..<k where available[i] && q[i] >= RoutingStrategy.fullMinimumWeight { keep[i] = true }
            if !keep.contains(true), let best = (0..<k).max(by: { (q[$0], -$0) < (q[$1], -$1) }) { keep[best] = true }
        case .sample1:
            let total = q.reduce(0, +)
            let u = generator.nextUnit() * total
            var acc = 0.0, chosen = (0..<k).last(where: { q[$0] > 0 })!
            for i in 0..<k where q[i] > 0 {
                acc += q[i]
                if u < acc { chosen = i; break }
            }
            var out = [Double](repeating: 0, count: k)
            out[chosen] = 1
            return out
        case .oracle, .prompt:
            throw EnsembleError("internal: \(strategy) weights are not computed from probabilities")
        }
        var out = (0..<k).map { keep[$0] ? q[$0] : 0 }
        var total = out.reduce(0, +)
        if total <= 0 {  // the selected experts all have p = 0: share equally
            out = keep.map { $0 ? 1 : 0 }
            total = out.reduce(0, +)
        }
        return out.map { $0 / total }
    }

    /// The experts with a non-zero weight for at least one sample, in index order (the only ones evaluated).
    public static func active(_ weights: [[Double]]) -> [Int] {
        guard let k = weights.first?.count else { return [] }
        return (0..<k).filter { i in weights.contains { $0[i] > 0 } }
    }

    /// Shannon entropy (nats) of each row of probabilities [B][K].
    public static func entropy(_ p: [[Double]]) -> [Double] {
        p.map { row in -row.reduce(0) { $0 + ($1 > 0 ? $1 * Foundation.log($1) : 0) } }
    }
}
