import Foundation
import ParisDiffusion
import ParisModels
import Torch

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

    /// A trained Paris expert, through `ExpertVelocity`: flow-matching experts as they are, DDPM ε experts through
    /// `EpsilonConversion`, guided with the expert's null text (cond and uncond in one pass when the prompts have
    /// the null text's length).
    public static func expert(_ model: ParisExpert, objective: Objective, name: String,
                              conversion: EpsilonConversion.Options = .init()) throws -> MixtureMember {
        let velocity = try ExpertVelocity(model, objective: objective, conversion: conversion)
        return MixtureMember(name: name) { x, t, text, s in try velocity(x, t, text, scale: s) }
    }
}
