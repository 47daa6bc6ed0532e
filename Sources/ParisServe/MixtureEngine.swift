import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisModels
import ParisRun
import Torch

/// The run's mixture, loaded once, and the one way the server samples it: through `MixtureSampler`, exactly as
/// `paris sample` does (same noise per seed, same text encoding, same trace), one forward batch per `n_iter`.
///
/// Not thread-safe: only the job queue's worker thread calls `generate`.
public final class MixtureEngine: @unchecked Sendable {
    public let loaded: RunMixture
    public let run: RunLayout
    public let device: Device
    let encode: PromptEncoder

    /// Loads the run's mixture (`RunMixture.load`, router optional: without one only the oracle would route, and
    /// the server refuses requests then). `encode` is the prompt encoder (`PromptEncoding.miniLM`; a stub in tests).
    public init(run: RunLayout, device: Device, encode: @escaping PromptEncoder, log: (String) -> Void = { _ in })
        throws {
        self.run = run
        self.device = device
        self.encode = encode
        self.loaded = try RunMixture.load(run: run, device: device, strict: false, requireRouter: true, log: log)
    }

    public var numExperts: Int { loaded.mixture.numExperts }
    public var imageSize: Int { loaded.imageSize }

    /// What one request made: the PNGs (in seed order), the seeds, the routing trace and the notes for `info`.
    public struct Output: Sendable {
        public let png: [[UInt8]]
        public let seeds: [UInt64]
        public let trace: RoutingTrace
        public let notes: [String]
    }

    /// Thrown by `generate` when `onStep` asked it to stop.
    public struct Cancelled: Error {}

    /// Samples `request` (seed resolved): iteration j draws the images j·batch_size ..< (j+1)·batch_size with
    /// seeds seed + i, in one batch. `onStep(iteration, step, steps, routing)` runs after every step; returning
    /// false cancels (`Cancelled` is thrown).
    public func generate(_ request: GenerationRequest,
                         onStep: @escaping (_ iteration: Int, _ step: Int, _ steps: Int, _ routing: [StepRouting]) -> Bool)
        throws -> Output {
        let config = try SamplerConfig(solver: request.solver, steps: request.steps, guidanceScale: request.cfgScale)
        let sampler = try MixtureSampler(config: config, strategy: request.strategy)
        let seeds = request.seeds
        var png: [[UInt8]] = []
        var trace: RoutingTrace? = nil
        for iteration in 0..<request.nIter {
            let batchSeeds = Array(seeds[(iteration * request.batchSize)..<((iteration + 1) * request.batchSize)])
            let prompts = Array(repeating: request.prompt, count: batchSeeds.count)
            let text = try encode(prompts, loaded.textLength)
            let cond = try TextCondition(tokens: text.tokens.to(device: device),
                                         mask: text.mask.map { try $0.to(device: device) })
            let noise = try MixtureSampler.noise(seeds: batchSeeds, channels: loaded.channels, size: loaded.imageSize,
                                                 device: device)
            let (x, t) = try sampler.sample(loaded.mixture, noise: noise, text: cond, prompts: prompts,
                                            seeds: batchSeeds, routingSeed: batchSeeds[0],
                                            onStep: { step, steps, routing in
                guard onStep(iteration, step, steps, routing) else { throw Cancelled() }
            })
            let images = try x.to(device: .cpu)  // [B, C, H, W] in about [-1, 1]
            for i in 0..<images.size(0) {
                png.append(try Image(tensor: images.select(0, i), range: .minusOneToOne).pngData())
            }
            if trace == nil { trace = t } else { try trace!.append(t) }
        }
        var notes = request.notes
        if !loaded.warnings.isEmpty || !loaded.stale.isEmpty { notes += loaded.warnings + loaded.stale }
        if !loaded.stale.isEmpty { trace!.warnings = loaded.stale }
        return Output(png: png, seeds: seeds, trace: trace!, notes: notes)
    }

    /// Per expert, the mean mixture weight over every step and image of `trace`: which cluster drew the pictures.
    public static func meanWeights(_ trace: RoutingTrace) -> [Double] {
        var sums = [Double](repeating: 0, count: trace.numExperts)
        var rows = 0
        for step in trace.steps {
            for row in step.weights {
                for k in row.indices where k < sums.count { sums[k] += row[k] }
                rows += 1
            }
        }
        return sums.map { rows == 0 ? 0 : $0 / Double(rows) }
    }

    /// One entry per expert for `GET /v1/experts`: index, cluster, local, health (`ok`, `missing` with the reason)
    /// and the URL of its cluster's contact sheet (null when the run's partition has none).
    public func experts() -> [[String: Any]] {
        (0..<numExperts).map { k in
            var e: [String: Any] = ["index": k, "local": true]
            e["contact_sheet"] = contactSheet(expert: k) == nil ? NSNull() : "/v1/experts/\(k)/contact.png"
            if let info = loaded.experts[k] {
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

    /// The contact sheet of expert k's cluster, `<partition>/grid_<cluster>.png`, written by `paris partition`;
    /// nil when the run has no partition folder (or no such file).
    public func contactSheet(expert k: Int) -> URL? {
        guard k >= 0, k < numExperts, let config = try? run.config() else { return nil }
        let cluster = loaded.experts[k]?.cluster ?? k
        let url = run.partition(config).appendingPathComponent("grid_\(cluster).png")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}
