import Foundation
import ParisData
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
    /// The slots served by remote experts (`paris serve expert`), by index.
    public var remote: [Int: RemoteExpertConfig] = [:]

    /// Input height = width, channels, and the text tokens [textLength, textDim] the experts take.
    public let imageSize: Int, channels: Int, textLength: Int, textDim: Int
    /// Latent experts: the autoencoder their latents came from (`<partition>/autoencoder/`, checked against the
    /// experts' and the shards' `LatentSpace`), which turns samples into images; nil for pixel experts.
    public var decoder: AutoencoderKL? = nil
    /// The latent space the experts were trained in (nil: pixels).
    public var latents: LatentSpace? = nil

    /// Height = width of the images `images(_:)` returns: the experts' input size, times the autoencoder's
    /// downsampling factor for latent experts (4×4×4 latents of vae-tiny, f = 2: 8-px images).
    public var decodedSize: Int { imageSize * (decoder?.config.downsamplingFactor ?? 1) }
    /// Channels of the images `images(_:)` returns: the autoencoder's `out_channels` for latent experts.
    public var decodedChannels: Int { decoder?.config.outChannels ?? channels }

    /// Samples [N, C, h, w] → images [N, 3, H, W] in about [−1, 1]: latents / scaling factor (+ shift), decoded;
    /// pixel samples unchanged.
    public func images(_ samples: Tensor) throws -> Tensor {
        guard let decoder else { return samples }
        return try withNoGrad { try decoder.decode(try decoder.unscaledLatents(samples.to(dtype: .float32))) }
    }

    /// Loads `run/expert_<k>/` for k < K and `run/router/`. K comes from run.json, else from the router's config.
    ///
    /// An expert that is missing or fails to load is skipped with a warning (its routing weight becomes 0 and the
    /// rest are renormalised, DDM's resilience claim), unless `strict`, which throws instead. The router is
    /// required when `requireRouter`; experts must agree on image size, channels and text width. A router of another
    /// kind than run.json's router preset names (text-free or text-conditioned) is refused. An expert or router
    /// trained on other shards than the partition holds now is used, with a warning in `stale` (also logged).
    ///
    /// A LoRA entry of `<run>/mixture.json` (`MixtureFile`) loads slot k as `expert_<k>/` plus those adapters, after
    /// checking they were trained on exactly its weights.
    ///
    /// Remote experts fill their slots instead of `expert_<k>/`: those `<run>/mixture.json` lists, and `remotes`
    /// (`--remote K=URL`), which replace the file's entry for the same slot. Each is asked for its input shape
    /// (`GET /v1/info`), which must match the local experts'; one that does not answer stays in the mixture with a
    /// warning (unless `strict`), and is dropped at every step it fails.
    public static func load(run: RunLayout, device: Device = .cpu, strict: Bool = false, requireRouter: Bool = true,
                            remotes extra: [RemoteExpertConfig] = [], log: (String) -> Void = { _ in }) throws -> RunMixture {
        let file = try MixtureFile.read(run.mixtureJSON)
        var remotes = file.remote
        let loras = try file.loraFolders(run: run)
        for r in extra { remotes.removeAll { $0.expert == r.expert }; remotes.append(r) }
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
        var remote: [Int: (config: RemoteExpertConfig, client: RemoteExpert, info: RemoteExpertInfo?)] = [:]
        for r in remotes {
            guard (0..<k).contains(r.expert) else {
                throw EnsembleError("remote expert \(r.expert): the run has \(k) experts (0…\(k - 1))")
            }
            guard remote[r.expert] == nil else { throw EnsembleError("remote expert \(r.expert) is given twice") }
            let client = try RemoteExpert(r)
            var info: RemoteExpertInfo? = nil
            do { info = try client.info() } catch {
                if strict { throw EnsembleError("expert \(r.expert) cannot be used (strict): \(error)") }
                let line = "warning: \(error); it stays in the mixture and is dropped at every step it fails"
                warnings.append(line)
                log(line)
            }
            remote[r.expert] = (r, client, info)
            log("expert \(r.expert): remote, \(r.url)")
        }
        for slot in loras.keys.sorted() {
            guard (0..<k).contains(slot) else { throw EnsembleError("mixture.json: LoRA for expert \(slot), but the run has \(k)") }
            guard remote[slot] == nil else {
                throw EnsembleError("expert \(slot) is given both a remote and a LoRA in mixture.json; choose one")
            }
        }
        for i in 0..<k {
            let folder = run.expert(i)
            if remote[i] != nil {
                loaded.append(nil)
                infos.append(nil)
                continue
            }
            do {
                guard ExpertCheckpoint.exists(in: folder) else {
                    throw EnsembleError("\(folder.path): no checkpoint (config.json + \(ExpertCheckpoint.weightsName))")
                }
                let (model, info): (ParisExpert, ExpertCheckpoint)
                if let lora = loras[i] {
                    (model, info, _) = try LoRAMerge.adapted(base: folder, lora: lora, device: device)
                    log("expert \(i): \(folder.lastPathComponent) + LoRA \(lora.path)")
                } else {
                    (model, info) = try ExpertCheckpoint.load(from: folder, device: device)
                }
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
        // Every expert, local or remote, must take the same inputs; the first one that says sets them.
        var shapes: [(name: String, shape: VelocityWire.Shape)] = infos.enumerated().compactMap { i, info in
            info.map { ("expert \(i)", VelocityWire.Shape(channels: $0.model.inChannels, imageSize: $0.model.inputSize,
                                                         textLength: $0.model.textLength, textDim: $0.model.textDim)) }
        }
        shapes += remote.keys.sorted().compactMap { i in remote[i]!.info.map { ("remote expert \(i)", $0.shape) } }
        guard let first = shapes.first?.shape else {
            throw EnsembleError("\(run.root.path): none of the \(k) experts could be loaded:\n"
                + warnings.joined(separator: "\n"))
        }
        for (name, m) in shapes where m != first {
            throw EnsembleError("\(name) takes \(m.channels)×\(m.imageSize)² inputs with \(m.textLength) text tokens of "
                + "width \(m.textDim), but \(shapes[0].name) takes \(first.channels)×\(first.imageSize)² with "
                + "\(first.textLength) of \(first.textDim); the mixture needs experts on the same inputs")
        }
        if let r = router?.config, r.inputSize != first.imageSize || r.inChannels != first.channels {
            throw EnsembleError("the router takes \(r.inChannels)×\(r.inputSize)² inputs, the experts "
                + "\(first.channels)×\(first.imageSize)²")
        }
        if let e = router?.config.textDim, e != first.textDim {
            throw EnsembleError("the text-conditioned router reads \(e)-wide caption embeddings, but the experts' text "
                + "tokens are \(first.textDim) wide; the router pools the prompts' tokens, so both must agree")
        }
        let missing = infos.indices.filter { infos[$0] == nil && remote[$0] == nil }
        if !missing.isEmpty {
            log("warning: sampling without expert(s) \(missing.map(String.init).joined(separator: ", ")); their routing "
                + "weight is renormalised over the rest")
        }
        var members = try loaded.enumerated().map { k, e in
            try e.map { try MixtureMember.expert($0.model, objective: $0.objective, name: "expert_\(k)") }
        }
        for (k, r) in remote { members[k] = .remote(r.client, name: "expert_\(k) (remote)") }
        let mixture = try MixtureOfExperts(members: members, router: router)
        var result = RunMixture(mixture: mixture, experts: infos, router: router, warnings: warnings,
                                imageSize: first.imageSize, channels: first.channels,
                                textLength: first.textLength, textDim: first.textDim)
        result.remote = remote.mapValues(\.config)
        (result.latents, result.decoder) = try latentDecoder(run: run, experts: infos, device: device, log: log)
        result.stale = try staleness(run: run, k: k, router: router != nil)
        for line in result.stale { log("warning: " + line) }
        return result
    }

    /// The experts' latent space and its autoencoder. Every loaded expert must record the same one (pixels, or
    /// one autoencoder's latents), it must be the one the run's shards hold, and the partition's `autoencoder/`
    /// must be that autoencoder (hash, channels, scale): otherwise sampling would decode with the wrong model.
    static func latentDecoder(run: RunLayout, experts: [ExpertCheckpoint?], device: Device,
                              log: (String) -> Void) throws -> (LatentSpace?, AutoencoderKL?) {
        let loaded = experts.enumerated().compactMap { i, e in e.map { (i, $0) } }
        guard let (first, info) = loaded.first else { return (nil, nil) }
        func describe(_ l: LatentSpace?) -> String { l.map { "latents of \($0.summary)" } ?? "pixels" }
        for (i, e) in loaded where e.latents != info.latents {
            throw EnsembleError("expert \(i) was trained on \(describe(e.latents)), expert \(first) on "
                + "\(describe(info.latents)); the mixture needs experts on the same data")
        }
        guard FileManager.default.fileExists(atPath: run.runJSON.path) else {
            if info.latents != nil {
                throw EnsembleError("\(run.root.path): latent experts need run.json's partition, which holds their autoencoder")
            }
            return (nil, nil)
        }
        let partition = run.partition(try run.config())
        let shard = try? Shard.info(at: partition.appendingPathComponent(Shard.folderName(cluster: first)))
        if let shard, shard.latents != info.latents {
            throw EnsembleError("expert \(first) was trained on \(describe(info.latents)), but the run's shards "
                + "(\(partition.path)) hold \(shard.contentSummary); point run.json's partition at the data the "
                + "experts were trained on, or retrain them")
        }
        guard let space = info.latents else { return (nil, nil) }
        guard info.model.inChannels == space.latentChannels else {
            throw EnsembleError("expert \(first) takes \(info.model.inChannels) channels, but its latents have "
                + "\(space.latentChannels)")
        }
        let vae: AutoencoderKL
        do { vae = try LatentEncoding.autoencoder(partition: partition, expected: space, device: device) } catch {
            throw EnsembleError("\(error)")
        }
        log("latents: \(space.summary), decoded by \(partition.appendingPathComponent(LatentEncoding.autoencoderFolder).path)")
        return (space, vae)
    }

    /// The warnings for the experts and the router whose recorded shards differ from the run's partition now
    /// (`RunLayout.staleJobs`), experts first.
    static func staleness(run: RunLayout, k: Int, router: Bool) throws -> [String] {
        guard FileManager.default.fileExists(atPath: run.runJSON.path) else { return [] }
        let stale = run.staleJobs(try run.config())
        return (0..<k).compactMap { stale["expert_\($0)"] } + (router ? stale["router"].map { [$0] } ?? [] : [])
    }
}

/// The oracle: which cluster each training caption belongs to, read from the shards' items (`part-<i>.jsonl`, or a
/// v1 shard's `items.jsonl`).
public struct CaptionClusters: Sendable {
    /// caption → the clusters whose shard holds it (a caption may occur in several shards).
    public let clusters: [String: [Int]]

    public init(clusters: [String: [Int]]) { self.clusters = clusters }

    /// Reads the items of `shard_<k>` for k < K in `partition`.
    public static func read(partition: URL, numClusters k: Int) throws -> CaptionClusters {
        var map: [String: [Int]] = [:]
        for c in 0..<k {
            let folder = partition.appendingPathComponent(Shard.folderName(cluster: c))
            let info: ShardInfo
            do { info = try Shard.info(at: folder) } catch {
                throw EnsembleError("\(error); the oracle strategy needs the run's shards")
            }
            for name in info.dataFiles where name.hasSuffix(".jsonl") {
                let url = folder.appendingPathComponent(name)
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
