import Foundation
import ParisModels
import ParisRun

/// The settings of `paris train autoencoder` (snake_case JSON, written to `<out>/training.json`): a diffusers
/// `AutoencoderKL` preset trained with the KL-regularised reconstruction loss of LDM (Rombach et al. 2022,
/// `LPIPSWithDiscriminator` without its perceptual and adversarial terms):
///
///     loss = Σ_{c,h,w} rec(x, x̂) / B + kl_weight · Σ_{c,h,w} KL(q(z | x) ‖ N(0, I)) / B
///
/// with x̂ decoded from a posterior sample z, rec = |x − x̂| (`l1`, LDM's) or (x − x̂)² (`mse`), sums per image and
/// the mean over the batch B, as LDM's `nll_loss` and `kl_loss`. β = `kl_weight` is small (LDM: 1e-6) so the latents
/// stay informative while their scale stays bounded.
public struct AutoencoderTrainConfig: Codable, Sendable, Equatable {
    public enum Reconstruction: String, Codable, Sendable, CaseIterable { case l1, mse }

    /// An `AutoencoderKLConfig` preset (`vae-f4`, `vae-tiny`, `sd-vae-ft-mse`); `in_channels`, `out_channels` and
    /// `sample_size` come from the shards.
    public var model: String
    public var reconstruction: Reconstruction
    public var klWeight: Double
    public var batchSize: Int
    public var steps: Int
    public var learningRate: Double
    public var warmupSteps: Int
    public var gradClip: Double
    public var checkpointEvery: Int
    public var logEvery: Int
    public var seed: UInt64
    public var device: String
    /// Images whose latents set `scaling_factor` = 1 / std (LDM's rescaling), the first ones of the data.
    public var scaleImages: Int

    public init(model: String = "vae-f4", reconstruction: Reconstruction = .l1, klWeight: Double = 1e-6,
                batchSize: Int = 16, steps: Int = 2000, learningRate: Double = 1e-3, warmupSteps: Int = 100,
                gradClip: Double = 1, checkpointEvery: Int = 200, logEvery: Int = 10, seed: UInt64 = 0,
                device: String = "auto", scaleImages: Int = 256) {
        self.model = model
        self.reconstruction = reconstruction
        self.klWeight = klWeight
        self.batchSize = batchSize
        self.steps = steps
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.gradClip = gradClip
        self.checkpointEvery = checkpointEvery
        self.logEvery = logEvery
        self.seed = seed
        self.device = device
        self.scaleImages = scaleImages
    }

    enum CodingKeys: String, CodingKey {
        case model, reconstruction, klWeight = "kl_weight", batchSize = "batch_size", steps
        case learningRate = "learning_rate", warmupSteps = "warmup_steps", gradClip = "grad_clip"
        case checkpointEvery = "checkpoint_every", logEvery = "log_every", seed, device, scaleImages = "scale_images"
    }

    /// Named presets: `cpu-small` (the defaults: vae-f4, 2,000 steps of 16) and `tiny` (vae-tiny, tests).
    public static func preset(named name: String) throws -> AutoencoderTrainConfig {
        switch name {
        case "cpu-small": return AutoencoderTrainConfig()
        case "tiny": return AutoencoderTrainConfig(model: "vae-tiny", batchSize: 4, steps: 20, learningRate: 1e-3,
                                                   warmupSteps: 0, checkpointEvery: 10, logEvery: 5, scaleImages: 16)
        default: throw RunError("unknown autoencoder training preset '\(name)'; known: cpu-small, tiny")
        }
    }

    /// Refuses settings that cannot train, naming the key.
    public func validate() throws {
        func check(_ ok: Bool, _ why: String) throws { if !ok { throw RunError("autoencoder training: \(why)") } }
        do { _ = try AutoencoderKLConfig.preset(named: model) } catch { throw RunError("\(error)") }
        try check(klWeight >= 0 && klWeight.isFinite, "kl_weight must be ≥ 0, not \(klWeight)")
        try check(scaleImages > 0, "scale_images must be positive, not \(scaleImages)")
        try jobSettings.validate("autoencoder training")
    }

    /// The settings the training session reads (steps, seed, learning rate and warmup, intervals); no EMA, no
    /// caption dropout.
    public var jobSettings: TrainJobConfig {
        TrainJobConfig(model: model, batchSize: batchSize, steps: steps, learningRate: learningRate,
                       warmupSteps: warmupSteps, weightDecay: 0, emaDecay: 0, gradClip: gradClip, device: device,
                       captionDropout: 0, checkpointEvery: checkpointEvery, logEvery: logEvery, seed: seed)
    }
}
