import Foundation
import Torch

/// The two routers: the papers' text-free p(k | x_t, t) (Paris, DDM and HDDM route on the noisy input alone) and
/// the text-conditioned p(k | x_t, t, c), which also reads the prompt's pooled caption embedding
/// (`RouterConfig.textDim`). Written as `text-free` / `text-conditioned` (a router checkpoint's `router_kind`).
public enum RouterKind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case textFree = "text-free"
    case textConditioned = "text-conditioned"

    public var description: String { rawValue }

    /// What the router reads, for logs and reports.
    public var inputs: String { self == .textFree ? "x_t, t" : "x_t, t, prompt" }
}

extension TextCondition {
    /// The pooled caption embedding a text-conditioned router reads: the mean of the token states over the real
    /// tokens, L2-normalised (`TextEncoder.meanPool`, exactly the sentence embedding `paris partition` clusters
    /// captions with, when the tokens are MiniLM's of the same length). tokens [B, L, D] → [B, D] float32; without
    /// a mask every token counts.
    public func pooled() throws -> Tensor {
        let x = try tokens.to(dtype: .float32)
        let m = try mask ?? Tensor.ones([tokens.size(0), tokens.size(1)], dtype: .bool, device: tokens.device)
        return try withNoGrad { try TextEncoder.meanPool(x, mask: m) }
    }
}
