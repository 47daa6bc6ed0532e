import Foundation
import Torch

/// BERT's uncased tokenizer, as Hugging Face's `BertTokenizer` (and `BertTokenizerFast`) with `do_lower_case=True`:
///
/// 1. basic tokenization: control characters, NUL and U+FFFD are removed, whitespace becomes a space, every CJK
///    ideograph becomes a word of its own; then lower-casing, accent stripping (Unicode NFD, combining marks dropped)
///    and splitting on whitespace and punctuation (Unicode categories P* and every ASCII non-alphanumeric symbol);
/// 2. WordPiece: greedy longest-match-first over `vocab.txt`, continuation pieces prefixed with `##`; a word that
///    cannot be covered, or that is longer than 100 characters, becomes `[UNK]`;
/// 3. encoding: `[CLS] pieces… [SEP]`, truncated to `maxLength` (the first `maxLength − 2` pieces are kept) and
///    padded with `[PAD]` to exactly `maxLength`.
///
/// Special-token strings written in the text (`"[CLS]"`) are tokenized as ordinary text, unlike Hugging Face's,
/// which keeps them whole; captions never contain them.
public struct WordPieceTokenizer: Sendable {
    /// Token → id, from `vocab.txt` (id = line number, from 0).
    public let vocabulary: [String: Int]
    /// Pieces are padded or truncated to this many tokens, `[CLS]` and `[SEP]` included.
    public let maxLength: Int
    public let clsID: Int, sepID: Int, padID: Int, unknownID: Int
    /// Longer words become `[UNK]` (Hugging Face's `max_input_chars_per_word`).
    public let maxCharactersPerWord = 100

    /// A tokenizer over `vocabulary`, which must hold `[CLS]`, `[SEP]`, `[PAD]` and `[UNK]`.
    public init(vocabulary: [String: Int], maxLength: Int = 32) throws {
        guard maxLength >= 2 else {
            throw TorchError("WordPieceTokenizer: maxLength must be at least 2 ([CLS] and [SEP]), got \(maxLength)")
        }
        func id(_ token: String) throws -> Int {
            guard let id = vocabulary[token] else {
                throw TorchError("WordPieceTokenizer: the vocabulary has no special token '\(token)'")
            }
            return id
        }
        self.vocabulary = vocabulary
        self.maxLength = maxLength
        clsID = try id("[CLS]")
        sepID = try id("[SEP]")
        padID = try id("[PAD]")
        unknownID = try id("[UNK]")
    }

    /// Loads `vocab.txt` (one token per line; a token's id is its line number).
    public init(vocabularyFile url: URL, maxLength: Int = 32) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("WordPieceTokenizer: vocabulary file \(url.path) does not exist")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TorchError("WordPieceTokenizer: cannot read vocabulary file \(url.path): \(error)")
        }
        var vocabulary: [String: Int] = [:]
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        for (i, line) in lines.enumerated() {
            var token = String(line)
            if token.hasSuffix("\r") { token.removeLast() }
            vocabulary[token] = i  // a repeated token keeps its last line, as transformers' load_vocab
        }
        do { try self.init(vocabulary: vocabulary, maxLength: maxLength) } catch let error as TorchError {
            throw TorchError("\(url.path): \(error.message)")
        }
    }

    /// The pieces of `text` (no special tokens, no truncation), e.g. "T-shirt" → ["t", "-", "shirt"].
    public func tokenize(_ text: String) -> [String] {
        BasicTokenizer.words(text).flatMap(wordPieces)
    }

    /// The ids of `text`: `[CLS] pieces… [SEP]`, truncated to `maxLength`, without padding.
    public func ids(_ text: String) -> [Int] {
        let pieces = tokenize(text).prefix(maxLength - 2).map { vocabulary[$0] ?? unknownID }
        return [clsID] + pieces + [sepID]
    }

    /// Encodes a batch: `ids` [B, maxLength] int64 (padded with `[PAD]`) and `mask` [B, maxLength] int64, 1 on
    /// real tokens and 0 on padding (Hugging Face's `input_ids` and `attention_mask`).
    public func encode(_ texts: [String], device: Device = .cpu) throws -> (ids: Tensor, mask: Tensor) {
        var ids: [Int64] = [], mask: [Int64] = []
        ids.reserveCapacity(texts.count * maxLength)
        mask.reserveCapacity(texts.count * maxLength)
        for text in texts {
            let row = self.ids(text)
            ids += row.map(Int64.init) + Array(repeating: Int64(padID), count: maxLength - row.count)
            mask += Array(repeating: 1, count: row.count) + Array(repeating: 0, count: maxLength - row.count)
        }
        let shape = [texts.count, maxLength]
        return (try Tensor(ids, shape: shape).to(device: device), try Tensor(mask, shape: shape).to(device: device))
    }

    /// Greedy longest-match-first WordPiece split of one basic token.
    func wordPieces(_ word: String) -> [String] {
        let scalars = Array(word.unicodeScalars)
        if scalars.count > maxCharactersPerWord { return ["[UNK]"] }
        var pieces: [String] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: String?
            while start < end {
                var candidate = String(String.UnicodeScalarView(scalars[start..<end]))
                if start > 0 { candidate = "##" + candidate }
                if vocabulary[candidate] != nil {
                    found = candidate
                    break
                }
                end -= 1
            }
            guard let found else { return ["[UNK]"] }
            pieces.append(found)
            start = end
        }
        return pieces
    }
}

/// BERT's basic tokenization (Hugging Face's `BasicTokenizer` with `do_lower_case` and `strip_accents` on).
enum BasicTokenizer {
    /// The lower-cased, accent-stripped words and punctuation marks of `text`.
    static func words(_ text: String) -> [String] {
        // Clean: drop NUL, U+FFFD and control characters; whitespace becomes a space; CJK ideographs stand alone.
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || isControl(s) { continue }
            if isWhitespace(s) {
                cleaned.append(" ")
            } else if isCJK(s) {
                cleaned.append(" ")
                cleaned.append(s)
                cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        var out: [String] = []
        for token in String(cleaned).unicodeScalars.split(whereSeparator: isSplitWhitespace).map(String.init) {
            let normalized = stripAccents(token.lowercased())
            // Split off every punctuation mark as a word of its own.
            var current = String.UnicodeScalarView()
            for s in normalized.unicodeScalars {
                if isPunctuation(s) {
                    if !current.isEmpty { out.append(String(current)) }
                    current = String.UnicodeScalarView()
                    out.append(String(s))
                } else if isSplitWhitespace(s) {  // as Python's str.split() after the punctuation split
                    if !current.isEmpty { out.append(String(current)) }
                    current = String.UnicodeScalarView()
                } else {
                    current.append(s)
                }
            }
            if !current.isEmpty { out.append(String(current)) }
        }
        return out
    }

    /// NFD, then every nonspacing mark (category Mn) removed: "café" → "cafe".
    static func stripAccents(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for s in text.decomposedStringWithCanonicalMapping.unicodeScalars
        where s.properties.generalCategory != .nonspacingMark {
            out.append(s)
        }
        return String(out)
    }

    /// Space, tab, newline, carriage return, and category Zs.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        if s == " " || s == "\t" || s == "\n" || s == "\r" { return true }
        return s.properties.generalCategory == .spaceSeparator
    }

    /// What Python's `str.split()` splits on among the characters that survive cleaning: spaces plus the line and
    /// paragraph separators (categories Zl, Zp).
    static func isSplitWhitespace(_ s: Unicode.Scalar) -> Bool {
        if isWhitespace(s) { return true }
        let c = s.properties.generalCategory
        return c == .lineSeparator || c == .paragraphSeparator
    }

    /// Categories C* except tab, newline and carriage return (which count as whitespace).
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// ASCII non-alphanumeric symbols (`$`, `+`, `^`, `` ` ``… which Unicode does not file under P) and categories P*.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
            return true
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// The CJK Unified Ideographs blocks (and their extensions and compatibility blocks), as BERT defines them.
    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }
}
