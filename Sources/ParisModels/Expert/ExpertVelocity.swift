import ParisDiffusion
import Torch

/// Encoded prompts: text-token embeddings and which tokens are real.
public struct TextCondition {
    /// [B, L, D] (MiniLM: D = 384).
    public let tokens: Tensor
    /// [B, L] bool, true = a real token; nil attends to every token.
    public let mask: Tensor?

    public init(tokens: Tensor, mask: Tensor?) throws {
        guard tokens.rank == 3 else { throw TorchError("text tokens must be [B, L, D], got \(tokens.shape)") }
        if let mask, mask.shape != [tokens.size(0), tokens.size(1)] {
            throw TorchError("text mask has shape \(mask.shape), expected \([tokens.size(0), tokens.size(1)])")
        }
        self.tokens = tokens
        self.mask = mask
    }

    public var batch: Int { tokens.size(0) }

    /// The tokens and the mask on `device`.
    public func to(device: Device) throws -> TextCondition {
        try TextCondition(tokens: tokens.to(device: device), mask: mask.map { try $0.to(device: device) })
    }

    /// The rows `index` ([n] int64) of the tokens and the mask.
    public func rows(_ index: Tensor) throws -> TextCondition {
        try TextCondition(tokens: tokens.indexSelect(dim: 0, index: index),
                          mask: mask.map { try $0.indexSelect(dim: 0, index: index) })
    }
}

/// A trained Paris expert as a guided velocity model, the one path by which `paris sample`, `paris eval` and the
/// training sample grids call an expert:
///
///     v = v_u + s·(v_c − v_u),  v_c = v(x_t, t, c),  v_u = v(x_t, t, null text)
///
/// where v is the expert's own output for flow matching, and for a DDPM ε expert the flow velocity ε̂ − x̂0 of
/// `EpsilonConversion` (SNR-matched input, x̂0 clamp, α floor). The null text is the expert's `nullText`. With
/// s ≠ 1 and prompts as long as the null text (`textLength` tokens), cond and uncond run in one forward pass on
/// [x; x] (`Guidance.onePass`); other prompt lengths take two passes. s = 1 or no text is one pass.
public struct ExpertVelocity {
    public let model: ParisExpert
    public let objective: Objective
    /// The ε → v conversion of a DDPM ε expert; nil for a flow-matching expert.
    public let conversion: EpsilonConversion?

    public init(_ model: ParisExpert, objective: Objective, conversion: EpsilonConversion.Options = .init()) throws {
        self.model = model
        self.objective = objective
        self.conversion = try objective.ddpmSchedule().map { EpsilonConversion(schedule: $0, options: conversion) }
    }

    /// The guided velocity. x: [B, C, H, W], networkTime: [B] (flow time ·1000), text: B prompts or nil (the null
    /// text), scale: the CFG scale s → v [B, C, H, W].
    public func callAsFunction(_ x: Tensor, _ networkTime: Tensor, _ text: TextCondition?,
                               scale s: Double) throws -> Tensor {
        guard let text, Guidance.isGuided(scale: s) else { return try velocity(x, networkTime, text: text) }
        guard text.tokens.size(1) == model.config.textLength else {
            return try Guidance.combine(conditional: velocity(x, networkTime, text: text),
                                        unconditional: velocity(x, networkTime, text: nil), scale: s)
        }
        let null = try model.nullText(batch: x.size(0)).to(dtype: text.tokens.dtype)  // [B, L, D]
        let tokens = try Guidance.stack(text.tokens, null)                              // [2B, L, D]
        let mask = try text.mask.map {                                                   // [2B, L]: null: all real
            try Guidance.stack($0, Tensor.ones($0.shape, dtype: .bool, device: $0.device))
        }
        return try Guidance.onePass(x: x, t: networkTime, scale: s) { x, t in
            try velocity(x, t, tokens: tokens, mask: mask)
        }
    }

    /// The unguided velocity: conditioned on `text`, or on the null text when nil. x: [B, C, H, W],
    /// networkTime: [B] → [B, C, H, W]
    public func velocity(_ x: Tensor, _ networkTime: Tensor, text: TextCondition?) throws -> Tensor {
        try velocity(x, networkTime, tokens: text?.tokens, mask: text?.mask)
    }

    /// One forward pass with per-row text tokens [B, L, D] (nil: the null text, attending to every token) and
    /// mask [B, L], through the ε → v conversion for an ε expert.
    private func velocity(_ x: Tensor, _ networkTime: Tensor, tokens: Tensor?, mask: Tensor?) throws -> Tensor {
        let model = self.model
        let network: DenoiserFunction = { x, t, _ in
            guard let tokens else { return try model(x: x, t: t, text: model.nullText(batch: x.size(0))) }
            return try model(x: x, t: t, text: tokens, textMask: mask)
        }
        guard let conversion else { return try network(x, networkTime, nil) }
        return try conversion.velocityModel(epsilon: network)(x, networkTime, nil)
    }
}
