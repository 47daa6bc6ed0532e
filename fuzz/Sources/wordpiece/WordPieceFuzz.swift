import FuzzSupport
import ParisModels

/// The vocabulary: the special tokens, ASCII letters and digits as words and as `##` continuations, a few whole
/// words and pieces, and non-ASCII pieces (accented, CJK), so that greedy longest-match takes every branch.
let tokenizer: WordPieceTokenizer = {
    var tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "##s", "##ing", "t", "-",
                  "shirt", "un", "##believ", "##able", "é", "##é", "日", "本", "!", ".", "'", "##'", "é", "x"]
    for c in "abcdefghijklmnopqrstuvwxyz0123456789" { tokens += [String(c), "##\(c)"] }
    let url = FuzzInput.file(Array(tokens.joined(separator: "\n").utf8) + [10], named: "vocab.txt")
    do { return try WordPieceTokenizer(vocabularyFile: url, maxLength: 32) } catch {
        fatalError("fuzz harness: cannot build the WordPiece tokenizer: \(error)")
    }
}()

/// Every id the vocabulary holds.
let knownIDs = Set(tokenizer.vocabulary.values)

/// libFuzzer entry: the bytes are a caption (decoded as UTF-8, invalid sequences replaced, as captions are read
/// from metadata.jsonl), tokenized by `WordPieceTokenizer.ids`, the call behind MiniLM prompt encoding. A trap, a
/// crash, a hang or running out of memory is a finding; the ids must also stay within the vocabulary and the length.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWordPiece(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: FuzzInput.bytes(data, size), as: UTF8.self)
    let ids = tokenizer.ids(text)
    guard ids.count >= 2, ids.count <= tokenizer.maxLength, ids.allSatisfy(knownIDs.contains) else {
        fatalError("WordPieceTokenizer.ids returned \(ids.count) ids out of range for \(text.debugDescription)")
    }
    return 0
}
