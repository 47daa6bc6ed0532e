import Foundation
import ParisDiffusion
import ParisModels
import ParisRun
import Torch

/// A run's mixture as loaded from its folder: the experts that loaded, the router, and what their configs say
/// about the inputs (image size, channels, text tokens).
public struct RunMixture {
    public let mixture: MixtureOfExperts
    /// K entries: each loaded expert's checkpoint info, nil where it is missing or failed to load.
    public let experts: [ExpertCheckpoint?]
    /// The loaded router, nil when there is none (only the oracle strategy works then).
    public let router: Router?
    /// One line per expert that could not be used, with the reason.
    public let warnings: [String]
    /// One line per expert or router trained on other shards than the partition holds now
    /// (`ShardIdentity.staleness`): it is still used, but the partition was rebuilt since it was trained.
    public var stale: [String] = []

    /// Input height = width, channels, and the text tokens [textLength, textDim] the experts take.
    public let imageSize: Int, channels: Int, textLength: Int, textDim: Int

    /// Loads `run/expert_<k>/` for k < K and `run/router/`. K comes from run.json, else from the router's config.
    ///
    /// An expert that is missing or fails to load is skipped with a warning (its routing weight becomes 0 and the
    /// rest are renormalised, DDM's resilience claim), unless `strict`, which throws instead. The router is
    /// required when `requireRouter`; experts must agree on image size, channels and text width. A router of another
    /// kind than run.json's router preset names (text-free or text-conditioned) is refused. An expert or router
    /// trained on other shards than the partition holds now is used, with a warning in `stale` (also logged).
    public static func load(run: RunLayout, device: Device = .cpu, strict: Bool = false, requireRouter: Bool = true,
                            log: (String) -> Void = { _ in }) throws -> RunMixture {
        let fm = FileManager.default
        guard fm.fileExists(atPath: run.root.path) else { throw EnsembleError("\(run.root.path): no such run folder") }
        var router: Router? = nil
        if RouterCheckpoint.exists(in: run.router) {
            let preset = fm.fileExists(atPath: run.runJSON.path)
                ? try? RouterConfig.preset(named: run.config().router.model) : nil  // run.json's router, if a preset
            router = try RouterCheckpoint.load(from: run.router, device: device, kind: preset?.kind)
            log("router: \(router!.config.kind) (p(k | \(router!.config.kind.inputs)))")
        } else if requireRouter {
            throw EnsembleError("\(run.router.path): no router checkpoint (config.json + model.safetensors); "
                + "train it with `paris train router`, or sample with --strategy oracle")
        }
        let k: Int
        if fm.fileExists(atPath: run.runJSON.path) {
            k = try run.config().numExperts
            if let router, router.config.numExperts != k {
                throw EnsembleError("\(run.router.path): the router scores \(router.config.numExperts) experts, "
                    + "but run.json has \(k)")
            }
        } else if let router {
            k = router.config.numExperts
        } else {
            throw EnsembleError("\(run.root.path): neither run.json nor a router says how many experts there are")
        }
        var warnings: [String] = []
        var loaded: [(model: ParisExpert, objective: Objective)?] = []
        var infos: [ExpertCheckpoint?] = []
        for i in 0..<k {
            let folder = run.expert(i)
            do {
                guard ExpertCheckpoint.exists(in: folder) else {
                    throw EnsembleError("\(folder.path): no checkpoint (config.json + \(ExpertCheckpoint.weightsName))")
                }
                let (model, info) = try ExpertCheckpoint.load(from: folder, device: device)
                loaded.append((model: model, objective: info.objective))
                infos.append(info)
            } catch {
                if strict { throw EnsembleError("expert \(i) cannot be used (strict): \(error)") }
                let line = "warning: expert \(i) is skipped: \(error)"
                warnings.append(line)
                log(line)
                loaded.append(nil)
                infos.append(nil)
            }
        }
        let present = infos.compactMap { $0 }
        guard let first = present.first else {
            throw EnsembleError("\(run.root.path): none of the \(k) experts could be loaded:\n"
                + warnings.joined(separator: "\n"))
        }
        for (i, info) in infos.enumerated() {
            guard let m = info?.model else { continue }
            guard m.inputSize == first.model.inputSize, m.inChannels == first.model.inChannels,
                  m.textDim == first.model.textDim else {
                throw EnsembleError("expert \(i) takes \(m.inChannels)×\(m.inputSize)² inputs with text width "
                    + "\(m.textDim), but the first expert takes \(first.model.inChannels)×\(first.model.inputSize)² "
                    + "with \(first.model.textDim); the mixture needs experts on the same inputs")
            }
        }
        if let r = router?.config, r.inputSize != first.model.inputSize || r.inChannels != first.model.inChannels {
            throw EnsembleError("the router takes \(r.inChannels)×\(r.inputSize)² inputs, the experts "
                + "\(first.model.inChannels)×\(first.model.inputSize)²")
        }
        if let e = router?.config.textDim, e != first.model.textDim {
            throw EnsembleError("the text-conditioned router reads \(e)-wide caption embeddings, but the experts' text "
                + "tokens are \(first.model.textDim) wide; the router pools the prompts' tokens, so both must agree")
        }
        if !warnings.isEmpty {
            let missing = infos.indices.filter { infos[$0] == nil }.map(String.init).joined(separator: ", ")
            log("warning: sampling without expert(s) \(missing); their routing weight is renormalised over the rest")
        }
        let mixture = try MixtureOfExperts(experts: loaded, router: router)
        var result = RunMixture(mixture: mixture, experts: infos, router: router, warnings: warnings,
                                imageSize: first.model.inputSize, channels: first.model.inChannels,
                                textLength: first.model.textLength, textDim: first.model.textDim)
        result.stale = try staleness(run: run, k: k, router: router != nil)
        for line in result.stale { log("warning: " + line) }
        return result
    }

    /// The warnings for the experts and the router whose recorded shards differ from the run's partition now
    /// (`RunLayout.staleJobs`), experts first.
    static func staleness(run: RunLayout, k: Int, router: Bool) throws -> [String] {
        guard FileManager.default.fileExists(atPath: run.runJSON.path) else { return [] }
        let stale = run.staleJobs(try run.config())
        return (0..<k).compactMap { stale["expert_\($0)"] } + (router ? stale["router"].map { [$0] } ?? [] : [])
    }
}

/// The oracle: which cluster each training caption belongs to, read from the shards' `items.jsonl`.
public struct CaptionClusters: Sendable {
    /// caption → the clusters whose shard holds it (a caption may occur in several shards).
    public let clusters: [String: [Int]]

    public init(clusters: [String: [Int]]) { self.clusters = clusters }

    /// Reads `shard_<k>/items.jsonl` for k < K in `partition`.
    public static func read(partition: URL, numClusters k: Int) throws -> CaptionClusters {
        var map: [String: [Int]] = [:]
        for c in 0..<k {
            let url = partition.appendingPathComponent("shard_\(c)/items.jsonl")
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw EnsembleError("\(url.path): not found; the oracle strategy needs the run's shards")
            }
            for line in data.split(separator: 10) where !line.isEmpty {
                guard let obj = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any],
                      let text = obj["text"] as? String else {
                    throw EnsembleError("\(url.path): a line is not an item with a \"text\" field")
                }
                if map[text]?.last != c { map[text, default: []].append(c) }
            }
        }
        return CaptionClusters(clusters: map)
    }

    /// The cluster of each prompt (the most common one when a caption is in several shards: the first listed).
    public func oracle(for prompts: [String]) throws -> [Int] {
        try prompts.map { p in
            guard let c = clusters[p]?.first else {
                throw EnsembleError("the oracle strategy needs dataset captions; '\(p)' is in none of the shards")
            }
            return c
        }
    }
}
