import Foundation
import Torch

/// The hyper-parameters of CLIP's text tower (Hugging Face's `CLIPTextConfig`), decoded from `config.json` keys
/// (`vocab_size`, `hidden_size`, `intermediate_size`, `num_hidden_layers`, `num_attention_heads`,
/// `max_position_embeddings`, `layer_norm_eps`, `hidden_act`, `bos_token_id`, `eos_token_id`, `pad_token_id`; other
/// keys are ignored). The defaults are transformers 5's `CLIPTextConfig()` (openai/clip-vit-base-patch32's text
/// tower: 12 layers of width 512, 8 heads, a 2048-wide quick-GELU MLP, 77 positions, ids 49406/49407/1).
///
/// `load(_:)` reads either a bare text config or a full `CLIPConfig` (its `text_config` object), as
/// `CLIPTextConfig.from_pretrained` does. `vitL14` is the text tower of openai/clip-vit-large-patch14, the one Paris
/// conditions on.
public struct CLIPTextConfig: Codable, Equatable, Hashable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    public var layerNormEps: Double
    /// "quick_gelu" (x·σ(1.702x)), "gelu" or "gelu_new"/"gelu_pytorch_tanh".
    public var hiddenAct: String
    /// Not used by the tower itself; kept because checkpoints' configs carry it.
    public var bosTokenID: Int
    /// The pooled output is taken at the first position holding this id (at the largest id when it is 2, as
    /// transformers does for configs written before its fix, such as openai/clip-vit-large-patch14's).
    public var eosTokenID: Int
    /// Not used by the tower itself; kept because checkpoints' configs carry it.
    public var padTokenID: Int

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", layerNormEps = "layer_norm_eps"
        case hiddenAct = "hidden_act", bosTokenID = "bos_token_id", eosTokenID = "eos_token_id"
        case padTokenID = "pad_token_id"
    }

    public init(vocabSize: Int = 49408, hiddenSize: Int = 512, intermediateSize: Int = 2048, numHiddenLayers: Int = 12,
                numAttentionHeads: Int = 8, maxPositionEmbeddings: Int = 77, layerNormEps: Double = 1e-5,
                hiddenAct: String = "quick_gelu", bosTokenID: Int = 49406, eosTokenID: Int = 49407,
                padTokenID: Int = 1) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.layerNormEps = layerNormEps
        self.hiddenAct = hiddenAct
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.padTokenID = padTokenID
    }

    /// openai/clip-vit-large-patch14's text tower, as `CLIPTextConfig.from_pretrained` reads it from that
    /// repository's config.json (its `text_config`): vocabulary 49,408, 77 positions, width 768, 12 layers, 12 heads,
    /// a 3072-wide quick-GELU MLP, layer_norm_eps 1e-5, and the legacy ids bos 0, eos 2, pad 1 written by
    /// transformers 4.16. 123,060,480 parameters. (transformers' `CLIPConfig` applies the file's `text_config_dict`
    /// over its defaults and so resolves bos 49406, eos 49407; with the real tokenizer both pick the same pooled
    /// position, and the last hidden state, which Paris uses, does not depend on them.)
    public static let vitL14 = CLIPTextConfig(vocabSize: 49408, hiddenSize: 768, intermediateSize: 3072,
                                              numHiddenLayers: 12, numAttentionHeads: 12, maxPositionEmbeddings: 77,
                                              layerNormEps: 1e-5, hiddenAct: "quick_gelu", bosTokenID: 0,
                                              eosTokenID: 2, padTokenID: 1)

    /// Decodes a text config, taking transformers' default for every key that is absent. `eos_token_id` may also be
    /// a list (transformers 5 allows it); its first id is taken.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPTextConfig()
        func int(_ key: CodingKeys, _ fallback: Int) throws -> Int {
            if let list = try? c.decodeIfPresent([Int].self, forKey: key), let first = list.first { return first }
            return try c.decodeIfPresent(Int.self, forKey: key) ?? fallback
        }
        self.init(
            vocabSize: try int(.vocabSize, d.vocabSize),
            hiddenSize: try int(.hiddenSize, d.hiddenSize),
            intermediateSize: try int(.intermediateSize, d.intermediateSize),
            numHiddenLayers: try int(.numHiddenLayers, d.numHiddenLayers),
            numAttentionHeads: try int(.numAttentionHeads, d.numAttentionHeads),
            maxPositionEmbeddings: try int(.maxPositionEmbeddings, d.maxPositionEmbeddings),
            layerNormEps: try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? d.layerNormEps,
            hiddenAct: try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct,
            bosTokenID: try int(.bosTokenID, d.bosTokenID),
            eosTokenID: try int(.eosTokenID, d.eosTokenID),
            padTokenID: try int(.padTokenID, d.padTokenID))
    }

    /// Decodes `config.json` bytes: a bare `CLIPTextConfig`, or a `CLIPConfig` whose `text_config` object is taken
    /// (as `CLIPTextConfig.from_pretrained` does; its `text_config_dict`, if any, is ignored there too). The result
    /// is validated; errors name `source`.
    public static func decode(_ data: Data, source: String = "config.json") throws -> CLIPTextConfig {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw TorchError("cannot read CLIP config \(source): not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = object as? [String: Any] else {
            throw TorchError("cannot read CLIP config \(source): expected a JSON object")
        }
        var text = dict
        if let nested = dict["text_config"] {
            guard let nested = nested as? [String: Any] else {
                throw TorchError("cannot read CLIP config \(source): text_config is not an object")
            }
            text = nested
        }
        let config: CLIPTextConfig
        do {
            config = try JSONDecoder().decode(CLIPTextConfig.self,
                                              from: try JSONSerialization.data(withJSONObject: text))
        } catch {
            throw TorchError("cannot read CLIP config \(source): \(error)")
        }
        do { try config.validate() } catch let error as TorchError { throw TorchError("\(source): \(error.message)") }
        return config
    }

    /// Reads a Hugging Face `config.json` (see `decode`), with an error naming the file when it is absent or bad.
    public static func load(_ url: URL) throws -> CLIPTextConfig {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("CLIP config \(url.path) does not exist")
        }
        return try decode(try Data(contentsOf: url), source: url.path)
    }

    /// The width of one attention head.
    public var headDim: Int { hiddenSize / max(numAttentionHeads, 1) }

    /// Throws a clear error when the sizes cannot make a model.
    public func validate() throws {
        func fail(_ why: String) -> TorchError { TorchError("invalid CLIP text config: \(why)") }
        guard vocabSize > 0, hiddenSize > 0, intermediateSize > 0, numHiddenLayers >= 0, numAttentionHeads > 0,
              maxPositionEmbeddings > 0 else {
            throw fail("sizes must be positive (vocab_size \(vocabSize), hidden_size \(hiddenSize), intermediate_size "
                           + "\(intermediateSize), num_hidden_layers \(numHiddenLayers), num_attention_heads "
                           + "\(numAttentionHeads), max_position_embeddings \(maxPositionEmbeddings))")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw fail("hidden_size (\(hiddenSize)) must be divisible by num_attention_heads (\(numAttentionHeads))")
        }
        guard layerNormEps > 0 else { throw fail("layer_norm_eps must be positive, got \(layerNormEps)") }
        guard ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh"].contains(hiddenAct) else {
            throw fail("hidden_act '\(hiddenAct)' is not supported")
        }
        guard (0..<vocabSize).contains(eosTokenID) else {
            throw fail("eos_token_id \(eosTokenID) is outside the vocabulary (vocab_size \(vocabSize))")
        }
    }

    /// The number of parameters of `CLIPTextModel(config)`: token and position embeddings, the layers (four
    /// width² projections with biases, two LayerNorms, the two MLP linears) and `final_layer_norm`.
    public var parameterCount: Int {
        let h = hiddenSize, m = intermediateSize
        let layer = 4 * (h * h + h) + 2 * (2 * h) + (h * m + m) + (m * h + h)
        return (vocabSize + maxPositionEmbeddings) * h + numHiddenLayers * layer + 2 * h
    }
}
