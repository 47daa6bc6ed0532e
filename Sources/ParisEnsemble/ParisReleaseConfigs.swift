import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// `model_index.json` of a released Paris folder (bageldotcom/paris: `"_class_name": "DDMPipeline"`, `num_experts`,
/// and the diffusers-style component entries `"vae": ["diffusers", "AutoencoderKL"]`,
/// `"text_encoder": ["transformers", "CLIPTextModel"]`, `"tokenizer": ["transformers", "CLIPTokenizer"]`).
///
/// A folder written by `paris export diffusers` from a pixel-space run says `"vae": [null, null]` (diffusers' way
/// of saying a component is absent: the experts denoise pixels), names `BertModel` + `BertTokenizer` (all-MiniLM-L6-v2)
/// and adds `"time_grid": "uniform"` (our sampler's t_i = 1 − i/N; the release's grid, and the default, is
/// `diffusers`).
public struct ParisReleaseIndex: Sendable, Equatable {
    public static let fileName = "model_index.json"
    public static let className = "DDMPipeline"
    /// The component entries the index may name, and the classes this loader reads for each.
    public static let components: [(key: String, classes: [String])] = [
        ("vae", ["AutoencoderKL"]), ("text_encoder", [ReleaseTextEncoder.clipClass, ReleaseTextEncoder.bertClass]),
        ("tokenizer", ["CLIPTokenizer", "CLIPTokenizerFast", "BertTokenizer", "BertTokenizerFast"]),
    ]

    /// K, the number of experts (`expert_0/` … `expert_<K−1>/`).
    public var numExperts: Int
    /// The text encoder's class: `CLIPTextModel` (the default) or `BertModel`.
    public var textEncoder = ReleaseTextEncoder.clipClass
    /// False when the index says `"vae": [null, null]`: the experts denoise pixels and nothing is decoded.
    public var hasVAE = true
    /// The sampling grid (`time_grid`; diffusers' FlowMatchEulerDiscreteScheduler grid unless it says `uniform`).
    public var timeGrid = TimeGrid.diffusers

    public init(numExperts: Int, textEncoder: String = ReleaseTextEncoder.clipClass, hasVAE: Bool = true,
                timeGrid: TimeGrid = .diffusers) {
        self.numExperts = numExperts
        self.textEncoder = textEncoder
        self.hasVAE = hasVAE
        self.timeGrid = timeGrid
    }

    /// Reads and checks `model_index.json`: the class, `num_experts` (1…`RouterConfig.maxExperts`), each component
    /// entry it has (`[library, class]`, the class one this loader reads; `vae` may be `[null, null]`), a tokenizer
    /// of the text encoder's kind, and `time_grid`. Errors name the file and key.
    public static func read(_ url: URL) throws -> ParisReleaseIndex {
        let dict = try ReleaseJSON.object(url)
        guard let name = dict["_class_name"] as? String else {
            throw EnsembleError("\(url.path): no \"_class_name\"; a Paris release's index says \"\(className)\"")
        }
        guard name == className else {
            throw EnsembleError("\(url.path): _class_name is \"\(name)\", expected \"\(className)\" (a Paris release)")
        }
        let k = try ReleaseJSON.int(dict, "num_experts", in: url) ?? { () throws -> Int in
            throw EnsembleError("\(url.path): no \"num_experts\"")
        }()
        guard (1...RouterConfig.maxExperts).contains(k) else {
            throw EnsembleError("\(url.path): num_experts is \(k), expected 1…\(RouterConfig.maxExperts)")
        }
        var index = ParisReleaseIndex(numExperts: k)
        var classes: [String: String] = [:]
        for (key, known) in components {
            guard let entry = dict[key] else { continue }
            if key == "vae", let pair = entry as? [Any], pair.count == 2, pair.allSatisfy({ $0 is NSNull }) {
                index.hasVAE = false
                continue
            }
            guard let pair = entry as? [Any], pair.count == 2, let cls = pair[1] as? String else {
                throw EnsembleError("\(url.path): \"\(key)\" is \(entry), expected [library, class]"
                    + (key == "vae" ? " (or [null, null] for pixel-space experts)" : ""))
            }
            guard known.contains(cls) else {
                throw EnsembleError("\(url.path): \"\(key)\" is a \(cls); this loader reads "
                    + known.joined(separator: " or "))
            }
            classes[key] = cls
        }
        index.textEncoder = classes["text_encoder"] ?? ReleaseTextEncoder.clipClass
        let bert = index.textEncoder == ReleaseTextEncoder.bertClass
        if let tok = classes["tokenizer"], tok.hasPrefix("Bert") != bert {
            throw EnsembleError("\(url.path): \"tokenizer\" is a \(tok), but \"text_encoder\" is a \(index.textEncoder)")
        }
        if let v = dict["time_grid"], !(v is NSNull) {
            guard let text = v as? String, let grid = TimeGrid(rawValue: text) else {
                throw EnsembleError("\(url.path): \"time_grid\" is \(v), expected \"diffusers\" or \"uniform\"")
            }
            index.timeGrid = grid
        }
        return index
    }
}

/// The config.json of a released expert or router, read into our configs. The released files' keys have not been
/// seen here, so the keys of the public port's constructors (`DiTExpert(hidden_size, depth, num_heads, patch_size,
/// in_channels, out_channels, mlp_ratio)`, `Router(..., num_clusters)`) and of our configs are read, each absent key
/// takes the released model's value (`ParisExpertConfig.paris`, `RouterConfig.paris`), and other keys are ignored.
/// Whatever the config says is then checked against the weights' header, tensor by tensor.
enum ReleaseConfigs {
    /// The keys read from an expert's and from the router's config.json; others are reported by `unread`.
    static let expertKeys: Set<String> = ["input_size", "image_size", "in_channels", "num_channels", "out_channels",
                                          "patch_size", "hidden_size", "depth", "num_heads", "mlp_ratio", "text_dim",
                                          "text_length", "null_text", "frequency_embedding_size", "norm_eps"]
    static let routerKeys: Set<String> = ["input_size", "image_size", "in_channels", "num_channels", "patch_size",
                                          "hidden_size", "depth", "num_heads", "mlp_ratio", "num_clusters",
                                          "num_experts", "frequency_embedding_size", "norm_eps"]

    /// A note naming the keys of `url` that are neither read (`known`) nor metadata (`_…`), nil when there are none.
    static func unread(_ url: URL, known: Set<String>) throws -> String? {
        let extra = try ReleaseJSON.object(url).keys.filter { !known.contains($0) && !$0.hasPrefix("_") }.sorted()
        return extra.isEmpty ? nil : "\(url.path): keys not read (ignored): " + extra.joined(separator: ", ")
    }

    /// An expert's config (the null condition is CLIP(""): `empty_prompt`). `textDim` and `textLength` default to
    /// the text encoder's width and the tokenizer's length.
    static func expert(_ url: URL, textDim: Int, textLength: Int) throws -> ParisExpertConfig {
        let d = try ReleaseJSON.object(url)
        let base = ParisExpertConfig.paris
        func int(_ keys: String..., or value: Int) throws -> Int {
            for key in keys { if let v = try ReleaseJSON.int(d, key, in: url) { return v } }
            return value
        }
        var c = ParisExpertConfig(
            inputSize: try int("input_size", "image_size", or: base.inputSize),
            inChannels: try int("in_channels", "num_channels", or: base.inChannels),
            patchSize: try int("patch_size", or: base.patchSize), hiddenSize: try int("hidden_size", or: base.hiddenSize),
            depth: try int("depth", or: base.depth), numHeads: try int("num_heads", or: base.numHeads),
            mlpRatio: try ReleaseJSON.double(d, "mlp_ratio", in: url) ?? base.mlpRatio,
            textDim: try int("text_dim", or: textDim), textLength: try int("text_length", or: textLength),
            nullText: try nullText(d, url),
            frequencyEmbeddingSize: try int("frequency_embedding_size", or: base.frequencyEmbeddingSize),
            normEps: try ReleaseJSON.double(d, "norm_eps", in: url) ?? base.normEps)
        if let out = try ReleaseJSON.int(d, "out_channels", in: url), out != c.inChannels {
            throw EnsembleError("\(url.path): out_channels is \(out) but in_channels \(c.inChannels); an expert "
                + "predicts a velocity shaped like its input")
        }
        if c.textDim != textDim {
            throw EnsembleError("\(url.path): text_dim is \(c.textDim), but the text encoder's hidden_size is \(textDim)")
        }
        c.textLength = textLength
        do { try c.validate() } catch { throw EnsembleError("\(url.path): \(error)") }
        return c
    }

    /// `null_text` of an expert's config: `empty_prompt` (the release's, and the default: the caller encodes "") or
    /// `learned` / `zero` (our experts, exported: `null_text_embedding` is then one of its tensors).
    static func nullText(_ d: [String: Any], _ url: URL) throws -> NullTextEmbedding {
        guard let v = d["null_text"], !(v is NSNull) else { return .emptyPrompt }
        guard let text = v as? String, let n = NullTextEmbedding(rawValue: text) else {
            throw EnsembleError("\(url.path): \"null_text\" is \(v), expected empty_prompt, learned or zero")
        }
        return n
    }

    /// The router's config; `num_clusters` (the port's name) or `num_experts` must equal the index's K when given.
    static func router(_ url: URL, numExperts k: Int) throws -> RouterConfig {
        let d = try ReleaseJSON.object(url)
        let base = RouterConfig.paris
        func int(_ keys: String..., or value: Int) throws -> Int {
            for key in keys { if let v = try ReleaseJSON.int(d, key, in: url) { return v } }
            return value
        }
        let c = RouterConfig(
            inputSize: try int("input_size", "image_size", or: base.inputSize),
            inChannels: try int("in_channels", "num_channels", or: base.inChannels),
            patchSize: try int("patch_size", or: base.patchSize), hiddenSize: try int("hidden_size", or: base.hiddenSize),
            depth: try int("depth", or: base.depth), numHeads: try int("num_heads", or: base.numHeads),
            mlpRatio: try ReleaseJSON.double(d, "mlp_ratio", in: url) ?? base.mlpRatio,
            numExperts: try int("num_clusters", "num_experts", or: k),
            frequencyEmbeddingSize: try int("frequency_embedding_size", or: base.frequencyEmbeddingSize),
            normEps: try ReleaseJSON.double(d, "norm_eps", in: url) ?? base.normEps)
        guard c.numExperts == k else {
            throw EnsembleError("\(url.path): the router scores \(c.numExperts) experts (num_clusters), but "
                + "\(ParisReleaseIndex.fileName) has num_experts \(k)")
        }
        do { try c.validate() } catch { throw EnsembleError("\(url.path): \(error)") }
        return c
    }

    /// Compares the tensors a config needs (`entries`) with the weights file's header (names and shapes, nothing
    /// loaded): every tensor present with its shape, none extra. The error names both files and the key.
    static func checkHeader(_ entries: [StateDictEntry], depth: Int, config: some Encodable, configURL: URL,
                            weights: URL) throws {
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw EnsembleError("\(weights.path): not found")
        }
        let header = try SafeTensors.header(weights)
        let found = Dictionary(header.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        let data = try JSONEncoder().encode(config)
        let values = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]).mapValues { "\($0)" }
        do { try StateDictEntry.check(entries, against: found, depth: depth, values: values) } catch {
            throw EnsembleError("\(configURL.path) does not match \(weights.path): \(error)")
        }
    }
}

/// Reading the release's JSON files with errors that name the file and the key.
enum ReleaseJSON {
    static func object(_ url: URL) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw EnsembleError("\(url.path): not found")
        }
        guard let dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw EnsembleError("\(url.path): not a JSON object")
        }
        return dict
    }

    /// An integer value (a JSON number without a fraction), nil when the key is absent or null.
    static func int(_ d: [String: Any], _ key: String, in url: URL) throws -> Int? {
        guard let v = d[key], !(v is NSNull) else { return nil }
        guard !(v is String), let n = v as? NSNumber, let i = Int(exactly: n.doubleValue)
        else { throw EnsembleError("\(url.path): \"\(key)\" is \(v), expected an integer") }
        return i
    }

    /// A finite number, nil when the key is absent or null.
    static func double(_ d: [String: Any], _ key: String, in url: URL) throws -> Double? {
        guard let v = d[key], !(v is NSNull) else { return nil }
        guard !(v is String), let n = v as? NSNumber, n.doubleValue.isFinite else {
            throw EnsembleError("\(url.path): \"\(key)\" is \(v), expected a number")
        }
        return n.doubleValue
    }
}
