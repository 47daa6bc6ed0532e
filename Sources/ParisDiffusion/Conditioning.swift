import Torch

/// The "no condition" input for classifier-free guidance: the null class id (DiT: `num_classes`) for class labels,
/// or a null embedding (e.g. the text encoder's embedding of "") for embedding conditions.
public enum NullCondition {
    /// Class labels [B] (int64); the null class id replaces dropped labels.
    case classLabel(Int)
    /// Embedding conditions [B, ...]; this tensor has the shape of one sample ([...]) or [1, ...].
    case embedding(Tensor)

    /// A null condition shaped like `condition` ([B, ...]), on its device and with its dtype.
    public func batch(like condition: Tensor) throws -> Tensor {
        switch self {
        case .classLabel(let id):
            return try Tensor.full(condition.shape, Double(id), dtype: condition.dtype, device: condition.device)
        case .embedding(let e):
            let one = Array(condition.shape.dropFirst())
            let single: Tensor
            if e.shape == one {
                single = try e.unsqueeze(0)
            } else if e.shape == [1] + one {
                single = e
            } else {
                throw DiffusionError("null embedding has shape \(e.shape), expected \(one) or \([1] + one) "
                    + "to match a condition of shape \(condition.shape)")
            }
            return try single.to(device: condition.device, dtype: condition.dtype).expand(condition.shape)
                .contiguous()
        }
    }
}

/// Random condition dropout for classifier-free guidance training: each sample's condition is replaced by the
/// null condition with probability p. The mask is `Tensor.rand([B]) < p` from libtorch's generator (DiT's
/// `LabelEmbedder.token_drop`); nothing is drawn when p = 0.
public struct ConditionDropout: Sendable, Codable, Equatable {
    public let probability: Double

    public init(probability: Double) throws {
        try require(probability.isFinite && probability >= 0 && probability <= 1,
                    "condition dropout probability must be in [0, 1], got \(probability)")
        self.probability = probability
    }

    enum CodingKeys: String, CodingKey { case probability }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(probability: try c.decode(Double.self, forKey: .probability))
    }

    /// A boolean drop mask [B] (true = drop) drawn on `device`; all false (and no draw) when p = 0.
    public func mask(batch: Int, device: Device = .cpu) throws -> Tensor {
        if probability == 0 { return try Tensor.zeros([batch], dtype: .bool, device: device) }
        return try Tensor.rand([batch], device: device).lt(probability)
    }

    /// Draws a mask and applies it: returns the conditions with the dropped ones replaced, and the mask.
    public func apply(to condition: Tensor, null: NullCondition) throws -> (condition: Tensor, dropped: Tensor) {
        let dropped = try mask(batch: condition.size(0), device: condition.device)
        return (try Self.replace(condition, where: dropped, with: null), dropped)
    }

    /// Replaces the conditions where `mask` ([B], bool) is true by the null condition.
    public static func replace(_ condition: Tensor, where mask: Tensor, with null: NullCondition) throws -> Tensor {
        try require(mask.shape == [condition.size(0)],
                    "drop mask has shape \(mask.shape), expected [\(condition.size(0))]")
        let nulls = try null.batch(like: condition)
        let m = try FlowPath.broadcast(mask.to(dtype: .bool), like: condition)
        return try Tensor.where(m, nulls, condition)
    }
}
