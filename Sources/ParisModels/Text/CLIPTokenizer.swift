import Foundation
import Torch

/// CLIP's byte-level BPE tokenizer, as Hugging Face's `CLIPTokenizer` (transformers 5, backed by `tokenizers`):
///
/// 1. normalisation: Unicode NFC, every run of whitespace becomes one space, lower-casing;
/// 2. pre-tokenization: the text is cut into `<|startoftext|>`, `<|endoftext|>`, the contractions `'s 't 're 've 'm
///    'll 'd`, runs of letters (\p{L}+), single digits (\p{N}) and runs of other non-space characters; each piece's
///    UTF-8 bytes are mapped to printable characters (GPT-2's `bytes_to_unicode`);
/// 3. BPE with `merges.txt` (lowest rank first) over the piece's characters, the last one suffixed `</w>`; a symbol
///    missing from `vocab.json` becomes the unknown token (`<|endoftext|>`);
/// 4. `<|startoftext|> … <|endoftext|>`, truncated to `maxLength` and padded with the pad token (`<|endoftext|>`).
///
/// `<|startoftext|>` and `<|endoftext|>` written in the text become their own ids, as Hugging Face's added tokens
/// (except right after a run of punctuation, which the split pattern joins them to).
public struct CLIPTokenizer: Sendable {
    /// Symbol → id, from `vocab.json`.
    public let vocabulary: [String: Int]
    /// Merge ranks: "a b" → rank (the line number among the merges, from 0).
    let ranks: [String: Int]
    /// Tokens per text, `<|startoftext|>` and `<|endoftext|>` included: longer texts are truncated to
    /// `<|startoftext|>`, their first `maxLength − 2` tokens, `<|endoftext|>` (as transformers' `truncation=True`).
    public let maxLength: Int
    public let startID: Int, endID: Int, padID: Int, unknownID: Int
    /// The largest id in the vocabulary (a model needs `vocab_size` above it).
    public let highestID: Int

    /// A tokenizer from a vocabulary and merges ("a b" pairs, in priority order).
    public init(vocabulary: [String: Int], merges: [String], maxLength: Int = 77, startToken: String = "<|startoftext|>",
                endToken: String = "<|endoftext|>", padToken: String = "<|endoftext|>",
                unknownToken: String = "<|endoftext|>") throws {
        guard maxLength >= 2 else { throw TorchError("CLIPTokenizer: maxLength must be at least 2, got \(maxLength)") }
        func id(_ token: String) throws -> Int {
            guard let id = vocabulary[token] else {
                throw TorchError("CLIPTokenizer: the vocabulary has no special token '\(token)'")
            }
            return id
        }
        self.vocabulary = vocabulary
        highestID = vocabulary.values.max() ?? -1
        var ranks: [String: Int] = [:]
        for (i, merge) in merges.enumerated() where ranks[merge] == nil { ranks[merge] = i }
        self.ranks = ranks
        self.maxLength = maxLength
        startID = try id(startToken)
        endID = try id(endToken)
        padID = try id(padToken)
        unknownID = try id(unknownToken)
    }

    /// Loads `vocab.json` and `merges.txt` (an optional `#version` first line, then one "a b" pair per line).
    public init(vocabularyFile: URL, mergesFile: URL, maxLength: Int = 77) throws {
        for url in [vocabularyFile, mergesFile] where !FileManager.default.fileExists(atPath: url.path) {
            throw TorchError("CLIPTokenizer: \(url.path) does not exist")
        }
        let vocabulary: [String: Int]
        do {
            vocabulary = try JSONDecoder().decode([String: Int].self, from: Data(contentsOf: vocabularyFile))
        } catch {
            throw TorchError("CLIPTokenizer: cannot read vocabulary \(vocabularyFile.path): \(error)")
        }
        let text = String(decoding: try Data(contentsOf: mergesFile), as: UTF8.self)
        var merges: [String] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            if i == 0 && trimmed.hasPrefix("#version") { continue }
            guard trimmed.split(separator: " ").count == 2 else {
                throw TorchError("CLIPTokenizer: \(mergesFile.path) line \(i + 1) is not a pair of symbols: '\(trimmed)'")
            }
            merges.append(String(trimmed))
        }
        do { try self.init(vocabulary: vocabulary, merges: merges, maxLength: maxLength) } catch let e as TorchError {
            throw TorchError("\(vocabularyFile.path): \(e.message)")
        }
    }

    /// The BPE symbols of `text`, without special tokens: "a photo" → ["a</w>", "photo</w>"] (with a full vocabulary).
    public func tokenize(_ text: String) -> [String] {
        Self.pieces(Self.normalize(text)).flatMap { piece -> [String] in
            if Self.specialTokens.contains(piece) && vocabulary[piece] != nil { return [piece] }
            return bpe(piece.utf8.map { String(Self.byteCharacters[Int($0)]) })
        }
    }

    /// `<|startoftext|> ids… <|endoftext|>`, truncated to `maxLength`, without padding.
    public func ids(_ text: String) -> [Int] {
        [startID] + tokenize(text).prefix(maxLength - 2).map { vocabulary[$0] ?? unknownID } + [endID]
    }

    /// `ids` [B, maxLength] int64 padded with the pad token, and `mask` [B, maxLength] int64 (1 on real tokens).
    public func encode(_ texts: [String], device: Device = .cpu) throws -> (ids: Tensor, mask: Tensor) {
        var ids: [Int64] = [], mask: [Int64] = []
        for text in texts {
            let row = self.ids(text)
            ids += row.map(Int64.init) + Array(repeating: Int64(padID), count: maxLength - row.count)
            mask += Array(repeating: 1, count: row.count) + Array(repeating: 0, count: maxLength - row.count)
        }
        let shape = [texts.count, maxLength]
        return (try Tensor(ids, shape: shape).to(device: device), try Tensor(mask, shape: shape).to(device: device))
    }

    /// Merges the lowest-ranked adjacent pair until none is in the merges; the last symbol carries `</w>`.
    func bpe(_ characters: [String]) -> [String] {
        guard !characters.isEmpty else { return [] }
        var word = characters
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<(word.count - 1) {
                if let r = ranks[word[i] + " " + word[i + 1]], r < (best?.rank ?? Int.max) { best = (r, i) }
            }
            guard let best else { break }
            let first = word[best.index], second = word[best.index + 1]
            var merged: [String] = []
            var i = 0
            while i < word.count {
                if i < word.count - 1 && word[i] == first && word[i + 1] == second {
                    merged.append(first + second)
                    i += 2
                } else {
                    merged.append(word[i])
                    i += 1
                }
            }
            word = merged
        }
        return word
    }

    static let specialTokens: Set<String> = ["<|startoftext|>", "<|endoftext|>"]

    /// NFC, whitespace runs → one space, lower-case.
    static func normalize(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var inSpace = false
        for s in text.precomposedStringWithCanonicalMapping.unicodeScalars {
            if s.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
            } else {
                out.append(s)
                inSpace = false
            }
        }
        return String(out).lowercased()
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// The matches of CLIP's split pattern
    /// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`, in order.
    static func pieces(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        func startsWith(_ literal: String, at i: Int) -> Bool {
            let l = Array(literal.unicodeScalars)
            return i + l.count <= s.count && Array(s[i..<(i + l.count)]) == l
        }
        func take(_ n: Int) {
            out.append(String(String.UnicodeScalarView(s[i..<(i + n)])))
            i += n
        }
        scan: while i < s.count {
            for literal in ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
            where startsWith(literal, at: i) {
                take(literal.unicodeScalars.count)
                continue scan
            }
            let c = s[i]
            if isLetter(c) {
                var j = i
                while j < s.count && isLetter(s[j]) { j += 1 }
                take(j - i)
            } else if isNumber(c) {
                take(1)
            } else if c.properties.isWhitespace {
                i += 1
            } else {
                var j = i
                while j < s.count && !isLetter(s[j]) && !isNumber(s[j]) && !s[j].properties.isWhitespace { j += 1 }
                take(j - i)
            }
        }
        return out
    }

    /// GPT-2's `bytes_to_unicode`, indexed by byte: printable bytes map to themselves, the others to U+0100 onwards.
    static let byteCharacters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in byteTable { table[b] = c }
        return table
    }()

    /// The 256 byte characters in `bytes_to_unicode`'s order (printable bytes first, then the remapped ones), which is
    /// the order of the first 256 ids of CLIP's vocabulary.
    static let byteCharacterOrder: [Character] = byteTable.map(\.character)

    /// (byte, character) in `bytes_to_unicode`'s order.
    static let byteTable: [(byte: Int, character: Character)] = {
        var bytes = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = bytes
        var n = 0
        for b in 0..<256 where !bytes.contains(b) {
            bytes.append(b)
            codes.append(256 + n)
            n += 1
        }
        return zip(bytes, codes).map { ($0, Character(Unicode.Scalar(UInt32($1))!)) }
    }()
}
