import Foundation

/// How the router's probabilities p(k | x_t, t) become the mixture weights of one denoising step
/// (research/papers.md §1.6, §2.6). Written and parsed as `top1`, `top2`, `topk:N`, `full`, `sample1`, `oracle`,
/// `prompt`; it encodes to JSON as that string.
public enum RoutingStrategy: Equatable, Sendable, CustomStringConvertible {
    /// The N most probable available experts, their probabilities renormalised to sum to 1 (Paris's top-2).
    /// `top(1)` is DDM's top-1: the single most probable expert with weight 1.
    case top(Int)
    /// Every available expert, weighted by its probability (renormalised over the available ones):
    /// the posterior mixture v = Σ_k p_k v_k. Experts with p_k < `fullMinimumWeight` are skipped.
    case full
    /// One expert per step and sample, drawn from the (renormalised) router distribution, weight 1
    /// (DDM's "Sample-1" ablation).
    case sample1
    /// The expert of each sample's known cluster, weight 1 (the router is not consulted for the weights).
    case oracle
    /// The expert of the cluster whose caption centroid is nearest to the sample's prompt, weight 1, chosen once per
    /// prompt before sampling (`PromptRouting`) and never from the router (which is not called): one expert per
    /// sample, as top-1. Needs a partition clustered on caption features (`text` or `both`) and a prompt per sample.
    case prompt

    /// Paris's default: top-2, renormalised.
    public static let top2 = RoutingStrategy.top(2)
    /// DDM's default: top-1.
    public static let top1 = RoutingStrategy.top(1)

    /// The names `parse` accepts, for help texts.
    public static let syntax = "top1, top2, topk:N, full, sample1, oracle, prompt"

    /// Under `full`, weights below this are dropped before renormalising (as Paris's reference sampler).
    public static let fullMinimumWeight = 1e-6

    /// Parses `top1`, `top2`, `topk:N` (N ≥ 1), `full`, `sample1`, `oracle` or `prompt`.
    public init(parsing text: String) throws {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch s {
        case "top1", "top-1": self = .top(1)
        case "top2", "top-2": self = .top(2)
        case "full": self = .full
        case "sample1", "sample-1": self = .sample1
        case "oracle": self = .oracle
        case "prompt": self = .prompt
        default:
            if s.hasPrefix("topk:") || s.hasPrefix("top-k:") {
                let n = s.split(separator: ":", maxSplits: 1).last.map(String.init) ?? ""
                guard let k = Int(n), k >= 1 else {
                    throw EnsembleError("routing strategy '\(text)': N in topk:N must be a positive integer")
                }
                self = .top(k)
                return
            }
            throw EnsembleError("unknown routing strategy '\(text)' (expected one of: \(Self.syntax))")
        }
    }

    public var description: String {
        switch self {
        case .top(1): return "top1"
        case .top(2): return "top2"
        case .top(let k): return "topk:\(k)"
        case .full: return "full"
        case .sample1: return "sample1"
        case .oracle: return "oracle"
        case .prompt: return "prompt"
        }
    }

    /// Whether the strategy needs the router's probabilities (all but `oracle` and `prompt`).
    public var needsRouter: Bool { self != .oracle && self != .prompt }

    /// Whether the weights come from one given cluster per sample (`oracle`: the caption's shard; `prompt`: the
    /// nearest caption centroid) rather than from the router.
    public var usesGivenClusters: Bool { self == .oracle || self == .prompt }

    /// Throws when the strategy cannot work with K experts (topk:N with N > K).
    public func validate(numExperts k: Int) throws {
        if case .top(let n) = self, n > k {
            throw EnsembleError("routing strategy \(self) asks for \(n) experts, but the run has only \(k)")
        }
    }
}

extension RoutingStrategy: Codable {
    public init(from decoder: Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Why sampling or evaluating a mixture failed, with a message that names the problem.
public struct EnsembleError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
