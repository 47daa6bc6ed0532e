import Foundation
import Torch

/// The hyper-parameters of a BERT encoder (Hugging Face's `BertConfig`), decoded from a `config.json` with its
/// snake_case keys (`vocab_size`, `hidden_size`, ...). The defaults are sentence-transformers/all-MiniLM-L6-v2's:
/// 6 layers of width 384, 12 heads, a 1536-wide MLP, exact GELU, 512 positions, a 30522-token uncased vocabulary.
public struct MiniLMConfig: Codable, Equatable, Hashable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Double
    /// The MLP activation: "gelu" (exact, erf), "gelu_new"/"gelu_pytorch_tanh" (tanh approximation) or "relu".
    public var hiddenAct: String
    /// Dropout after the embeddings and every sub-layer, in training mode only.
    public var hiddenDropoutProb: Double
    /// Dropout on the attention probabilities, in training mode only.
    public var attentionProbsDropoutProb: Double

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", hiddenAct = "hidden_act", hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob"
    }

    public init(vocabSize: Int = 30522, hiddenSize: Int = 384, numHiddenLayers: Int = 6, numAttentionHeads: Int = 12,
                intermediateSize: Int = 1536, maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2,
                layerNormEps: Double = 1e-12, hiddenAct: String = "gelu", hiddenDropoutProb: Double = 0.1,
                attentionProbsDropoutProb: Double = 0.1) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.hiddenAct = hiddenAct
        self.hiddenDropoutProb = hiddenDropoutProb
        self.attentionProbsDropoutProb = attentionProbsDropoutProb
    }

    /// Decodes a config, taking the default for every key that is absent (other keys of `config.json` are ignored).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = MiniLMConfig()
        self.init(
            vocabSize: try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize,
            hiddenSize: try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize,
            numHiddenLayers: try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers,
            numAttentionHeads: try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads,
            intermediateSize: try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize,
            maxPositionEmbeddings: try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
                ?? d.maxPositionEmbeddings,
            typeVocabSize: try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? d.typeVocabSize,
            layerNormEps: try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? d.layerNormEps,
            hiddenAct: try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct,
            hiddenDropoutProb: try c.decodeIfPresent(Double.self, forKey: .hiddenDropoutProb) ?? d.hiddenDropoutProb,
            attentionProbsDropoutProb: try c.decodeIfPresent(Double.self, forKey: .attentionProbsDropoutProb)
                ?? d.attentionProbsDropoutProb)
    }

    /// Reads a Hugging Face `config.json`, throwing an error that names the file when it is absent or malformed.
    public static func load(_ url: URL) throws -> MiniLMConfig {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("BERT config \(url.path) does not exist")
        }
        let config: MiniLMConfig
        do {
            config = try JSONDecoder().decode(MiniLMConfig.self, from: try Data(contentsOf: url))
        } catch {
            throw TorchError("cannot read BERT config \(url.path): \(error)")
        }
        do { try config.validate() } catch let error as TorchError { throw TorchError("\(url.path): \(error.message)") }
        return config
    }

    /// The width of one attention head.
    public var headDim: Int { hiddenSize / max(numAttentionHeads, 1) }

    /// Throws a clear error when the sizes cannot make a model.
    public func validate() throws {
        func fail(_ why: String) -> TorchError { TorchError("invalid BERT config: \(why)") }
        guard vocabSize > 0, hiddenSize > 0, numHiddenLayers >= 0, numAttentionHeads > 0, intermediateSize > 0,
              maxPositionEmbeddings > 0, typeVocabSize > 0 else {
            throw fail("sizes must be positive (vocab_size \(vocabSize), hidden_size \(hiddenSize), num_hidden_layers "
                           + "\(numHiddenLayers), num_attention_heads \(numAttentionHeads), intermediate_size "
                           + "\(intermediateSize), max_position_embeddings \(maxPositionEmbeddings), type_vocab_size "
                           + "\(typeVocabSize))")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw fail("hidden_size (\(hiddenSize)) must be divisible by num_attention_heads (\(numAttentionHeads))")
        }
        guard (0..<1).contains(hiddenDropoutProb), (0..<1).contains(attentionProbsDropoutProb) else {
            throw fail("dropout probabilities must be in [0, 1) (hidden_dropout_prob \(hiddenDropoutProb), "
                           + "attention_probs_dropout_prob \(attentionProbsDropoutProb))")
        }
        guard layerNormEps > 0 else { throw fail("layer_norm_eps must be positive, got \(layerNormEps)") }
        guard Self.activations.contains(hiddenAct) else {
            throw fail("hidden_act '\(hiddenAct)' is not supported (use one of \(Self.activations.sorted()))")
        }
    }

    static let activations: Set<String> = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"]

    /// The number of parameters of `BertModel(config, addPoolingLayer:)`.
    public func parameterCount(addPoolingLayer: Bool = true) -> Int {
        let h = hiddenSize, m = intermediateSize
        let embeddings = (vocabSize + maxPositionEmbeddings + typeVocabSize) * h + 2 * h
        let layer = 4 * (h * h + h) + 2 * h + (h * m + m) + (m * h + h) + 2 * h
        return embeddings + numHiddenLayers * layer + (addPoolingLayer ? h * h + h : 0)
    }
}
