import Foundation
@testable import ParisModels
import Torch
import XCTest

/// CLIP's text tower and byte-level BPE tokenizer against Hugging Face transformers, on random weights and a small
/// BPE learnt from the sentences (fixtures from scripts/fixtures/text.py: text_clip_tiny, text_clip_vocab.json,
/// text_clip_merges.txt).
final class CLIPTextTests: XCTestCase {
    static let tiny = CLIPTextConfig(vocabSize: 0, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                     numAttentionHeads: 4, maxPositionEmbeddings: 16)

    func tokenizer(maxLength: Int) throws -> CLIPTokenizer {
        guard let vocab = Bundle.module.url(forResource: "text_clip_vocab", withExtension: "json",
                                            subdirectory: "Fixtures"),
              let merges = Bundle.module.url(forResource: "text_clip_merges", withExtension: "txt",
                                             subdirectory: "Fixtures") else {
            throw TorchError("missing fixture text_clip_vocab.json or text_clip_merges.txt")
        }
        return try CLIPTokenizer(vocabularyFile: vocab, mergesFile: merges, maxLength: maxLength)
    }

    func testTokenizerMatchesTransformers() throws {
        let fx = try fixture("text_clip_tiny")
        let full = try tokenizer(maxLength: 1000)
        for (n, sentence) in TextEncoderTests.tokenSentences.enumerated() {
            XCTAssertEqual(full.ids(sentence), try TextEncoderTests.ints(try tensor(fx, "ids.\(n)")),
                           "sentence \(n): \(sentence)")
        }
        let (ids, mask) = try tokenizer(maxLength: 16).encode(TextEncoderTests.tokenSentences)
        XCTAssertEqual(try TextEncoderTests.ints(ids), try TextEncoderTests.ints(try tensor(fx, "ids16")))
        XCTAssertEqual(try TextEncoderTests.ints(mask), try TextEncoderTests.ints(try tensor(fx, "mask16")))
        XCTAssertEqual(CLIPTokenizer.pieces("it's 42 a!!b <|endoftext|>"),
                       ["it", "'s", "4", "2", "a", "!!", "b", "<|endoftext|>"])
        XCTAssertEqual(full.tokenize("a <|endoftext|>").last, "<|endoftext|>")
    }

    func testModelMatchesTransformers() throws {
        let fx = try fixture("text_clip_tiny")
        var sd: [String: Tensor] = [:]
        for (k, v) in fx where k.hasPrefix("sd.") { sd[String(k.dropFirst(3))] = v }
        let tok = try tokenizer(maxLength: 16)
        var config = Self.tiny
        config.vocabSize = try tensor(fx, "sd.embeddings.token_embedding.weight").size(0)
        config.eosTokenID = tok.endID
        let model = try CLIPTextModel(config)
        XCTAssertEqual(Set(model.stateDictKeys()), Set(sd.keys))
        try model.loadStateDict(sd)
        model.eval()
        let (hidden, pooled) = try withNoGrad {
            try model(try tensor(fx, "ids16"), mask: try tensor(fx, "mask16"))
        }
        try assertClose(hidden, try tensor(fx, "hidden"), rtol: 1e-5, atol: 1e-5, "hidden")
        try assertClose(pooled, try tensor(fx, "pooled"), rtol: 1e-5, atol: 1e-5, "pooled")
        assertThrows({ try CLIPTextModel(CLIPTextConfig(hiddenSize: 30, numAttentionHeads: 4)) },
                     contains: "hidden_size (30) must be divisible by num_attention_heads (4)")
    }
}
