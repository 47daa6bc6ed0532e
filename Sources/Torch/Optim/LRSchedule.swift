import Foundation

/// Linear warmup followed by cosine decay to a floor: the learning rate for the optimizer step that follows
/// `step` completed steps (step 0 is the first update).
///
///     lr(s) = baseLR · (s + 1) / warmupSteps                                   for s < warmupSteps
///     lr(s) = minLR + (baseLR − minLR) · ½ · (1 + cos(π · p))                  otherwise, with
///         p = min(1, (s − warmupSteps) / max(1, totalSteps − warmupSteps))
///
/// So warmup reaches baseLR at its last step, the cosine starts at baseLR right after it and ends at minLR at
/// `totalSteps`, and stays there beyond. It equals PyTorch's `LambdaLR(optimizer, lambda s: lr(s) / base_lr)`
/// read before each `optimizer.step()`. Stored in configs as JSON with snake_case keys
/// (`base_lr`, `warmup_steps`, `total_steps`, `min_lr`).
public struct LRSchedule: Codable, Sendable, Equatable {
    public var baseLR: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minLR: Double

    enum CodingKeys: String, CodingKey {
        case baseLR = "base_lr", warmupSteps = "warmup_steps", totalSteps = "total_steps", minLR = "min_lr"
    }

    public init(baseLR: Double, warmupSteps: Int = 0, totalSteps: Int, minLR: Double = 0) {
        self.baseLR = baseLR
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minLR = minLR
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(baseLR: try c.decode(Double.self, forKey: .baseLR),
                  warmupSteps: try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? 0,
                  totalSteps: try c.decode(Int.self, forKey: .totalSteps),
                  minLR: try c.decodeIfPresent(Double.self, forKey: .minLR) ?? 0)
        try validate()
    }

    /// Throws when a value is out of range (negative steps or rates, a floor above the base rate).
    public func validate() throws {
        guard baseLR >= 0, minLR >= 0 else {
            throw TorchError("schedule: base_lr (\(baseLR)) and min_lr (\(minLR)) must not be negative")
        }
        guard minLR <= baseLR else { throw TorchError("schedule: min_lr (\(minLR)) exceeds base_lr (\(baseLR))") }
        guard warmupSteps >= 0, totalSteps >= 0 else {
            throw TorchError("schedule: warmup_steps (\(warmupSteps)) and total_steps (\(totalSteps)) must not be negative")
        }
    }

    /// The learning rate of the update that follows `step` completed steps.
    public func lr(step: Int) -> Double {
        if step < warmupSteps { return baseLR * Double(step + 1) / Double(warmupSteps) }
        let progress = min(1.0, Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps)))
        return minLR + (baseLR - minLR) * 0.5 * (1.0 + cos(Double.pi * progress))
    }

    /// Sets `optimizer.lr` for the update that follows `step` completed steps.
    public func apply(to optimizer: AdamW, step: Int) { optimizer.lr = lr(step: step) }
}
