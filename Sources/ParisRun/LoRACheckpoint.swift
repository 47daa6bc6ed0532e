import Foundation
import ParisModels
import Torch

/// PEFT's `LoraConfig` as `adapter_config.json` holds it: the fields a LoRA of plain `Linear` layers uses, under
/// PEFT's names, so that `PeftModel.from_pretrained` reads the folder. Fields PEFT has and we never vary
/// (`fan_in_fan_out`, `use_rslora`, `use_dora`, `bias`, …) are written with PEFT's defaults and checked on read.
public struct LoRAConfig: Codable, Sendable, Equatable {
    /// "LORA".
    public var peftType: String = "LORA"
    /// The rank r of every adapter.
    public var r: Int
    /// α; the adapters' output is scaled by α / r.
    public var loraAlpha: Double
    /// Dropout on the adapters' input in training.
    public var loraDropout: Double
    /// PEFT's `target_modules`: a layer is adapted when its dotted path is one of these or ends in "." + one.
    public var targetModules: [String]
    /// What PEFT records as the base model: here the base expert's folder name (`expert_3`).
    public var baseModelNameOrPath: String?
    public var bias: String = "none"
    public var fanInFanOut: Bool = false
    public var useRslora: Bool = false
    public var useDora: Bool = false
    public var initLoraWeights: Bool = true
    public var inferenceMode: Bool = true
    public var taskType: String? = nil
    public var modulesToSave: [String]? = nil
    public var rankPattern: [String: Int] = [:]
    public var alphaPattern: [String: Double] = [:]

    /// The experts' default targets: the two Linear layers of every MLP (each block's, and by PEFT's suffix rule
    /// the timestep embedder's `time_embed.mlp.0/2`). (Attention's `out_proj` is a
    /// Linear too and can be named, but PyTorch's `nn.MultiheadAttention` reads its weight directly, so PEFT on
    /// the reference model ignores an adapter there.)
    public static let expertTargets = ["mlp.0", "mlp.2"]

    public init(r: Int, loraAlpha: Double, loraDropout: Double = 0, targetModules: [String],
                baseModelNameOrPath: String? = nil) {
        self.r = r
        self.loraAlpha = loraAlpha
        self.loraDropout = loraDropout
        self.targetModules = targetModules
        self.baseModelNameOrPath = baseModelNameOrPath
    }

    enum CodingKeys: String, CodingKey {
        case peftType = "peft_type", r, loraAlpha = "lora_alpha", loraDropout = "lora_dropout"
        case targetModules = "target_modules", baseModelNameOrPath = "base_model_name_or_path", bias
        case fanInFanOut = "fan_in_fan_out", useRslora = "use_rslora", useDora = "use_dora"
        case initLoraWeights = "init_lora_weights", inferenceMode = "inference_mode", taskType = "task_type"
        case modulesToSave = "modules_to_save", rankPattern = "rank_pattern", alphaPattern = "alpha_pattern"
    }

    /// Missing optional fields take PEFT's defaults; `r`, `lora_alpha` and `target_modules` are required.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        peftType = try c.decodeIfPresent(String.self, forKey: .peftType) ?? "LORA"
        r = try c.decode(Int.self, forKey: .r)
        loraAlpha = try c.decode(Double.self, forKey: .loraAlpha)
        loraDropout = try c.decodeIfPresent(Double.self, forKey: .loraDropout) ?? 0
        targetModules = try c.decode([String].self, forKey: .targetModules)
        baseModelNameOrPath = try c.decodeIfPresent(String.self, forKey: .baseModelNameOrPath)
        bias = try c.decodeIfPresent(String.self, forKey: .bias) ?? "none"
        fanInFanOut = try c.decodeIfPresent(Bool.self, forKey: .fanInFanOut) ?? false
        useRslora = try c.decodeIfPresent(Bool.self, forKey: .useRslora) ?? false
        useDora = try c.decodeIfPresent(Bool.self, forKey: .useDora) ?? false
        initLoraWeights = try c.decodeIfPresent(Bool.self, forKey: .initLoraWeights) ?? true
        inferenceMode = try c.decodeIfPresent(Bool.self, forKey: .inferenceMode) ?? true
        taskType = try c.decodeIfPresent(String.self, forKey: .taskType)
        modulesToSave = try c.decodeIfPresent([String].self, forKey: .modulesToSave)
        rankPattern = try c.decodeIfPresent([String: Int].self, forKey: .rankPattern) ?? [:]
        alphaPattern = try c.decodeIfPresent([String: Double].self, forKey: .alphaPattern) ?? [:]
    }

    /// A config this project can apply: plain LoRA on named Linear layers, one rank and α for all.
    public func validate() throws {
        guard peftType == "LORA" else { throw RunError("adapter_config.json: peft_type is \(peftType), not LORA") }
        guard r > 0, r <= 4096 else { throw RunError("adapter_config.json: r must be in 1...4096, not \(r)") }
        guard loraAlpha > 0, loraAlpha.isFinite else {
            throw RunError("adapter_config.json: lora_alpha must be positive, not \(loraAlpha)")
        }
        guard (0..<1).contains(loraDropout) else {
            throw RunError("adapter_config.json: lora_dropout must be in [0, 1), not \(loraDropout)")
        }
        guard !targetModules.isEmpty, targetModules.allSatisfy({ !$0.isEmpty }) else {
            throw RunError("adapter_config.json: target_modules must name at least one layer")
        }
        var unsupported: [String] = []
        if bias != "none" { unsupported.append("bias \"\(bias)\"") }
        if fanInFanOut { unsupported.append("fan_in_fan_out") }
        if useRslora { unsupported.append("use_rslora") }
        if useDora { unsupported.append("use_dora") }
        if !(modulesToSave ?? []).isEmpty { unsupported.append("modules_to_save") }
        if !rankPattern.isEmpty || !alphaPattern.isEmpty { unsupported.append("rank_pattern/alpha_pattern") }
        guard unsupported.isEmpty else {
            throw RunError("adapter_config.json uses \(unsupported.joined(separator: ", ")), which paris does not apply")
        }
    }
}

/// A LoRA of one expert, in PEFT's folder layout: `adapter_config.json` (`LoRAConfig`) and
/// `adapter_model.safetensors` (`base_model.model.<path>.lora_A.weight`, `….lora_B.weight`). The safetensors
/// metadata (which PEFT ignores) binds the adapters to their base: the SHA-256 of the base expert's weights file,
/// its model preset and text encoder, and the training steps.
public struct LoRACheckpoint: Sendable {
    public static let configName = "adapter_config.json"
    public static let weightsName = "adapter_model.safetensors"

    public var config: LoRAConfig
    /// SHA-256 of the base expert's `diffusion_pytorch_model.safetensors`.
    public var baseSHA256: String
    /// The base expert's model config, so a LoRA can be checked against a base without loading either.
    public var baseModel: ParisExpertConfig
    /// Training steps behind the adapters.
    public var steps: Int

    public init(config: LoRAConfig, baseSHA256: String, baseModel: ParisExpertConfig, steps: Int) {
        self.config = config
        self.baseSHA256 = baseSHA256
        self.baseModel = baseModel
        self.steps = steps
    }

    public static func exists(in folder: URL) -> Bool {
        bothFilesExist(in: folder, configName, weightsName)
    }

    /// Writes the weights, then the config (both atomic).
    public func write(weights: [String: Tensor], to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let base = String(decoding: try encoder.encode(baseModel), as: UTF8.self)
        try SafeTensors.save(weights, to: folder.appendingPathComponent(Self.weightsName), metadata: [
            "paris_base_sha256": baseSHA256, "paris_base_config": base, "paris_steps": String(steps),
        ])
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(config)) + [10], to: folder.appendingPathComponent(Self.configName))
    }

    /// Reads and validates `adapter_config.json` and the weights' header (no tensor loaded): the metadata must
    /// name the base, and every tensor must be a `lora_A`/`lora_B` weight of rank r.
    public static func read(from folder: URL) throws -> LoRACheckpoint {
        let configURL = folder.appendingPathComponent(configName)
        let weightsURL = folder.appendingPathComponent(weightsName)
        for url in [configURL, weightsURL] where !FileManager.default.fileExists(atPath: url.path) {
            throw RunError("\(url.path): not found (a LoRA folder holds \(configName) and \(weightsName))")
        }
        let config = try readConfig(configURL)
        let header = try SafeTensors.header(weightsURL)
        let meta = header.metadata
        guard let base = meta["paris_base_sha256"], base.count == 64,
              let model = meta["paris_base_config"].flatMap({
                  try? JSONDecoder().decode(ParisExpertConfig.self, from: Data($0.utf8))
              }) else {
            throw RunError("\(weightsURL.path): its metadata does not name the base expert (paris_base_sha256, "
                + "paris_base_config); it was not written by `paris train lora`")
        }
        for entry in header.entries {
            let isA = entry.name.hasSuffix(".lora_A.weight"), isB = entry.name.hasSuffix(".lora_B.weight")
            guard entry.name.hasPrefix(LoRA.keyPrefix), isA || isB, entry.shape.count == 2,
                  (isA ? entry.shape[0] : entry.shape[1]) == config.r else {
                throw RunError("\(weightsURL.path): tensor \(entry.name) \(entry.shape) is not a rank-\(config.r) "
                    + "lora_A [r, in] or lora_B [out, r] weight under \(LoRA.keyPrefix)")
            }
        }
        return LoRACheckpoint(config: config, baseSHA256: base, baseModel: model,
                              steps: Int(meta["paris_steps"] ?? "") ?? 0)
    }

    /// Reads an `adapter_config.json`, PEFT's or ours. PEFT adds keys with every release, so unknown keys are
    /// accepted; the ones that would change what the adapters compute must be absent or at their defaults.
    public static func readConfig(_ url: URL) throws -> LoRAConfig {
        do {
            let data = try Data(contentsOf: url)
            let config = try JSONDecoder().decode(LoRAConfig.self, from: data)
            try config.validate()
            guard let raw = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw RunError("not a JSON object")
            }
            for key in ["layers_to_transform", "layers_pattern", "exclude_modules", "target_parameters",
                        "trainable_token_indices", "layer_replication", "loftq_config"] {
                guard let v = raw[key], !(v is NSNull) else { continue }
                if let d = v as? [String: Any], d.isEmpty { continue }
                if let a = v as? [Any], a.isEmpty { continue }
                throw RunError("\(key) is set, which paris does not apply")
            }
            if let b = raw["lora_bias"] as? Bool, b { throw RunError("lora_bias is set, which paris does not apply") }
            return config
        } catch { throw RunError("\(url.path): \(error)") }
    }
}
