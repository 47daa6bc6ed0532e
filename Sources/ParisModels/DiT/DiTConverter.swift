import Foundation
import Torch

/// Turns a facebookresearch/DiT checkpoint (`.pt`) into this project's format: `<name>.safetensors` (the state
/// dict, keys unchanged) and `config.json` (a `DiTConfig`) in the same folder.
///
/// The input may be a raw state dict (`torch.save(model.state_dict())`, as the released DiT-XL-2-256x256.pt) or a
/// checkpoint of DiT's train.py (`{"model", "ema", "opt", "args"}`), of which the EMA weights are taken unless
/// `weights` says otherwise; a DDP `module.` prefix is removed. The configuration is read from the tensor shapes;
/// see `inferConfig`. The weights are loaded strictly into a `DiT` of that configuration, which proves every name
/// and shape matches, and written from it.
public enum DiTConverter {
    /// Which weights of a train.py checkpoint to convert.
    public enum Weights: String, CaseIterable, Sendable {
        /// "ema" when present, else "model", else the file's top level (a raw state dict).
        case auto
        case ema
        case model
    }

    /// What a conversion did.
    public struct Result: Sendable {
        public let config: DiTConfig
        /// "ema", "model" or "state dict": where in the input the weights were found.
        public let source: String
        public let weightsURL: URL
        public let configURL: URL
        public let parameterCount: Int
    }

    /// Converts `input` to `output` (a .safetensors path) and `config.json` beside it. Refuses to replace an existing
    /// file unless `overwrite`; writes are atomic. `numHeads` is needed only when the hidden size is not one of the
    /// reference presets' (heads cannot be read from the shapes).
    @discardableResult
    public static func convert(input: URL, output: URL, overwrite: Bool = false, weights: Weights = .auto,
                               numHeads: Int? = nil) throws -> Result {
        let configURL = output.deletingLastPathComponent().appendingPathComponent("config.json")
        if !overwrite {
            for url in [output, configURL] where FileManager.default.fileExists(atPath: url.path) {
                throw TorchError("\(url.path) already exists; pass --force (overwrite: true) to replace it")
            }
        }
        let checkpoint = try PyTorchCheckpoint.open(input)
        let (stateDict, source) = try selectStateDict(checkpoint, weights: weights)
        let config = try inferConfig(stateDict, numHeads: numHeads, file: input.path)
        let model = try DiT(config)
        do {
            try model.loadStateDict(stateDict, strict: true)
        } catch {
            throw TorchError("\(input.path) does not load into DiT \(config): \(error)")
        }
        let state = try model.stateDict()
        let tensors = model.stateDictKeys().compactMap { key in state[key].map { (key, $0) } }
        try SafeTensors.save(tensors, to: output,
                             metadata: ["source": input.lastPathComponent, "weights": source, "model": "DiT"])
        try AtomicFile.write(Array(try encodeConfig(config)), to: configURL)
        return Result(config: config, source: source, weightsURL: output, configURL: configURL,
                      parameterCount: model.parameterCount)
    }

    /// The state dict inside a checkpoint: the `ema.` or `model.` entries of a train.py checkpoint, or the whole
    /// file; a leading `module.` (DDP) is removed.
    static func selectStateDict(_ checkpoint: PyTorchCheckpoint,
                                weights: Weights) throws -> ([String: Tensor], String) {
        func has(_ prefix: String) -> Bool { checkpoint.tensors.contains { $0.name.hasPrefix(prefix + ".") } }
        let prefix: String?
        switch weights {
        case .auto: prefix = has("ema") ? "ema" : has("model") ? "model" : nil
        case .ema, .model:
            guard has(weights.rawValue) else {
                throw TorchError("\(checkpoint.url.path) has no '\(weights.rawValue)' weights")
            }
            prefix = weights.rawValue
        }
        var pairs = prefix.map { checkpoint.stripping($0) } ?? checkpoint.tensors.map { ($0.name, $0.tensor) }
        if !pairs.isEmpty, pairs.allSatisfy({ $0.0.hasPrefix("module.") }) {
            pairs = pairs.map { (String($0.0.dropFirst("module.".count)), $0.1) }
        }
        return (Dictionary(pairs, uniquingKeysWith: { a, _ in a }), prefix ?? "state dict")
    }

    /// A DiT configuration read from a reference state dict's shapes:
    /// hidden size, input channels and patch from `x_embedder.proj.weight` [hidden, C, p, p]; depth from the
    /// `blocks.N` count; input size from `pos_embed` [1, (input/p)², hidden]; the MLP ratio from
    /// `blocks.0.mlp.fc1.weight`; learn_sigma from `final_layer.linear.weight` (p²·2C rows, else p²·C). The label
    /// table has num_classes + 1 rows (the null class of classifier-free guidance, class_dropout_prob 0.1 as in DiT's
    /// training); heads come from `numHeads` or from the reference preset with this hidden size.
    public static func inferConfig(_ sd: [String: Tensor], numHeads: Int? = nil,
                                   file: String = "state dict") throws -> DiTConfig {
        func shape(_ key: String, rank: Int) throws -> [Int] {
            guard let t = sd[key] else {
                let sample = sd.keys.sorted().prefix(5).joined(separator: ", ")
                throw TorchError("\(file) is not a facebookresearch/DiT checkpoint: it has no '\(key)' "
                                     + "(\(sd.count) tensors\(sample.isEmpty ? "" : ": \(sample), ..."))")
            }
            guard t.rank == rank else {
                throw TorchError("\(file): '\(key)' has shape \(t.shape), expected \(rank) dimensions")
            }
            return t.shape
        }
        let w = try shape("x_embedder.proj.weight", rank: 4)
        let hidden = w[0], channels = w[1], patch = w[2]
        guard w[2] == w[3], patch > 0 else { throw TorchError("\(file): the patch embedding kernel \(w) is not square") }
        let pos = try shape("pos_embed", rank: 3)
        let grid = Int(Double(pos[1]).squareRoot().rounded())
        guard grid * grid == pos[1], pos[2] == hidden else {
            throw TorchError("\(file): pos_embed \(pos) is not a square grid of \(hidden)-d embeddings")
        }
        let depth = Set(sd.keys.compactMap { key -> Int? in
            let parts = key.split(separator: ".")
            return parts.count > 2 && parts[0] == "blocks" ? Int(parts[1]) : nil
        }).count
        let table = try shape("y_embedder.embedding_table.weight", rank: 2)
        let out = try shape("final_layer.linear.weight", rank: 2)[0]
        guard out % (patch * patch) == 0, [channels, 2 * channels].contains(out / (patch * patch)) else {
            throw TorchError("\(file): final_layer.linear has \(out) outputs, expected \(patch)²·\(channels) or "
                                 + "\(patch)²·\(2 * channels)")
        }
        var mlpRatio = 4.0
        if depth > 0 {
            mlpRatio = Double(try shape("blocks.0.mlp.fc1.weight", rank: 2)[0]) / Double(hidden)
        }
        let heads: Int
        if let numHeads {
            heads = numHeads
        } else if let preset = DiTConfig.presets.first(where: { $0.config.hiddenSize == hidden && $0.config.depth == depth }) {
            heads = preset.config.numHeads
        } else {
            throw TorchError("\(file): hidden size \(hidden) and depth \(depth) match no reference DiT preset, and the "
                                 + "number of attention heads cannot be read from the weights; give it (--num-heads)")
        }
        let config = DiTConfig(inputSize: grid * patch, patchSize: patch, inChannels: channels, hiddenSize: hidden,
                               depth: depth, numHeads: heads, mlpRatio: mlpRatio,
                               classDropoutProb: table[0] > 1 ? 0.1 : 0, numClasses: max(1, table[0] - 1),
                               learnSigma: out / (patch * patch) == 2 * channels)
        try config.validate()
        return config
    }

    /// The config as pretty, key-sorted JSON with a final newline.
    static func encodeConfig(_ config: DiTConfig) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(config) + Data("\n".utf8)
    }
}

extension DiT {
    /// Loads a converted or trained model: `weights` (.safetensors, keys as the reference's state dict) and its
    /// `config` (default: `config.json` beside the weights), strictly.
    public static func load(weights: URL, config: URL? = nil, device: Device = .cpu) throws -> DiT {
        let configURL = config ?? weights.deletingLastPathComponent().appendingPathComponent("config.json")
        let data: Data
        do { data = try Data(contentsOf: configURL) } catch {
            throw TorchError("\(configURL.path): cannot read the DiT config: \(error.localizedDescription)")
        }
        let cfg: DiTConfig
        do { cfg = try JSONDecoder().decode(DiTConfig.self, from: data) } catch {
            throw TorchError("\(configURL.path): not a DiT config: \(error)")
        }
        let model = try DiT(cfg, device: device)
        try model.loadStateDict(try SafeTensors.load(weights).tensors)
        return model
    }
}
