import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisModels
import Torch

/// A released Paris folder (`ParisRelease`) behind the server: each forward batch is `ParisRelease.generate`, the
/// release's own inference (its text encoder, the initial latents from the seeds, its router with the request's
/// strategy, CFG per expert on diffusers' flow-matching grid with Euler, then the VAE decode), so a served image
/// is exactly what `paris sample --release` makes for the same prompt, seed, strategy, steps and CFG scale.
///
/// Requests start from the release's settings (50 steps, CFG 7.5). Refused with 400: `solver` other than euler
/// (the release integrates with Euler on its scheduler's grid) and `strategy: prompt` (a release has no partition).
public final class ReleaseModel: ServedModel {
    public let release: ParisRelease
    public let device: Device

    /// Wraps a loaded release whose models live on `device`.
    public init(release: ParisRelease, device: Device) {
        self.release = release
        self.device = device
    }

    /// Loads the release in `folder` onto `device` (`ParisRelease.load`); its notes go to `log`.
    public convenience init(folder: URL, device: Device, log: (String) -> Void = { _ in }) throws {
        let release = try ParisRelease.load(from: folder, device: device, log: log)
        for note in release.notes { log("note: " + note) }
        self.init(release: release, device: device)
    }

    public var numExperts: Int { release.numExperts }
    public var imageSize: Int { release.imageSize }
    public var defaults: GenerationRequest {
        var r = GenerationRequest()
        r.steps = ParisRelease.defaultSteps
        r.cfgScale = ParisRelease.defaultGuidance
        return r
    }
    public var missingExperts: [Int] { [] }
    public var source: String { "release \(release.folder.path)" }

    public func check(_ request: GenerationRequest) throws {
        guard request.solver == .euler else {
            throw APIError.badRequest("solver", "a Paris release samples with euler on its scheduler's grid, not "
                + "\(request.solver.rawValue)")
        }
        guard !request.strategy.usesGivenClusters else {
            throw APIError.badRequest("strategy", "strategy \(request.strategy) needs a run's partition; a release "
                + "routes with its router (top1, top2, topk:N, full, sample1)")
        }
    }

    public func sample(_ request: GenerationRequest, prompts: [String], seeds: [UInt64],
                       onStep: @escaping (Int, Int, [StepRouting]) throws -> Void)
        throws -> (images: Tensor, trace: RoutingTrace) {
        let noise = try MixtureSampler.noise(seeds: seeds, channels: release.latentChannels, size: release.latentSize,
                                             device: device)  // [B, C, h, w]
        let g = try release.generate(prompts: prompts, noise: noise, strategy: request.strategy, steps: request.steps,
                                     guidance: request.cfgScale, seeds: seeds, routingSeed: seeds[0], onStep: onStep)
        return (try g.images.to(device: .cpu), g.trace)  // [B, 3, H, W] in about [−1, 1]
    }

    public func notes(prompt: String) -> (notes: [String], traceWarnings: [String]) { ([], []) }

    /// Every expert of a release is local, loaded and flow matching; a release has no clusters' contact sheets.
    public func experts() -> [[String: Any]] {
        (0..<numExperts).map { k in
            ["index": k, "cluster": k, "local": true, "health": "ok", "objective": "flow_matching",
             "contact_sheet": NSNull()]
        }
    }

    public func contactSheet(expert k: Int) -> URL? { nil }
}
