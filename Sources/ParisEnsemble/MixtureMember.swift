import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// Encoded prompts: text-token embeddings and which tokens are real.
public struct TextCondition {
    /// [B, L, D] (MiniLM: D = 384).
    public let tokens: Tensor
    /// [B, L] bool, true = a real token; nil attends to every token.
    public let mask: Tensor?

    public init(tokens: Tensor, mask: Tensor?) throws {
        guard tokens.rank == 3 else { throw EnsembleError("text tokens must be [B, L, D], got \(tokens.shape)") }
        if let mask, mask.shape != [tokens.size(0), tokens.size(1)] {
            throw EnsembleError("text mask has shape \(mask.shape), expected \([tokens.size(0), tokens.size(1)])")
        }
        self.tokens = tokens
        self.mask = mask
    }

    public var batch: Int { tokens.size(0) }

    /// The rows `index` ([n] int64) of the tokens and the mask.
    public func rows(_ index: Tensor) throws -> TextCondition {
        try TextCondition(tokens: tokens.indexSelect(dim: 0, index: index),
                          mask: mask.map { try $0.indexSelect(dim: 0, index: index) })
    }
}

/// One expert of the mixture, as a velocity function that applies its own classifier-free guidance:
/// (x_t [B, C, H, W], network time t·1000 [B], text or nil, guidance scale s) → v [B, C, H, W], with
/// v = v_u + s·(v_c − v_u) per expert (Paris applies CFG per expert, before mixing). With s = 1 or no text,
/// one call; nil text means the expert's own null condition.
public struct MixtureMember {
    public typealias Guided = (_ x: Tensor, _ networkTime: Tensor, _ text: TextCondition?, _ scale: Double) throws
        -> Tensor
    /// A name for logs and traces (`expert_3`, `flow-matching`, …).
    public let name: String
    public let guided: Guided

    public init(name: String, guided: @escaping Guided) {
        self.name = name
        self.guided = guided
    }

    /// A member from a plain velocity function (x, network time, text or nil) → v; CFG calls it twice.
    public static func velocity(name: String,
                                _ v: @escaping (Tensor, Tensor, TextCondition?) throws -> Tensor) -> MixtureMember {
        MixtureMember(name: name) { x, t, text, s in
            guard let text, Guidance.isGuided(scale: s) else { return try v(x, t, text) }
            return try Guidance.combine(conditional: v(x, t, text), unconditional: v(x, t, nil), scale: s)
        }
    }

    /// A trained Paris expert: flow-matching experts are used as they are, DDPM ε experts through
    /// `EpsilonConversion` (SNR-matched input, x̂0 clamp, α floor). With guidance, cond and uncond run in one
    /// forward pass on [x; x] when the prompt tokens have the null text's length (else in two passes).
    public static func expert(_ model: ParisExpert, objective: Objective, name: String,
                              conversion: EpsilonConversion.Options = .init()) throws -> MixtureMember {
        let conversion = try objective.ddpmSchedule().map { EpsilonConversion(schedule: $0, options: conversion) }
        // The network for one batch with per-row text (nil: null text) and mask.
        func velocity(_ x: Tensor, _ t: Tensor, _ text: Tensor?, _ mask: Tensor?) throws -> Tensor {
            let network: DenoiserFunction = { x, t, _ in
                try model(x: x, t: t, text: text ?? model.nullText(batch: x.size(0)), textMask: text == nil ? nil : mask)
            }
            guard let conversion else { return try network(x, t, nil) }
            return try conversion.velocityModel(epsilon: network)(x, t, nil)
        }
        return MixtureMember(name: name) { x, t, text, s in
            guard let text, s != 1 else { return try velocity(x, t, text?.tokens, text?.mask) }
            let b = x.size(0)
            if text.tokens.size(1) == model.config.textLength {
                let null = try model.nullText(batch: b).to(dtype: text.tokens.dtype)
                let tokens = try Tensor.cat([text.tokens, null], dim: 0)                  // [2B, L, D]
                let mask = try text.mask.map {
                    try Tensor.cat([$0, Tensor.ones($0.shape, dtype: .bool, device: $0.device)], dim: 0)
                }
                let out = try velocity(Tensor.cat([x, x], dim: 0), Tensor.cat([t, t], dim: 0), tokens, mask)
                let halves = try out.chunk(2, dim: 0)
                return try halves[1] + (halves[0] - halves[1]) * s
            }
            let vc = try velocity(x, t, text.tokens, text.mask), vu = try velocity(x, t, nil, nil)
            return try vu + (vc - vu) * s
        }
    }
}
