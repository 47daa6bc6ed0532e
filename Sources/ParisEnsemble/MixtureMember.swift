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
    /// A remote member (`RemoteExpert`): a `RemoteExpertError` from it drops it for the step instead of failing
    /// the sample (`MixtureOfExperts.velocity`).
    public let isRemote: Bool

    public init(name: String, isRemote: Bool = false, guided: @escaping Guided) {
        self.name = name
        self.isRemote = isRemote
        self.guided = guided
    }

    /// A member served by another process (`paris serve expert`): its weights stay there.
    public static func remote(_ expert: RemoteExpert, name: String) -> MixtureMember {
        MixtureMember(name: name, isRemote: true) { x, t, text, s in try expert.velocity(x, t, text, s) }
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

extension MixtureMember {
    /// `guided`, checked for NaN and ∞ (one reduction on its device): a non-finite velocity throws `NonFiniteError`
    /// naming `label` ("expert 2 (expert_2)") at flow time t. Only then are the unguided velocities computed
    /// (with the prompt and with the null prompt, s = 1), to tell the guidance setting (they are finite) from the
    /// expert's weights (they are not). x: [B, C, H, W], networkTime: [B] → [B, C, H, W]
    func checkedGuided(_ x: Tensor, _ networkTime: Tensor, _ text: TextCondition?, _ s: Double, label: String,
                       t: Double) throws -> Tensor {
        let v = try guided(x, networkTime, text, s)
        try NonFinite.checkVelocity(v, input: x, t: t, guidance: s, model: label) {
            guard text != nil, Guidance.isGuided(scale: s) else { return [] }
            return [try guided(x, networkTime, text, 1), try guided(x, networkTime, nil, 1)]
        }
        return v
    }
}
