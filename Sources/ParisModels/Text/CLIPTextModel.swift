import Foundation
import Torch

/// One pre-LayerNorm CLIP encoder layer (`CLIPEncoderLayer`): x += out_proj(attn(layer_norm1(x))) with separate
/// `self_attn.{q,k,v}_proj`, then x += mlp.fc2(act(mlp.fc1(layer_norm2(x)))).
public final class CLIPEncoderLayer: Module {
    public let numHeads: Int, headDim: Int
    public let qProj: Linear, kProj: Linear, vProj: Linear, outProj: Linear
    public let layerNorm1: LayerNorm, layerNorm2: LayerNorm
    public let fc1: Linear, fc2: Linear
    public let activation: String
    public var isTraining = true

    public init(_ config: CLIPTextConfig, dtype: DType = .float32, device: Device = .cpu) throws {
        try config.validate()
        let h = config.hiddenSize
        numHeads = config.numAttentionHeads
        headDim = h / config.numAttentionHeads
        kProj = try Linear(h, h, dtype: dtype, device: device)
        vProj = try Linear(h, h, dtype: dtype, device: device)
        qProj = try Linear(h, h, dtype: dtype, device: device)
        outProj = try Linear(h, h, dtype: dtype, device: device)
        layerNorm1 = try LayerNorm(h, eps: config.layerNormEps, dtype: dtype, device: device)
        fc1 = try Linear(h, config.intermediateSize, dtype: dtype, device: device)
        fc2 = try Linear(config.intermediateSize, h, dtype: dtype, device: device)
        layerNorm2 = try LayerNorm(h, eps: config.layerNormEps, dtype: dtype, device: device)
        activation = config.hiddenAct
    }

    public var children: [(String, any Module)] {
        [("self_attn.k_proj", kProj), ("self_attn.v_proj", vProj), ("self_attn.q_proj", qProj),
         ("self_attn.out_proj", outProj), ("layer_norm1", layerNorm1), ("mlp.fc1", fc1), ("mlp.fc2", fc2),
         ("layer_norm2", layerNorm2)]
    }

    /// x: [B, T, C], keep: [B, 1, T, T] bool (causal and padding) → [B, T, C]
    public func callAsFunction(_ x: Tensor, keep: Tensor) throws -> Tensor {
        let b = x.size(0), t = x.size(1), c = x.size(2)
        func heads(_ y: Tensor) throws -> Tensor { try y.reshape([b, t, numHeads, headDim]).transpose(1, 2) }
        let n = try layerNorm1(x)
        let attended = try scaledDotProductAttention(query: heads(qProj(n)), key: heads(kProj(n)),
                                                     value: heads(vProj(n)), mask: keep)  // [B, H, T, D]
        let h = try x + outProj(try attended.transpose(1, 2).reshape([b, t, c]))  // [B, T, C]
        let m = try fc1(layerNorm2(h))  // [B, T, intermediate]
        let a: Tensor
        switch activation {
        case "quick_gelu": a = try m * (m * 1.702).sigmoid()
        case "gelu": a = try m.gelu()
        default: a = try m.gelu(approximateTanh: true)
        }
        return try h + fc2(a)
    }
}

/// CLIP's text tower (Hugging Face's `CLIPTextModel`): token + position embeddings, causal pre-LN layers under
/// `encoder.layers.N`, `final_layer_norm`; the pooled output is the state at the end-of-text token. Keys
/// `embeddings.token_embedding.weight`, `embeddings.position_embedding.weight`, `encoder.layers.N.*`,
/// `final_layer_norm.*`; `load` also accepts the `text_model.` prefix of older checkpoints and of `CLIPModel`.
public final class CLIPTextModel: Module {
    public let config: CLIPTextConfig
    public let tokenEmbedding: Embedding
    public let positionEmbedding: Embedding
    public let layers: [CLIPEncoderLayer]
    public let finalLayerNorm: LayerNorm
    public var isTraining = true

    public init(_ config: CLIPTextConfig, dtype: DType = .float32, device: Device = .cpu) throws {
        try config.validate()
        self.config = config
        tokenEmbedding = try Embedding(config.vocabSize, config.hiddenSize, dtype: dtype, device: device)
        positionEmbedding = try Embedding(config.maxPositionEmbeddings, config.hiddenSize, dtype: dtype, device: device)
        layers = try (0..<config.numHiddenLayers).map { _ in try CLIPEncoderLayer(config, dtype: dtype, device: device) }
        finalLayerNorm = try LayerNorm(config.hiddenSize, eps: config.layerNormEps, dtype: dtype, device: device)
    }

    public var children: [(String, any Module)] {
        [("embeddings.token_embedding", tokenEmbedding), ("embeddings.position_embedding", positionEmbedding)]
            + layers.enumerated().map { ("encoder.layers.\($0)", $1) } + [("final_layer_norm", finalLayerNorm)]
    }

    /// ids: [B, T] int64, mask: [B, T] (1 on real tokens) or nil → (last hidden state [B, T, C], pooled [B, C])
    public func callAsFunction(_ ids: Tensor, mask: Tensor? = nil) throws -> (hidden: Tensor, pooled: Tensor) {
        guard ids.rank == 2 else { throw TorchError("CLIPTextModel expects token ids [B, T], got \(ids.shape)") }
        let b = ids.size(0), t = ids.size(1)
        guard t <= config.maxPositionEmbeddings else {
            throw TorchError("CLIPTextModel: \(t) tokens exceed max_position_embeddings (\(config.maxPositionEmbeddings))")
        }
        let positions = try Tensor.arange(0, Double(t), dtype: .int64, device: ids.device)  // [T]
        var x = try tokenEmbedding(ids) + positionEmbedding(positions)  // [B, T, C]
        var keep = try Tensor.ones([t, t], dtype: .bool, device: ids.device).tril().reshape([1, 1, t, t])  // causal
        if let mask { keep = try keep.logicalAnd(try mask.ne(0).reshape([b, 1, 1, t])) }  // [B, 1, T, T]
        for layer in layers { x = try layer(x, keep: keep) }
        let hidden = try finalLayerNorm(x)  // [B, T, C]
        let eos = config.eosTokenID == 2
            ? try ids.argmax(dim: -1)
            : try ids.eq(Double(config.eosTokenID)).to(dtype: .int32).argmax(dim: -1)  // [B]: first end-of-text
        let index = try eos.reshape([b, 1, 1]).expand([b, 1, hidden.size(2)])
        return (hidden, try hidden.gather(dim: 1, index: index).squeeze(1))  // [B, T, C], [B, C]
    }

    /// Builds the model for `config` and loads a `transformers` `model.safetensors` strictly (a `text_model.`
    /// prefix is removed; with a full `CLIPModel` checkpoint only the text tower's keys are taken).
    public static func load(from url: URL, config: CLIPTextConfig, device: Device = .cpu) throws -> CLIPTextModel {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("CLIP weights \(url.path) do not exist")
        }
        var dict = try SafeTensors.load(url).tensors
        if dict.keys.contains(where: { $0.hasPrefix("text_model.") }) {
            dict = Dictionary(uniqueKeysWithValues: dict.compactMap { k, v in
                k.hasPrefix("text_model.") ? (String(k.dropFirst("text_model.".count)), v) : nil
            })
        }
        dict["embeddings.position_ids"] = nil
        let model = try CLIPTextModel(config, device: device)
        do { try model.loadStateDict(dict) } catch let error as TorchError {
            throw TorchError("\(url.path): \(error.message)")
        }
        model.eval()
        return model
    }
}

extension CLIPTextModel {
    /// The prompt of the unconditional branch of classifier-free guidance in Paris: the empty string, whose ids are
    /// `<|startoftext|> <|endoftext|>` followed by 75 `<|endoftext|>` pads.
    public static let unconditionalPrompt = ""

    /// The text conditioning of the released Paris experts: CLIP's last hidden state (after `final_layer_norm`),
    /// [B, T, C] with T = `tokenizer.maxLength` (77) and C = `hidden_size` (768 for ViT-L/14), for `prompts`.
    ///
    /// As the release computes it (transformers' `CLIPTokenizer(prompt, max_length=77, padding="max_length",
    /// truncation=True)`, then `CLIPTextModel(input_ids).last_hidden_state`):
    /// - every prompt is padded with `<|endoftext|>` to T tokens, and a longer one is truncated to
    ///   `<|startoftext|>`, its first T − 2 tokens, `<|endoftext|>`;
    /// - **no attention mask** is given: only the causal mask applies, so the padding positions attend to the
    ///   prompt and carry their own states, which the experts' cross-attention sees;
    /// - the empty string (`unconditionalPrompt`) gives the unconditional embedding.
    ///
    /// Runs `batchSize` prompts at a time without autograd, on the model's device and in its dtype. Throws when the
    /// tokenizer's ids do not fit the model's `vocab_size`, or its length exceeds `max_position_embeddings`.
    public func encodePrompts(_ prompts: [String], tokenizer: CLIPTokenizer, batchSize: Int = 64) throws -> Tensor {
        guard batchSize > 0 else { throw TorchError("encodePrompts: batchSize must be positive, got \(batchSize)") }
        guard tokenizer.highestID < config.vocabSize else {
            throw TorchError("encodePrompts: the tokenizer has ids up to \(tokenizer.highestID), beyond the model's "
                                 + "vocab_size (\(config.vocabSize))")
        }
        guard tokenizer.maxLength <= config.maxPositionEmbeddings else {
            throw TorchError("encodePrompts: the tokenizer's \(tokenizer.maxLength) tokens exceed the model's "
                                 + "max_position_embeddings (\(config.maxPositionEmbeddings))")
        }
        let weight = tokenEmbedding.weight
        guard !prompts.isEmpty else {
            return try Tensor.zeros([0, tokenizer.maxLength, config.hiddenSize], dtype: weight.dtype,
                                    device: weight.device)
        }
        var out: [Tensor] = []
        try withNoGrad {
            for start in stride(from: 0, to: prompts.count, by: batchSize) {
                let batch = Array(prompts[start..<min(start + batchSize, prompts.count)])
                let (ids, _) = try tokenizer.encode(batch, device: weight.device)  // [b, T]; the mask is not used
                out.append(try self(ids).hidden)  // [b, T, C]
            }
        }
        return out.count == 1 ? out[0] : try Tensor.cat(out, dim: 0)
    }
}
