import Foundation
import Torch

/// BERT's input embeddings (Hugging Face's `BertEmbeddings`): word + absolute position + token type (all type 0
/// unless given), then LayerNorm and dropout. Keys `word_embeddings.weight`, `position_embeddings.weight`,
/// `token_type_embeddings.weight`, `LayerNorm.weight`, `LayerNorm.bias`.
public final class BertEmbeddings: Module {
    public let wordEmbeddings: Embedding
    public let positionEmbeddings: Embedding
    public let tokenTypeEmbeddings: Embedding
    public let layerNorm: LayerNorm
    public let dropout: Double
    public var isTraining = true

    public init(_ config: MiniLMConfig, dtype: DType = .float32, device: Device = .cpu) throws {
        let h = config.hiddenSize
        wordEmbeddings = try Embedding(config.vocabSize, h, dtype: dtype, device: device)
        positionEmbeddings = try Embedding(config.maxPositionEmbeddings, h, dtype: dtype, device: device)
        tokenTypeEmbeddings = try Embedding(config.typeVocabSize, h, dtype: dtype, device: device)
        layerNorm = try LayerNorm(h, eps: config.layerNormEps, dtype: dtype, device: device)
        dropout = config.hiddenDropoutProb
    }

    public var children: [(String, any Module)] {
        [("word_embeddings", wordEmbeddings), ("position_embeddings", positionEmbeddings),
         ("token_type_embeddings", tokenTypeEmbeddings), ("LayerNorm", layerNorm)]
    }

    /// ids: [B, T] int64, tokenTypes: [B, T] int64 or nil (all 0) → [B, T, C]
    public func callAsFunction(_ ids: Tensor, tokenTypes: Tensor? = nil) throws -> Tensor {
        let t = ids.size(1)
        guard t <= positionEmbeddings.numEmbeddings else {
            throw TorchError("BERT: \(t) tokens exceed max_position_embeddings (\(positionEmbeddings.numEmbeddings))")
        }
        let positions = try Tensor.arange(0, Double(t), dtype: .int64, device: ids.device)  // [T]
        let types = try tokenTypes ?? Tensor.zeros(ids.shape, dtype: .int64, device: ids.device)  // [B, T]
        let x = try wordEmbeddings(ids) + tokenTypeEmbeddings(types) + positionEmbeddings(positions)  // [B, T, C]
        return try layerNorm(x).dropout(p: dropout, training: isTraining)
    }
}

/// One post-LayerNorm transformer layer (Hugging Face's `BertLayer`): self-attention with separate `query`, `key`,
/// `value` Linears (`attention.self.*`), `attention.output.dense` + residual + `attention.output.LayerNorm`, then the
/// MLP `intermediate.dense` → activation → `output.dense` + residual + `output.LayerNorm`.
public final class BertLayer: Module {
    public let numHeads: Int
    public let headDim: Int
    public let query: Linear, key: Linear, value: Linear
    public let attentionOutput: Linear
    public let attentionLayerNorm: LayerNorm
    public let intermediate: Linear
    public let output: Linear
    public let outputLayerNorm: LayerNorm
    public let activation: String
    public let hiddenDropout: Double
    public let attentionDropout: Double
    public var isTraining = true

    public init(_ config: MiniLMConfig, dtype: DType = .float32, device: Device = .cpu) throws {
        try config.validate()
        let h = config.hiddenSize, m = config.intermediateSize
        numHeads = config.numAttentionHeads
        headDim = config.headDim
        query = try Linear(h, h, dtype: dtype, device: device)
        key = try Linear(h, h, dtype: dtype, device: device)
        value = try Linear(h, h, dtype: dtype, device: device)
        attentionOutput = try Linear(h, h, dtype: dtype, device: device)
        attentionLayerNorm = try LayerNorm(h, eps: config.layerNormEps, dtype: dtype, device: device)
        intermediate = try Linear(h, m, dtype: dtype, device: device)
        output = try Linear(m, h, dtype: dtype, device: device)
        outputLayerNorm = try LayerNorm(h, eps: config.layerNormEps, dtype: dtype, device: device)
        activation = config.hiddenAct
        hiddenDropout = config.hiddenDropoutProb
        attentionDropout = config.attentionProbsDropoutProb
    }

    public var children: [(String, any Module)] {
        [("attention.self.query", query), ("attention.self.key", key), ("attention.self.value", value),
         ("attention.output.dense", attentionOutput), ("attention.output.LayerNorm", attentionLayerNorm),
         ("intermediate.dense", intermediate), ("output.dense", output), ("output.LayerNorm", outputLayerNorm)]
    }

    /// x: [B, T, C], keep: [B, 1, 1, T] bool (true where a key may be attended) or nil → [B, T, C]
    public func callAsFunction(_ x: Tensor, keep: Tensor?) throws -> Tensor {
        let b = x.size(0), t = x.size(1), c = x.size(2)
        func heads(_ y: Tensor) throws -> Tensor {  // [B, T, C] → [B, H, T, D]
            try y.reshape([b, t, numHeads, headDim]).transpose(1, 2)
        }
        let attended = try scaledDotProductAttention(
            query: heads(query(x)), key: heads(key(x)), value: heads(value(x)), mask: keep,
            dropout: isTraining ? attentionDropout : 0)  // [B, H, T, D]
        let merged = try attended.transpose(1, 2).reshape([b, t, c])  // [B, T, C]
        let a = try attentionLayerNorm(try attentionOutput(merged).dropout(p: hiddenDropout, training: isTraining) + x)
        let hidden = try activate(intermediate(a))  // [B, T, intermediate]
        return try outputLayerNorm(try output(hidden).dropout(p: hiddenDropout, training: isTraining) + a)  // [B, T, C]
    }

    func activate(_ x: Tensor) throws -> Tensor {
        switch activation {
        case "relu": return try x.relu()
        case "gelu_new", "gelu_pytorch_tanh": return try x.gelu(approximateTanh: true)
        default: return try x.gelu()
        }
    }
}

/// A BERT encoder (Hugging Face's `BertModel`) with its checkpoint names: `embeddings.*`, `encoder.layer.N.*` and,
/// unless made without it, `pooler.dense` (tanh of a Linear on the first token). all-MiniLM-L6-v2 is one of these.
///
/// `load(from:config:)` reads a `model.safetensors` written by `transformers`, accepting a `bert.` prefix (models
/// saved from a task head) and a checkpoint with or without the pooler, and loads strictly: any other missing or
/// unknown key, or a wrong shape, throws an error naming the file and the keys.
public final class BertModel: Module {
    public let config: MiniLMConfig
    public let embeddings: BertEmbeddings
    public let layers: [BertLayer]
    /// `pooler.dense`, or nil.
    public let pooler: Linear?
    public var isTraining = true

    public init(_ config: MiniLMConfig, addPoolingLayer: Bool = true, dtype: DType = .float32,
                device: Device = .cpu) throws {
        try config.validate()
        self.config = config
        embeddings = try BertEmbeddings(config, dtype: dtype, device: device)
        layers = try (0..<config.numHiddenLayers).map { _ in try BertLayer(config, dtype: dtype, device: device) }
        pooler = addPoolingLayer ? try Linear(config.hiddenSize, config.hiddenSize, dtype: dtype, device: device) : nil
    }

    public var children: [(String, any Module)] {
        var out: [(String, any Module)] = [("embeddings", embeddings)]
        out += layers.enumerated().map { ("encoder.layer.\($0)", $1) }
        if let pooler { out.append(("pooler.dense", pooler)) }
        return out
    }

    /// ids: [B, T] int64, mask: [B, T] (1/true on real tokens) or nil → the last hidden state [B, T, C]
    public func callAsFunction(_ ids: Tensor, mask: Tensor? = nil, tokenTypes: Tensor? = nil) throws -> Tensor {
        guard ids.rank == 2 else { throw TorchError("BertModel expects token ids [B, T], got \(ids.shape)") }
        if let mask, mask.shape != ids.shape {
            throw TorchError("BertModel: attention mask \(mask.shape) does not match the ids \(ids.shape)")
        }
        let keep = try mask.map { try $0.ne(0).unsqueeze(1).unsqueeze(1) }  // [B, 1, 1, T] bool
        var x = try embeddings(ids, tokenTypes: tokenTypes)  // [B, T, C]
        for layer in layers { x = try layer(x, keep: keep) }
        return x
    }

    /// tanh(pooler.dense(first token)): hidden [B, T, C] → [B, C] (BERT's `pooler_output`).
    public func pool(_ hidden: Tensor) throws -> Tensor {
        guard let pooler else { throw TorchError("this BertModel was made without a pooler") }
        return try pooler(try hidden.select(1, 0)).tanh()
    }

    /// The checkpoint's tensors by their `BertModel` names: a common `bert.` prefix is removed and the
    /// `embeddings.position_ids` buffer (saved by older `transformers`) dropped.
    public static func normalizedStateDict(_ tensors: [String: Tensor]) -> [String: Tensor] {
        var dict = tensors
        if !dict.isEmpty, dict.keys.allSatisfy({ $0.hasPrefix("bert.") }) {
            dict = Dictionary(uniqueKeysWithValues: dict.map { (String($0.key.dropFirst(5)), $0.value) })
        }
        dict["embeddings.position_ids"] = nil
        return dict
    }

    /// Builds the model for `config` and loads `url` (a `transformers` `model.safetensors`) strictly; the pooler
    /// exists exactly when the checkpoint has `pooler.dense.weight`. Throws naming the file and every missing,
    /// unknown or mis-shaped key.
    public static func load(from url: URL, config: MiniLMConfig, device: Device = .cpu) throws -> BertModel {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("BERT weights \(url.path) do not exist")
        }
        let dict = normalizedStateDict(try SafeTensors.load(url).tensors)
        let model = try BertModel(config, addPoolingLayer: dict["pooler.dense.weight"] != nil, device: device)
        do { try model.loadStateDict(dict) } catch let error as TorchError {
            throw TorchError("\(url.path): \(error.message)")
        }
        model.eval()
        return model
    }
}
