import Foundation
import Torch

/// The identity of the latents an autoencoder makes: which weights (a hash of their file), how many channels, the
/// scale (and shift) applied before a diffusion model sees them, the downsampling factor, and the image resolution
/// the autoencoder was trained on (diffusers' `sample_size`). A latent shard records it in its `shard.json`, an expert
/// trained on such a shard in its `config.json`, and the mixture checks that the autoencoder it decodes with has the
/// same one, so latents are never decoded by another autoencoder than the one that made them.
///
/// Its JSON keys are snake_case (`latent_channels`, `scaling_factor`, …) in every file that holds it (`shard.json`,
/// `manifest.json`, an expert's `config.json`), whichever key strategy the file's coder uses. A value type with no
/// file access: `ParisData` computes `weights` (the first 16 hex digits of the SHA-256 of
/// `diffusion_pytorch_model.safetensors`).
public struct LatentSpace: Codable, Sendable, Equatable, Hashable {
    /// The first 16 hex digits of the SHA-256 of the autoencoder's weights file.
    public var weights: String
    /// Latent channels L (diffusers' `latent_channels`).
    public var latentChannels: Int
    /// diffusers' `scaling_factor`: the latents are (mean − shift_factor)·scaling_factor.
    public var scalingFactor: Double
    /// diffusers' `shift_factor` (nil: none).
    public var shiftFactor: Double?
    /// f: an image of S pixels has latents of S/f.
    public var downsamplingFactor: Int
    /// The image size the autoencoder was trained on (`sample_size`): the shards' images must have it.
    public var resolution: Int

    public init(weights: String, latentChannels: Int, scalingFactor: Double, shiftFactor: Double? = nil,
                downsamplingFactor: Int, resolution: Int) {
        self.weights = weights
        self.latentChannels = latentChannels
        self.scalingFactor = scalingFactor
        self.shiftFactor = shiftFactor
        self.downsamplingFactor = downsamplingFactor
        self.resolution = resolution
    }

    /// The identity of `config`'s latents for the weights file whose digest is `weights`.
    public init(config: AutoencoderKLConfig, weights: String) {
        self.init(weights: weights, latentChannels: config.latentChannels, scalingFactor: config.scalingFactor,
                  shiftFactor: config.shiftFactor, downsamplingFactor: config.downsamplingFactor,
                  resolution: config.sampleSize)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case weights, latentChannels = "latent_channels", scalingFactor = "scaling_factor"
        case shiftFactor = "shift_factor", downsamplingFactor = "downsampling_factor", resolution
    }

    /// A key as written, or as a `convertFromSnakeCase` decoder hands it over (`latentChannels`).
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        func key(_ k: CodingKeys) -> AnyKey {
            if c.contains(AnyKey(k.rawValue)) { return AnyKey(k.rawValue) }
            let parts = k.rawValue.split(separator: "_")
            return AnyKey(String(parts[0]) + parts.dropFirst().map { $0.capitalized }.joined())
        }
        weights = try c.decode(String.self, forKey: key(.weights))
        latentChannels = try c.decode(Int.self, forKey: key(.latentChannels))
        scalingFactor = try c.decode(Double.self, forKey: key(.scalingFactor))
        shiftFactor = try c.decodeIfPresent(Double.self, forKey: key(.shiftFactor))
        downsamplingFactor = try c.decode(Int.self, forKey: key(.downsamplingFactor))
        resolution = try c.decode(Int.self, forKey: key(.resolution))
    }

    /// The latent size of one image side: resolution / f.
    public var latentSize: Int { resolution / max(1, downsamplingFactor) }

    /// One line for messages: `autoencoder 3f2a… (4 channels ×0.18215, f = 4, 64 px)`.
    public var summary: String {
        "autoencoder \(weights.prefix(8))… (\(latentChannels) channels ×\(scalingFactor)"
            + (shiftFactor.map { " shift \($0)" } ?? "") + ", f = \(downsamplingFactor), \(resolution) px)"
    }

    /// Why `other` is not this latent space, naming what differs (channels, scale, shift, factor, resolution,
    /// weights); nil when they are the same.
    public func difference(from other: LatentSpace) -> String? {
        var d: [String] = []
        if latentChannels != other.latentChannels { d.append("\(latentChannels) latent channels vs \(other.latentChannels)") }
        if scalingFactor != other.scalingFactor { d.append("scaling factor \(scalingFactor) vs \(other.scalingFactor)") }
        if shiftFactor != other.shiftFactor {
            d.append("shift factor \(shiftFactor.map { "\($0)" } ?? "none") vs \(other.shiftFactor.map { "\($0)" } ?? "none")")
        }
        if downsamplingFactor != other.downsamplingFactor { d.append("f = \(downsamplingFactor) vs \(other.downsamplingFactor)") }
        if resolution != other.resolution { d.append("trained at \(resolution) px vs \(other.resolution) px") }
        if weights != other.weights { d.append("weights \(weights) vs \(other.weights)") }
        return d.isEmpty ? nil : d.joined(separator: ", ")
    }
}
