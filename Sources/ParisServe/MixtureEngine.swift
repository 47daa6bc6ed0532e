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
    let countTokens: PromptTokenCounter?

    /// Loads the run's mixture (`RunMixture.load`, router optional: without one only the oracle would route, and
    /// the server refuses requests then). `encode` is the prompt encoder (`PromptEncoding.miniLM`; a stub in tests);
    /// `countTokens`, when given, lets `info` say that a prompt longer than the experts' token length was truncated.
    public init(run: RunLayout, device: Device, encode: @escaping PromptEncoder,
                countTokens: PromptTokenCounter? = nil, remotes: [RemoteExpertConfig] = [],
                log: (String) -> Void = { _ in }) throws {
        self.run = run
        self.device = device
        self.encode = encode
        self.countTokens = countTokens
        self.loaded = try RunMixture.load(run: run, device: device, strict: false, requireRouter: true,
                                          remotes: remotes, log: log)
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
        let sampler = try Self.sampler(request)
        let seeds = request.seeds
        var png: [[UInt8]] = []
        var trace: RoutingTrace? = nil
        for iteration in 0..<request.nIter {
            let batchSeeds = Array(seeds[(iteration * request.batchSize)..<((iteration + 1) * request.batchSize)])
            let (images, t) = try sample(sampler, prompts: Array(repeating: request.prompt, count: batchSeeds.count),
                                         seeds: batchSeeds) { step, steps, routing in
                onStep(iteration, step, steps, routing)
            }
            png += images
            if trace == nil { trace = t } else { try trace!.append(t) }
        }
        return output(request, png: png, trace: trace!)
    }

    /// Whether two requests may share one forward batch (`generate(batch:)`): the same sampler settings, one
    /// iteration each, and not `sample1`, whose draws come from one generator per batch (its images would depend
    /// on the batch they were drawn in).
    public static func batchable(_ a: GenerationRequest, with b: GenerationRequest) -> Bool {
        a.nIter == 1 && b.nIter == 1 && a.strategy != .sample1 && a.strategy == b.strategy && a.steps == b.steps
            && a.cfgScale == b.cfgScale && a.solver == b.solver
    }

    /// Samples several requests (seeds resolved, pairwise `batchable`) in one forward batch: request r's images are
    /// the rows offset_r ..< offset_r + batch_size, each with its own prompt and seed. The noise of an image depends
    /// on its seed only, and the router and the experts act on each row alone, so every image is the one the request
    /// would get alone (`ServeBatchingTests.testBatchedRequestsGetTheImagesTheyWouldGetAlone`). `onStep(step, steps,
    /// routing, perRequest)` gets the step's routing and each request's rows of it; returning false cancels the
    /// whole batch.
    public func generate(batch requests: [GenerationRequest],
                         onStep: @escaping (_ step: Int, _ steps: Int, _ routing: [StepRouting],
                                            _ perRequest: [[StepRouting]]) -> Bool)
        throws -> [Output] {
        guard let first = requests.first else { return [] }
        for r in requests.dropFirst() where !Self.batchable(first, with: r) {
            throw APIError(500, "internal: requests with different settings were batched")
        }
        var offsets: [Range<Int>] = [], prompts: [String] = [], seeds: [UInt64] = []
        for r in requests {
            offsets.append(seeds.count..<(seeds.count + r.batchSize))
            prompts += Array(repeating: r.prompt, count: r.batchSize)
            seeds += r.seeds
        }
        let (png, trace) = try sample(try Self.sampler(first), prompts: prompts, seeds: seeds) { step, steps, routing in
            onStep(step, steps, routing, offsets.map { rows in routing.map { $0.rows(rows) } })
        }
        return try zip(requests, offsets).map { r, rows in
            output(r, png: Array(png[rows]), trace: try trace.rows(rows))
        }
    }

    static func sampler(_ request: GenerationRequest) throws -> MixtureSampler {
        try MixtureSampler(config: SamplerConfig(solver: request.solver, steps: request.steps,
                                                 guidanceScale: request.cfgScale), strategy: request.strategy)
    }

    /// One forward batch: prompts[i] with seeds[i] → PNGs in row order and the batch's trace.
    func sample(_ sampler: MixtureSampler, prompts: [String], seeds: [UInt64],
                onStep: @escaping (_ step: Int, _ steps: Int, _ routing: [StepRouting]) -> Bool)
        throws -> (png: [[UInt8]], trace: RoutingTrace) {
        let cond = try encode(prompts, loaded.textLength).to(device: device)
        let noise = try MixtureSampler.noise(seeds: seeds, channels: loaded.channels, size: loaded.imageSize,
                                             device: device)
        let (x, trace) = try sampler.sample(loaded.mixture, noise: noise, text: cond, prompts: prompts, seeds: seeds,
                                            routingSeed: seeds[0], onStep: { step, steps, routing in
            guard onStep(step, steps, routing) else { throw Cancelled() }
        })
        let images = try x.to(device: .cpu)  // [B, C, H, W] in about [-1, 1]
        let png = try (0..<images.size(0)).map { try Image(tensor: images.select(0, $0), range: .minusOneToOne).pngData() }
        return (png, trace)
    }

    func output(_ request: GenerationRequest, png: [[UInt8]], trace: RoutingTrace) -> Output {
        var notes = request.notes, trace = trace
        if let count = countTokens?(request.prompt),
           let note = PromptEncoding.truncationNote(tokens: count, length: loaded.textLength) { notes.append(note) }
        if !loaded.warnings.isEmpty || !loaded.stale.isEmpty { notes += loaded.warnings + loaded.stale }
        if !loaded.stale.isEmpty { trace.warnings = loaded.stale }
        notes += Self.dropNotes(trace)
        return Output(png: png, seeds: request.seeds, trace: trace, notes: notes)
    }

    /// One note per remote expert that was dropped from some steps: how many, and the first reason.
    static func dropNotes(_ trace: RoutingTrace) -> [String] {
        trace.droppedExperts.map { d in
            "remote expert \(d.expert) was dropped at \(d.steps) of \(trace.steps.count) model evaluations (its weight "
                + "went to the other experts): \(d.reason)"
        }
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

    /// One entry per expert for `GET /v1/experts`: index, cluster, local (and a remote one's url), health (`ok`,
    /// `missing` with the reason, a remote one `unreachable` when it did not answer at load)
    /// and the URL of its cluster's contact sheet (null when the run's partition has none).
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

    /// The contact sheet of expert k's cluster, `<partition>/grid_<cluster>.png`, written by `paris partition`;
    /// nil when the run has no partition folder (or no such file).
    public func contactSheet(expert k: Int) -> URL? {
        guard k >= 0, k < numExperts, let config = try? run.config() else { return nil }
        let cluster = loaded.experts[k]?.cluster ?? k
        let url = run.partition(config).appendingPathComponent("grid_\(cluster).png")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}
