import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisModels
import ParisRun
import Torch

/// What `MixtureEngine` samples from: a run's mixture (`RunModel`, `paris serve --run R`) or a released Paris folder
/// (`ReleaseModel`, `paris serve --release DIR`). The engine owns everything a request means to the server (the
/// iterations, batching compatible requests, cancelling, notes); a model only turns one forward batch of prompts and
/// seeds into images, and describes its experts. Both are driven from the job queue's one worker thread.
public protocol ServedModel: AnyObject {
    /// K, the experts the router scores.
    var numExperts: Int { get }
    /// Height = width of the images served (what a request's `width` and `height` must say): decoded pixels, not
    /// the latents the experts denoise.
    var imageSize: Int { get }
    /// The settings a request starts from before its own fields apply (`steps`, `cfg_scale`).
    var defaults: GenerationRequest { get }
    /// The slots with no expert (for `/healthz`).
    var missingExperts: [Int] { get }
    /// A short description for the start-up line and `/healthz` (`run <path>` or `release <path>`).
    var source: String { get }

    /// Refuses, as `APIError` 400 naming the field, what this model cannot do with a request that parsed.
    func check(_ request: GenerationRequest) throws

    /// One forward batch: prompts[i] with seeds[i], the request's sampler settings → images [B, 3, H, W] in about
    /// [−1, 1] on the CPU, and the batch's routing trace. `onStep(step, steps, routing)` runs after every step and
    /// may throw to stop.
    func sample(_ request: GenerationRequest, prompts: [String], seeds: [UInt64],
                onStep: @escaping (_ step: Int, _ steps: Int, _ routing: [StepRouting]) throws -> Void)
        throws -> (images: Tensor, trace: RoutingTrace)

    /// What `info` says about a finished request beyond its own notes (a truncated prompt, load warnings), and
    /// warnings to put in its trace.
    func notes(prompt: String) -> (notes: [String], traceWarnings: [String])

    /// One entry per expert for `GET /v1/experts` (index, cluster, local, health, …).
    func experts() -> [[String: Any]]

    /// Expert k's cluster contact sheet, nil when there is none.
    func contactSheet(expert k: Int) -> URL?
}

/// A run's mixture (`RunMixture`), sampled exactly as `paris sample --run` does: MiniLM (or an injected encoder)
/// prompt tokens at the experts' token length, `MixtureSampler` with the request's solver, steps and CFG scale, and
/// for latent experts the partition's autoencoder decoding the final latents (`RunMixture.images`), so the images
/// and `imageSize` are pixels (`decodedSize`: 8 px for 4×4×4 vae-tiny latents).
public final class RunModel: ServedModel {
    public let loaded: RunMixture
    public let run: RunLayout
    public let device: Device
    let encode: PromptEncoder
    let countTokens: PromptTokenCounter?

    /// Loads the run's mixture (`RunMixture.load`, router required). `encode` is the prompt encoder
    /// (`PromptEncoding.miniLM`; a stub in tests); `countTokens`, when given, lets `info` say that a prompt longer
    /// than the experts' token length was truncated.
    public init(run: RunLayout, device: Device, encode: @escaping PromptEncoder, countTokens: PromptTokenCounter? = nil,
                remotes: [RemoteExpertConfig] = [], log: (String) -> Void = { _ in }) throws {
        self.run = run
        self.device = device
        self.encode = encode
        self.countTokens = countTokens
        self.loaded = try RunMixture.load(run: run, device: device, strict: false, requireRouter: true,
                                          remotes: remotes, log: log)
    }

    public var numExperts: Int { loaded.mixture.numExperts }
    public var imageSize: Int { loaded.decodedSize }
    public var defaults: GenerationRequest { GenerationRequest() }
    public var missingExperts: [Int] { loaded.mixture.missing }
    public var source: String { "run \(run.root.path)" }

    public func check(_ request: GenerationRequest) throws {}

    public func sample(_ request: GenerationRequest, prompts: [String], seeds: [UInt64],
                       onStep: @escaping (Int, Int, [StepRouting]) throws -> Void)
        throws -> (images: Tensor, trace: RoutingTrace) {
        let sampler = try MixtureSampler(config: SamplerConfig(solver: request.solver, steps: request.steps,
                                                               guidanceScale: request.cfgScale),
                                         strategy: request.strategy)
        let cond = try encode(prompts, loaded.textLength).to(device: device)
        let noise = try MixtureSampler.noise(seeds: seeds, channels: loaded.channels, size: loaded.imageSize,
                                             device: device)
        let (x, trace) = try sampler.sample(loaded.mixture, noise: noise, text: cond, prompts: prompts, seeds: seeds,
                                            routingSeed: seeds[0], onStep: onStep)
        return (try loaded.images(x).to(device: .cpu), trace)  // [B, C, H, W] in about [-1, 1]; latents decoded
    }

    public func notes(prompt: String) -> (notes: [String], traceWarnings: [String]) {
        var notes: [String] = []
        if let count = countTokens?(prompt),
           let note = PromptEncoding.truncationNote(tokens: count, length: loaded.textLength) { notes.append(note) }
        if !loaded.warnings.isEmpty || !loaded.stale.isEmpty { notes += loaded.warnings + loaded.stale }
        return (notes, loaded.stale)
    }

    /// Index, cluster, local (and a remote one's url), health (`ok`, `missing` with the reason, a remote one
    /// `unreachable` when it did not answer at load) and the URL of its cluster's contact sheet (null when the
    /// run's partition has none).
    public func experts() -> [[String: Any]] {
        (0..<numExperts).map { k in
            var e: [String: Any] = ["index": k, "local": loaded.remote[k] == nil]
            e["contact_sheet"] = contactSheet(expert: k) == nil ? NSNull() : "/v1/experts/\(k)/contact.png"
            if let remote = loaded.remote[k] {
                e["cluster"] = k
                e["url"] = remote.url
                let unreachable = loaded.warnings.first { $0.contains("remote expert \(remote.url)") }
                e["health"] = unreachable == nil ? "ok" : "unreachable"
                if let unreachable { e["reason"] = unreachable }
            } else if let info = loaded.experts[k] {
                e["cluster"] = info.cluster ?? k
                e["health"] = "ok"
                e["objective"] = "\(info.objective)"
            } else {
                e["cluster"] = k
                e["health"] = "missing"
                e["reason"] = loaded.warnings.first { $0.contains("expert \(k) ") } ?? "not loaded"
            }
            return e
        }
    }

    /// `<partition>/grid_<cluster>.png`, written by `paris partition`; nil when the run has no partition folder (or
    /// no such file).
    public func contactSheet(expert k: Int) -> URL? {
        guard k >= 0, k < numExperts, let config = try? run.config() else { return nil }
        let cluster = loaded.experts[k]?.cluster ?? k
        let url = run.partition(config).appendingPathComponent("grid_\(cluster).png")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}
