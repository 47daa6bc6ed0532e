import Foundation
import FuzzSupport
import ParisModels

/// The committed test vocabulary and merges of the CLIP tokenizer (Tests/ParisModelsTests/Fixtures), found from
/// this file's path, so that the harness tokenizes with the same BPE tables as the unit tests.
let tokenizer: CLIPTokenizer = {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../Tests/ParisModelsTests/Fixtures").standardized
    do {
        return try CLIPTokenizer(vocabularyFile: fixtures.appendingPathComponent("text_clip_vocab.json"),
                                 mergesFile: fixtures.appendingPathComponent("text_clip_merges.txt"), maxLength: 77)
    } catch {
        fatalError("fuzz harness: cannot build the CLIP tokenizer: \(error)")
    }
}()

/// Every id the vocabulary holds.
let knownIDs = Set(tokenizer.vocabulary.values)

/// libFuzzer entry: the bytes are a caption (decoded as UTF-8, invalid sequences replaced, as captions are read
/// from metadata.jsonl), tokenized by `CLIPTokenizer.ids`, the call behind CLIP prompt encoding. A trap, a crash, a
/// hang or running out of memory is a finding; the ids must also stay within the vocabulary and the length.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCLIP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: FuzzInput.bytes(data, size), as: UTF8.self)
    let ids = tokenizer.ids(text)
    guard ids.count >= 2, ids.count <= tokenizer.maxLength, ids.allSatisfy(knownIDs.contains) else {
        fatalError("CLIPTokenizer.ids returned \(ids.count) ids, some unknown, for \(text.debugDescription)")
    }
    return 0
}
