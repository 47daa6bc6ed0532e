import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisModels
import ParisRun
import Torch

/// The mixture the server samples, loaded once (`ServedModel`: a run's, `RunModel`, or a released Paris folder's,
/// `ReleaseModel`), and the one way the server samples it: one forward batch per `n_iter` through the model, exactly
/// as `paris sample` (`--run` or `--release`) does: same noise per seed, same text encoding, same trace.
///
/// Not thread-safe: only the job queue's worker thread calls `generate`.
public final class MixtureEngine: @unchecked Sendable {
    public let model: any ServedModel

    /// Serves `model`.
    public init(model: any ServedModel) {
        self.model = model
    }

    /// A run's mixture (`RunModel`: `RunMixture.load`, router required, else the server could not route). `encode`
    /// is the prompt encoder (`PromptEncoding.miniLM`; a stub in tests); `countTokens`, when given, lets `info` say
    /// that a prompt longer than the experts' token length was truncated.
    public convenience init(run: RunLayout, device: Device, encode: @escaping PromptEncoder,
                            countTokens: PromptTokenCounter? = nil, remotes: [RemoteExpertConfig] = [],
                            log: (String) -> Void = { _ in }) throws {
        self.init(model: try RunModel(run: run, device: device, encode: encode, countTokens: countTokens,
                                      remotes: remotes, log: log))
    }

    /// A released Paris folder (`ReleaseModel`: `ParisRelease.load`).
    public convenience init(release folder: URL, device: Device, log: (String) -> Void = { _ in }) throws {
        self.init(model: try ReleaseModel(folder: folder, device: device, log: log))
    }

    /// The run's mixture when the engine serves a run, nil for a release.
    public var loaded: RunMixture? { (model as? RunModel)?.loaded }

    public var numExperts: Int { model.numExperts }
    public var imageSize: Int { model.imageSize }

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
        let seeds = request.seeds
        var png: [[UInt8]] = []
        var trace: RoutingTrace? = nil
        for iteration in 0..<request.nIter {
            let batchSeeds = Array(seeds[(iteration * request.batchSize)..<((iteration + 1) * request.batchSize)])
            let (images, t) = try sample(request, prompts: Array(repeating: request.prompt, count: batchSeeds.count),
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
        let (png, trace) = try sample(first, prompts: prompts, seeds: seeds) { step, steps, routing in
            onStep(step, steps, routing, offsets.map { rows in routing.map { $0.rows(rows) } })
        }
        return try zip(requests, offsets).map { r, rows in
            output(r, png: Array(png[rows]), trace: try trace.rows(rows))
        }
    }

    /// One forward batch: prompts[i] with seeds[i] → PNGs in row order and the batch's trace.
    func sample(_ request: GenerationRequest, prompts: [String], seeds: [UInt64],
                onStep: @escaping (_ step: Int, _ steps: Int, _ routing: [StepRouting]) -> Bool)
        throws -> (png: [[UInt8]], trace: RoutingTrace) {
        let (images, trace) = try model.sample(request, prompts: prompts, seeds: seeds) { step, steps, routing in
            guard onStep(step, steps, routing) else { throw Cancelled() }
        }
        let png = try (0..<images.size(0)).map { try Image(tensor: images.select(0, $0), range: .minusOneToOne).pngData() }
        return (png, trace)
    }

    func output(_ request: GenerationRequest, png: [[UInt8]], trace: RoutingTrace) -> Output {
        var notes = request.notes, trace = trace
        let (more, warnings) = model.notes(prompt: request.prompt)
        notes += more
        if !warnings.isEmpty { trace.warnings = warnings }
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

    /// One entry per expert for `GET /v1/experts` (`ServedModel.experts`).
    public func experts() -> [[String: Any]] { model.experts() }

    /// The contact sheet of expert k's cluster, nil when there is none.
    public func contactSheet(expert k: Int) -> URL? { model.contactSheet(expert: k) }
}
