import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// The text encoder and tokenizer of a released Paris folder, by the class `model_index.json` names:
///
/// - `CLIPTextModel` + `CLIPTokenizer` (the bageldotcom/paris release): `text_encoder/config.json` +
///   `model.safetensors`, `tokenizer/vocab.json` + `merges.txt`; CLIP's last hidden state [B, 77, D] with no mask;
/// - `BertModel` + `BertTokenizer` (a run of ours exported by `paris export diffusers`: all-MiniLM-L6-v2):
///   `text_encoder/config.json` + `model.safetensors`, `tokenizer/vocab.txt` (+ `tokenizer_config.json`, whose
///   `model_max_length` is the experts' token length); BERT's last hidden state [B, L, 384] and its padding mask,
///   exactly as `paris sample --run` conditions the experts (`PromptEncoding.miniLM`).
public enum ReleaseTextEncoder {
    case clip(CLIPTextModel, CLIPTokenizer)
    case bert(TextEncoder)

    /// The index's `text_encoder` class of each kind.
    public static let clipClass = "CLIPTextModel", bertClass = "BertModel"

    /// Tokens per prompt (77 for CLIP).
    public var length: Int {
        switch self {
        case .clip(_, let tokenizer): return tokenizer.maxLength
        case .bert(let encoder): return encoder.maxLength
        }
    }

    /// The width of the token states.
    public var width: Int {
        switch self {
        case .clip(let model, _): return model.config.hiddenSize
        case .bert(let encoder): return encoder.dimension
        }
    }

    /// One line for the log.
    public var describe: String {
        switch self {
        case .clip(let model, let tokenizer):
            return "CLIP text encoder: width \(model.config.hiddenSize), \(model.config.numHiddenLayers) layers; "
                + "tokenizer: \(tokenizer.vocabulary.count) tokens, length \(tokenizer.maxLength)"
        case .bert(let encoder):
            return "BERT text encoder: width \(encoder.dimension), \(encoder.config.numHiddenLayers) layers; "
                + "tokenizer: \(encoder.tokenizer.vocabulary.count) tokens, length \(encoder.maxLength)"
        }
    }

    /// prompts → tokens [B, L, D] and, for BERT, the mask [B, L] (true on real tokens); CLIP has none.
    public func encode(_ prompts: [String]) throws -> TextCondition {
        switch self {
        case .clip(let model, let tokenizer):
            return try TextCondition(tokens: try model.encodePrompts(prompts, tokenizer: tokenizer), mask: nil)
        case .bert(let encoder):
            let (tokens, mask) = try encoder.encode(prompts)
            return try TextCondition(tokens: tokens, mask: mask)
        }
    }

    /// The width and length of the BERT folders, read before the weights (so that configs can be checked first).
    struct BertFiles {
        let config: URL, vocabulary: URL, weights: URL
        let width: Int, length: Int
    }

    /// Checks `text_encoder/` and `tokenizer/` of a BERT release without loading weights.
    static func bertFiles(textDir: URL, tokenizerDir: URL) throws -> BertFiles {
        let configURL = try ParisRelease.file(textDir, "config.json")
        let config: MiniLMConfig
        do { config = try MiniLMConfig.load(configURL) } catch { throw EnsembleError("\(configURL.path): \(error)") }
        let vocabulary = try ParisRelease.file(tokenizerDir, "vocab.txt",
                                               hint: "a BertTokenizer folder has vocab.txt (+ tokenizer_config.json)")
        var length = 32
        let tokConfig = tokenizerDir.appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: tokConfig.path),
           let n = try ReleaseJSON.object(tokConfig)["model_max_length"] as? NSNumber,
           n.doubleValue >= 2, n.doubleValue <= Double(config.maxPositionEmbeddings) {
            length = n.intValue
        }
        let weights = try ParisRelease.file(textDir, ParisRelease.textWeights, hint: FileManager.default.fileExists(
            atPath: textDir.appendingPathComponent("pytorch_model.bin").path)
            ? "only pytorch_model.bin is there: save it as safetensors (pickles are not read)" : "")
        return BertFiles(config: configURL, vocabulary: vocabulary, weights: weights, width: config.hiddenSize,
                         length: length)
    }

    /// Loads the BERT encoder checked by `bertFiles`.
    static func loadBert(_ files: BertFiles, device: Device) throws -> ReleaseTextEncoder {
        do {
            return .bert(try TextEncoder(configFile: files.config, vocabularyFile: files.vocabulary,
                                         weightsFile: files.weights, maxLength: files.length, device: device))
        } catch { throw EnsembleError("\(files.weights.deletingLastPathComponent().path): \(error)") }
    }
}
