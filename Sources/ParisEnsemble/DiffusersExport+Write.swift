import Foundation
import ParisDiffusion
import ParisModels
import ParisRun
import Torch

extension DiffusersExport {
    /// The index's `time_grid`: our sampler's grid, t_i = 1 − i/N (what `paris sample --run` integrates on).
    public static let timeGrid = TimeGrid.uniform

    /// `model_index.json` of the export.
    func index(numExperts k: Int, latent: Bool) -> [String: Any] {
        ["_class_name": ParisReleaseIndex.className, "num_experts": k,
         "vae": latent ? ["diffusers", "AutoencoderKL"] : [NSNull(), NSNull()],
         "text_encoder": ["transformers", ReleaseTextEncoder.bertClass],
         "tokenizer": ["transformers", "BertTokenizer"],
         "time_grid": Self.timeGrid.rawValue,
         "_paris_source": "paris export diffusers"]
    }

    /// An expert's `config.json`: the keys the release loader and the Python reference read (the public port's
    /// names plus ours: `text_length`, `null_text`), and `_paris_*` provenance that loaders skip.
    static func expertConfig(_ info: ExpertCheckpoint) -> [String: Any] {
        let m = info.model
        return ["_class_name": ExpertCheckpoint.className, "input_size": m.inputSize, "in_channels": m.inChannels,
                "out_channels": m.inChannels, "patch_size": m.patchSize, "hidden_size": m.hiddenSize,
                "depth": m.depth, "num_heads": m.numHeads, "mlp_ratio": m.mlpRatio, "text_dim": m.textDim,
                "text_length": m.textLength, "null_text": m.nullText.rawValue,
                "frequency_embedding_size": m.frequencyEmbeddingSize, "norm_eps": m.normEps,
                "_paris_objective": "\(info.objective)", "_paris_cluster": info.cluster.map { $0 as Any } ?? NSNull(),
                "_paris_steps": info.steps, "_paris_text_encoder": info.textEncoder]
    }

    /// The router's `config.json` (the port's `num_clusters` = K).
    static func routerConfig(_ c: RouterConfig, steps: Int) -> [String: Any] {
        ["_class_name": "Router", "input_size": c.inputSize, "in_channels": c.inChannels, "patch_size": c.patchSize,
         "hidden_size": c.hiddenSize, "depth": c.depth, "num_heads": c.numHeads, "mlp_ratio": c.mlpRatio,
         "num_clusters": c.numExperts, "frequency_embedding_size": c.frequencyEmbeddingSize, "norm_eps": c.normEps,
         "_paris_steps": steps]
    }

    /// Writes every file of the export into `folder` (the staging folder).
    func writeFolder(_ plan: Plan, into folder: URL, log: (String) -> Void) throws {
        let fm = FileManager.default
        func dir(_ name: String) throws -> URL {
            let url = folder.appendingPathComponent(name)
            try fm.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }
        let e0 = plan.experts[0].info.model
        try Self.writeJSON(index(numExperts: plan.experts.count, latent: plan.vae != nil),
                           to: folder.appendingPathComponent(ParisReleaseIndex.fileName))
        try Self.writeJSON(["model_name": plan.runName, "num_experts": plan.experts.count, "image_size": e0.inputSize,
                            "num_channels": e0.inChannels, "use_latents": plan.vae != nil,
                            "expert_architecture": "dit", "router_architecture": "dit"],
                           to: folder.appendingPathComponent("config.json"))
        for (k, e) in plan.experts.enumerated() {
            let d = try dir("expert_\(k)")
            try Self.writeJSON(Self.expertConfig(e.info), to: d.appendingPathComponent("config.json"))
            try fm.copyItem(at: e.folder.appendingPathComponent(ExpertCheckpoint.weightsName),
                            to: d.appendingPathComponent(ParisRelease.expertWeights))
            log("expert_\(k): \(e.info.model.parameterCount) parameters, \(e.info.steps) steps")
        }
        let r = try dir("router")
        try Self.writeJSON(Self.routerConfig(plan.router.config, steps: plan.router.steps),
                           to: r.appendingPathComponent("config.json"))
        try fm.copyItem(at: plan.router.folder.appendingPathComponent(RouterCheckpoint.weightsName),
                        to: r.appendingPathComponent(ParisRelease.routerWeights))
        if let vae = plan.vae { try writeVAE(vae, into: try dir("vae"), log: log) }
        let t = try dir("text_encoder")
        for name in ["config.json", ParisRelease.textWeights] {
            try fm.copyItem(at: textEncoder.appendingPathComponent(name), to: t.appendingPathComponent(name))
        }
        let tok = try dir("tokenizer")
        try fm.copyItem(at: textEncoder.appendingPathComponent("vocab.txt"), to: tok.appendingPathComponent("vocab.txt"))
        let special = textEncoder.appendingPathComponent("special_tokens_map.json")
        if fm.fileExists(atPath: special.path) {
            try fm.copyItem(at: special, to: tok.appendingPathComponent("special_tokens_map.json"))
        }
        try Self.writeJSON(tokenizerConfig(length: e0.textLength), to: tok.appendingPathComponent("tokenizer_config.json"))
        log("text encoder: \(TextEncoder.name) (BertModel, \(e0.textLength) tokens)")
    }

    /// The MiniLM folder's tokenizer_config.json (BertTokenizer, lower case) with `model_max_length` = the experts'
    /// token length, so that a loader pads and truncates to what the experts read.
    func tokenizerConfig(length: Int) throws -> [String: Any] {
        let url = textEncoder.appendingPathComponent("tokenizer_config.json")
        var d: [String: Any] = FileManager.default.fileExists(atPath: url.path) ? try ReleaseJSON.object(url) : [:]
        d["tokenizer_class"] = "BertTokenizer"
        if d["do_lower_case"] == nil { d["do_lower_case"] = true }
        for (key, token) in [("cls_token", "[CLS]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"),
                             ("unk_token", "[UNK]"), ("mask_token", "[MASK]")] where d[key] == nil {
            d[key] = token
        }
        d["model_max_length"] = length
        d.removeValue(forKey: "name_or_path")
        return d
    }

    static func writeJSON(_ object: [String: Any], to url: URL) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys,
                                                                                .withoutEscapingSlashes])
        data.append(0x0A)
        try data.write(to: url, options: .atomic)
    }
}
