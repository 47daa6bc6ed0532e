import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// The release's inference (research/papers.md §2.6, as the public port's `ParisPipeline.generate`), through the
/// project's one mixture path (`MixtureOfExperts` + `MixtureSampler` + `ODESolver.euler`):
///
/// 1. text = CLIP(tokens(prompt)).last_hidden_state [B, 77, D] with no attention mask (`encodePrompts`); the
///    unconditional text is the same for "" (the release's null condition);
/// 2. x = initial latent noise [B, 4, 32, 32] (`FlowSampler.initialNoise`, one seed per image);
/// 3. for σ_i on diffusers' FlowMatchEulerDiscreteScheduler(num_train_timesteps = 1000, shift 1) grid
///    (`TimeGrid.diffusers`: linspace(1, 1/1000, N) then 0): p = softmax(router(x, σ_i·1000)); the strategy
///    selects experts and renormalises p over them (top-2 by default); each selected expert k gives
///    v_k = v_u + s·(v_c − v_u) from one batched pass on [x; x] with [text; uncond] at time σ_i·1000 (CFG per
///    expert, before mixing); v = Σ w_k v_k; x ← x + (σ_{i+1} − σ_i)·v;
/// 4. image = vae.decode(x / 0.18215), in about [−1, 1] (the release shows (image/2 + 0.5).clamp(0, 1)).
///
/// Conventions, checked against the release's: σ = 1 is pure noise and σ = 0 data, x_σ = (1 − σ)·x0 + σ·ε, the
/// network predicts v = ε − x0, so dx/dσ = v and the Euler step with σ_{i+1} < σ_i moves towards data. This is
/// `FlowPath` exactly (t ≡ σ, network time t·1000 ≡ diffusers' raw `timestep`); nothing is flipped or rescaled.
extension ParisRelease {
    /// The release's sampling settings: 50 Euler steps, CFG 7.5.
    public static let defaultSteps = 50, defaultGuidance = 7.5

    /// Height = width of the decoded images (the latent size times the VAE's downsampling factor).
    public var imageSize: Int { latentSize * (vae?.config.downsamplingFactor ?? 1) }

    /// The release's sampler: Euler on diffusers' flow-matching grid (shift 1; `timeGrid` is `uniform` for an
    /// exported run of ours), `steps` steps (50), CFG `guidance` (7.5).
    public static func samplerConfig(steps: Int = 50, guidance: Double = 7.5,
                                     timeGrid: TimeGrid = .diffusers) throws -> SamplerConfig {
        try SamplerConfig(solver: .euler, steps: steps, timeGrid: timeGrid, shift: 1, guidanceScale: guidance)
    }

    /// The release's text conditioning of `prompts`: tokens [B, L, D] (CLIP's last hidden state, L = 77; BERT's
    /// for an exported run, whose mask is in `condition`).
    public func encode(_ prompts: [String]) throws -> Tensor {
        try text.encode(prompts).tokens
    }

    /// Tokens [B, L, D] and, for BERT, the padding mask [B, L].
    public func condition(_ prompts: [String]) throws -> TextCondition {
        try text.encode(prompts)
    }

    /// The mixture of the release's experts and router. An `empty_prompt` expert (the release's) guides with
    /// `unconditional` (the encoding of "", tokens [1, L, D]) as its null text, cond and uncond batched in one pass
    /// as the release does; an expert with its own null text (`learned`, `zero`: an exported run's) is called as
    /// `paris sample --run` calls it (`MixtureMember.expert`, flow matching).
    public func mixture(unconditional: TextCondition) throws -> MixtureOfExperts {
        let members: [MixtureMember?] = try experts.enumerated().map { k, expert in
            guard expert.config.nullText == .emptyPrompt else {
                return try MixtureMember.expert(expert, objective: .flowMatchingUniform, name: "expert_\(k)")
            }
            let u = unconditional.tokens
            return MixtureMember(name: "expert_\(k)") { x, t, text, s in
                let b = x.size(0)
                let null = try u.expand([b, u.size(1), u.size(2)])                                  // [B, L, D]
                let nullMask = try unconditional.mask.map { try $0.expand([b, $0.size(1)]) }       // [B, L]
                guard let text else { return try expert(x: x, t: t, text: null, textMask: nullMask) }
                guard Guidance.isGuided(scale: s) else { return try expert(x: x, t: t, text: text.tokens, textMask: text.mask) }
                let tokens = try Guidance.stack(text.tokens, null.to(dtype: text.tokens.dtype))  // [2B, L, D]
                var mask: Tensor? = nil                                                              // [2B, L]
                if let m = text.mask, let n = nullMask { mask = try Guidance.stack(m, n) }
                return try Guidance.onePass(x: x, t: t, scale: s) { x2, t2 in
                    try expert(x: x2, t: t2, text: tokens, textMask: mask)
                }
            }
        }
        return try MixtureOfExperts(members: members, router: router)
    }

    /// What one `generate` call made.
    public struct Generation {
        /// The final latents x(0) [B, C, h, w].
        public let latents: Tensor
        /// vae.decode(latents / 0.18215) [B, 3, H, W], in about [−1, 1].
        public let images: Tensor
        /// The routing at every step.
        public let trace: RoutingTrace
    }

    /// Generates one image per prompt from `noise` [B, C, h, w] (B = prompts.count; see
    /// `MixtureSampler.noise(seeds:...)`) with `strategy` (top1, top2, topk:N, full, sample1; the release's default
    /// is top-2), `steps` Euler steps and CFG `guidance`. `onStep(step, steps, routing)` (for `paris serve`) runs after every
    /// step and may throw to stop. Runs without autograd on the models' device.
    public func generate(prompts: [String], noise: Tensor, strategy: RoutingStrategy = .top2, steps: Int = 50,
                         guidance: Double = 7.5, seeds: [UInt64] = [], routingSeed: UInt64 = 0,
                         progress: ((Int, Int) -> Void)? = nil,
                         onStep: ((Int, Int, [StepRouting]) throws -> Void)? = nil) throws -> Generation {
        guard !strategy.usesGivenClusters else {
            throw EnsembleError("routing strategy \(strategy) needs a run's partition; a release routes with its "
                + "router (top1, top2, topk:N, full, sample1)")
        }
        try strategy.validate(numExperts: numExperts)
        guard noise.shape == [prompts.count, latentChannels, latentSize, latentSize] else {
            throw EnsembleError("the initial noise is \(noise.shape), expected [\(prompts.count), \(latentChannels), "
                + "\(latentSize), \(latentSize)] (one latent per prompt)")
        }
        return try withNoGrad {
            let device = experts[0].patchEmbed.weight.device
            let text = try condition(prompts).to(device: device)                       // [B, L, D]
            let uncond = try condition([CLIPTextModel.unconditionalPrompt]).to(device: device)  // [1, L, D]
            let sampler = try MixtureSampler(config: try Self.samplerConfig(steps: steps, guidance: guidance,
                                                                            timeGrid: index.timeGrid),
                                             strategy: strategy)
            let (latents, trace) = try sampler.sample(try mixture(unconditional: uncond), noise: noise.to(device: device),
                                                      text: text,
                                                      prompts: prompts, seeds: seeds, routingSeed: routingSeed,
                                                      progress: progress, onStep: onStep)
            return Generation(latents: latents, images: try decode(latents), trace: trace)
        }
    }

    /// vae.decode(latents / 0.18215): latents [B, C, h, w] → images [B, 3, H, W] in about [−1, 1]; without a VAE
    /// (pixel-space experts) the latents are the images.
    public func decode(_ latents: Tensor) throws -> Tensor {
        guard let vae else { return latents }
        return try withNoGrad { try vae.decode(latents / Self.latentScale) }
    }
}
