import Foundation
@testable import ParisModels
import Torch
import XCTest

/// Bad input to CLIP's text side: a missing or corrupt vocabulary, a config that disagrees with the weights or cannot
/// make a model, a tokenizer that does not fit the model. Each is a clear error that names the file or the sizes.
final class CLIPTextErrorTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-errors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func file(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    func testMissingOrCorruptBPEFile() throws {
        assertThrows({ try CLIPVocabulary(bpeFile: self.dir.appendingPathComponent("none.txt.gz")) },
                     contains: "none.txt.gz does not exist")
        assertThrows({ try CLIPVocabulary(bpeFile: try self.file("empty.txt.gz", [])) },
                     contains: "empty.txt.gz: empty file, not gzip data")
        assertThrows({ try CLIPVocabulary(bpeFile: try self.file("text.txt.gz", Array("not gzip at all".utf8))) },
                     contains: "text.txt.gz: corrupt gzip data")
        let real = try Data(contentsOf: try CLIPTextViTL14Tests.bpeFile())
        assertThrows({ try CLIPVocabulary(bpeFile: try self.file("half.txt.gz", Array(real.prefix(real.count / 2)))) },
                     contains: "half.txt.gz: truncated gzip data")
        var flipped = Array(real)
        for i in stride(from: 1000, to: 1100, by: 1) { flipped[i] ^= 0x5A }
        assertThrows({ try CLIPVocabulary(bpeFile: try self.file("flipped.txt.gz", flipped)) },
                     contains: "flipped.txt.gz: corrupt gzip data")
        assertThrows({ try CLIPVocabulary(bpeFile: try self.file("latin1.txt", [0x23, 0x0A, 0xFF, 0x20, 0x61])) },
                     contains: "not valid UTF-8")
    }

    func testTooFewOrMalformedMerges() throws {
        assertThrows({ try CLIPVocabulary(bpeText: "#version: 0.2\nh e\nhe llo\n", source: "short.txt") },
                     contains: "short.txt: has 2 merges, expected 48894")
        assertThrows({ try CLIPVocabulary(bpeText: "#version: 0.2\nh e\na b c\n", source: "bad.txt") },
                     contains: "bad.txt: line 3 is not a pair of symbols: 'a b c'")
        let small = try CLIPVocabulary(bpeText: "#version: 0.2\nh e\nhe llo\nl l\nunused x\n", mergeCount: 3)
        XCTAssertEqual(small.tokens.count, 512 + 3 + 2)
        XCTAssertEqual(small.vocabulary["<|endoftext|>"], 516)
        XCTAssertEqual(small.merges, ["h e", "he llo", "l l"])
    }

    func testMissingOrCorruptVocabJSON() throws {
        let merges = try file("merges.txt", Array("#version: 0.2\n".utf8))
        assertThrows({ try CLIPTokenizer(vocabularyFile: self.dir.appendingPathComponent("vocab.json"),
                                         mergesFile: merges) }, contains: "vocab.json does not exist")
        let bad = try file("vocab.json", Array("{\"a\": 0,".utf8))
        assertThrows({ try CLIPTokenizer(vocabularyFile: bad, mergesFile: merges) },
                     contains: "cannot read vocabulary \(bad.path)")
        let noSpecial = try file("nospecial.json", Array("{\"a</w>\": 0, \"<|startoftext|>\": 1}".utf8))
        assertThrows({ try CLIPTokenizer(vocabularyFile: noSpecial, mergesFile: merges) },
                     contains: "the vocabulary has no special token '<|endoftext|>'")
        let badMerges = try file("badmerges.txt", Array("#version: 0.2\na b\nabc\n".utf8))
        let vocab = try file("ok.json", Array("{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1}".utf8))
        assertThrows({ try CLIPTokenizer(vocabularyFile: vocab, mergesFile: badMerges) },
                     contains: "line 3 is not a pair of symbols: 'abc'")
    }

    func testBadConfigs() throws {
        assertThrows({ try CLIPTextConfig.load(self.dir.appendingPathComponent("config.json")) },
                     contains: "config.json does not exist")
        assertThrows({ try CLIPTextConfig.decode(Data("{\"hidden_size\": ".utf8), source: "cut.json") },
                     contains: "cannot read CLIP config cut.json: not valid JSON")
        assertThrows({ try CLIPTextConfig.decode(Data("[1]".utf8), source: "list.json") },
                     contains: "expected a JSON object")
        assertThrows({ try CLIPTextConfig.decode(Data("{\"text_config\": 3}".utf8), source: "nested.json") },
                     contains: "text_config is not an object")
        assertThrows({ try CLIPTextConfig.decode(Data("{\"hidden_size\": \"wide\"}".utf8), source: "type.json") },
                     contains: "cannot read CLIP config type.json")
        assertThrows({ try CLIPTextConfig.decode(Data("{\"hidden_size\": 770, \"num_attention_heads\": 12}".utf8),
                                                 source: "heads.json") },
                     contains: "heads.json: invalid CLIP text config: hidden_size (770) must be divisible by "
                         + "num_attention_heads (12)")
        assertThrows({ try CLIPTextConfig.decode(Data("{\"hidden_act\": \"swish\"}".utf8)) },
                     contains: "hidden_act 'swish' is not supported")
        assertThrows({ try CLIPTextConfig.decode(Data("{\"vocab_size\": 100}".utf8)) },
                     contains: "eos_token_id 49407 is outside the vocabulary (vocab_size 100)")
        assertThrows({ try CLIPTextConfig.decode(Data("{\"layer_norm_eps\": 0}".utf8)) },
                     contains: "layer_norm_eps must be positive")
    }

    /// Weights saved from one config and loaded with another: every missing key and mismatched shape is named.
    func testConfigThatDisagreesWithTheWeights() throws {
        let small = CLIPTextConfig(vocabSize: 64, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2,
                                   numAttentionHeads: 2, maxPositionEmbeddings: 8, eosTokenID: 63)
        let weights = dir.appendingPathComponent("model.safetensors")
        try SafeTensors.save(try CLIPTextModel(small).stateDict(), to: weights)
        XCTAssertNoThrow(try CLIPTextModel.load(from: weights, config: small))
        var wider = small
        wider.hiddenSize = 32
        assertThrows({ try CLIPTextModel.load(from: weights, config: wider) },
                     contains: "shape mismatch for 'embeddings.token_embedding.weight': the module has [64, 32], "
                         + "the state dict has [64, 16]")
        var deeper = small
        deeper.numHiddenLayers = 3
        assertThrows({ try CLIPTextModel.load(from: weights, config: deeper) },
                     contains: "missing key 'encoder.layers.2.self_attn.k_proj.weight'")
        assertThrows({ try CLIPTextModel.load(from: weights, config: deeper) }, contains: weights.path)
        var shallower = small
        shallower.numHiddenLayers = 1
        assertThrows({ try CLIPTextModel.load(from: weights, config: shallower) },
                     contains: "unexpected key 'encoder.layers.1.")
        assertThrows({ try CLIPTextModel.load(from: self.dir.appendingPathComponent("none.safetensors"),
                                              config: small) }, contains: "none.safetensors do not exist")
    }

    /// A tokenizer whose ids exceed the model's vocabulary, or whose length exceeds its positions, is refused.
    func testTokenizerThatDoesNotFitTheModel() throws {
        let tok = try CLIPTextViTL14Tests.tokenizer()
        let tiny = try CLIPTextModel(CLIPTextConfig(vocabSize: 100, hiddenSize: 16, intermediateSize: 32,
                                                    numHiddenLayers: 1, numAttentionHeads: 2,
                                                    maxPositionEmbeddings: 77, eosTokenID: 99))
        assertThrows({ try tiny.encodePrompts(["a cat"], tokenizer: tok) },
                     contains: "the tokenizer has ids up to 49407, beyond the model's vocab_size (100)")
        let short = try CLIPTextModel(CLIPTextConfig(vocabSize: 49408, hiddenSize: 16, intermediateSize: 32,
                                                     numHiddenLayers: 1, numAttentionHeads: 2,
                                                     maxPositionEmbeddings: 16))
        assertThrows({ try short.encodePrompts(["a cat"], tokenizer: tok) },
                     contains: "the tokenizer's 77 tokens exceed the model's max_position_embeddings (16)")
        assertThrows({ try short.encodePrompts(["a cat"], tokenizer: tok, batchSize: 0) },
                     contains: "batchSize must be positive")
        // A prompt over 77 tokens is truncated, not refused.
        let model = try CLIPTextModel(CLIPTextConfig(vocabSize: 49408, hiddenSize: 16, intermediateSize: 32,
                                                     numHiddenLayers: 1, numAttentionHeads: 2))
        XCTAssertEqual(try model.encodePrompts([String(repeating: "a photo of a cat ", count: 40)], tokenizer: tok)
                           .shape, [1, 77, 16])
    }
}
