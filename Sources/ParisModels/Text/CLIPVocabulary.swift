import CZlib
import Foundation
import Torch

/// CLIP's byte-level BPE vocabulary as OpenAI ships it: `bpe_simple_vocab_16e6.txt.gz`, a gzip of a header line and
/// one merge ("a b") per line, in priority order. The vocabulary is derived from it exactly as CLIP's
/// `SimpleTokenizer` (OpenAI's clip and open_clip) derives it, which is also how the released Hugging Face files of
/// openai/clip-vit-large-patch14 (`vocab.json`, `merges.txt`) are laid out:
///
/// - ids 0…255: the 256 byte characters of GPT-2's `bytes_to_unicode`, in its order (`!`…`~`, `¡`…`¬`, `®`…`ÿ`,
///   then the remapped bytes from U+0100);
/// - ids 256…511: the same characters with `</w>` (end of word);
/// - ids 512…49,405: the concatenation of each of the first 48,894 merges (lines 1…48,894 after the header);
/// - 49,406 `<|startoftext|>`, 49,407 `<|endoftext|>`: 49,408 tokens in all.
///
/// The file is carried by the pinned PyPI wheel `clip-anytorch` (`PyPIPackage.clipBPE`, `Pretrained.clipBPEFile`).
public struct CLIPVocabulary: Sendable {
    /// The merges CLIP uses: 49,152 − 256 − 2.
    public static let mergeCount = 49152 - 256 - 2
    /// The vocabulary size that follows: 2 · 256 + 48,894 + 2 = 49,408.
    public static let size = 2 * 256 + mergeCount + 2
    public static let startToken = "<|startoftext|>", endToken = "<|endoftext|>"

    /// Symbol → id.
    public let vocabulary: [String: Int]
    /// The symbols in id order.
    public let tokens: [String]
    /// The merges in priority order, each "a b".
    public let merges: [String]

    /// Derives the vocabulary from the merges text (the decompressed file): the header line is skipped and the next
    /// `mergeCount` lines are the merges. A file with fewer merges, or a merge line that is not two symbols, is an
    /// error naming `source` and the line.
    public init(bpeText text: String, mergeCount: Int = CLIPVocabulary.mergeCount, source: String = "<memory>") throws {
        var merges: [String] = [], joined: [String] = []
        merges.reserveCapacity(mergeCount)
        joined.reserveCapacity(mergeCount)
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            if lineNumber == 1 { continue }  // "#version: 0.2" header
            if merges.count == mergeCount { break }
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            let parts = trimmed.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2 else {
                if trimmed.isEmpty && merges.count < mergeCount {
                    throw TorchError("\(source): has \(merges.count) merges, expected \(mergeCount) (the file ends "
                                         + "early at line \(lineNumber))")
                }
                throw TorchError("\(source): line \(lineNumber) is not a pair of symbols: '\(trimmed.prefix(80))'")
            }
            let (a, b) = (String(parts[0]), String(parts[1]))
            merges.append(a + " " + b)
            joined.append(a + b)
        }
        guard merges.count == mergeCount else {
            throw TorchError("\(source): has \(merges.count) merges, expected \(mergeCount)")
        }
        let base = CLIPTokenizer.byteCharacterOrder.map { String($0) }
        var tokens = base + base.map { $0 + "</w>" }
        tokens += joined + [Self.startToken, Self.endToken]
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        self.tokens = tokens
        self.merges = merges
        self.vocabulary = vocabulary
    }

    /// Reads `bpe_simple_vocab_16e6.txt.gz` (or the same text uncompressed, when the name does not end in `.gz`).
    /// A missing, truncated or corrupt file is an error naming it.
    public init(bpeFile url: URL, mergeCount: Int = CLIPVocabulary.mergeCount) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("CLIP BPE vocabulary \(url.path) does not exist")
        }
        let data = try Data(contentsOf: url)
        let bytes = url.pathExtension == "gz" ? try Self.gunzip(Array(data), name: url.path) : Array(data)
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw TorchError("\(url.path): the BPE merges are not valid UTF-8")
        }
        try self.init(bpeText: text, mergeCount: mergeCount, source: url.path)
    }

    /// Writes `vocab.json` (symbol → id) and `merges.txt` (`#version: 0.2`, then one merge per line), the layout of
    /// Hugging Face's CLIP tokenizer files, which `CLIPTokenizer(vocabularyFile:mergesFile:)` reads back.
    public func write(vocabularyFile: URL, mergesFile: URL) throws {
        let json = try JSONSerialization.data(withJSONObject: vocabulary, options: [.sortedKeys])
        try json.write(to: vocabularyFile, options: .atomic)
        try Data(("#version: 0.2\n" + merges.map { $0 + "\n" }.joined()).utf8).write(to: mergesFile, options: .atomic)
    }

    /// Inflates a whole gzip stream through the system zlib; a truncated or corrupt stream is an error naming `name`.
    static func gunzip(_ input: [UInt8], name: String) throws -> [UInt8] {
        guard !input.isEmpty else { throw TorchError("\(name): empty file, not gzip data") }
        var stream = z_stream()
        guard czlib_inflate_init_gzip(&stream) == Z_OK else { throw TorchError("\(name): zlib init failed") }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3)
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        var input = input
        try input.withUnsafeMutableBufferPointer { inp in
            stream.next_in = inp.baseAddress
            stream.avail_in = UInt32(inp.count)
            while true {
                var status: Int32 = Z_OK
                let produced: Int = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(chunk)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return chunk - Int(stream.avail_out)
                }
                output.append(contentsOf: buffer[0..<produced])
                if status == Z_STREAM_END { return }
                if status == Z_BUF_ERROR || (status == Z_OK && stream.avail_in == 0 && produced < chunk) {
                    throw TorchError("\(name): truncated gzip data (the stream ends early)")
                }
                guard status == Z_OK else {
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw TorchError("\(name): corrupt gzip data (\(message))")
                }
            }
        }
        return output
    }
}

extension CLIPTokenizer {
    /// A tokenizer over CLIP's own BPE file (`bpe_simple_vocab_16e6.txt.gz`, see `CLIPVocabulary`), with the special
    /// tokens of openai/clip-vit-large-patch14's tokenizer: `<|startoftext|>` … `<|endoftext|>`, padded with
    /// `<|endoftext|>` (which is also the unknown token).
    public init(bpeFile: URL, maxLength: Int = 77) throws {
        let vocabulary = try CLIPVocabulary(bpeFile: bpeFile)
        try self.init(vocabulary: vocabulary, maxLength: maxLength)
    }

    /// A tokenizer over a derived CLIP vocabulary.
    public init(vocabulary: CLIPVocabulary, maxLength: Int = 77) throws {
        try self.init(vocabulary: vocabulary.vocabulary, merges: vocabulary.merges, maxLength: maxLength)
    }
}
