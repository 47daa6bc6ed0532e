import Foundation
import ParisModels
import Torch
import XCTest

/// `paris convert dit`: reference .pt checkpoints to safetensors + config.json, and the model catalogue.
final class DiTConverterTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dit-convert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func fixtureURL(_ name: String) throws -> URL {
        let parts = name.split(separator: ".")
        return try XCTUnwrap(Bundle.module.url(forResource: String(parts[0]), withExtension: String(parts[1]),
                                               subdirectory: "Fixtures"), "missing fixture \(name)")
    }

    /// The ema weights of dit_tiny.pt, as the reference saved them.
    func referenceEMA() throws -> [String: Tensor] {
        let ckpt = try PyTorchCheckpoint.open(try fixtureURL("dit_tiny.pt"))
        return Dictionary(uniqueKeysWithValues: ckpt.stripping("ema"))
    }

    func testConvertTrainCheckpointRoundTrip() throws {
        let out = folder.appendingPathComponent("dit.safetensors")
        let result = try DiTConverter.convert(input: try fixtureURL("dit_tiny.pt"), output: out, numHeads: 4)
        XCTAssertEqual(result.source, "ema")
        var expected = tinyDiT
        expected.classDropoutProb = 0.1  // not in the weights: DiT's training value
        XCTAssertEqual(result.config, expected)
        XCTAssertEqual(result.parameterCount, expected.parameterCount)

        let saved = try SafeTensors.load(out)
        XCTAssertEqual(saved.metadata["format"], "pt")
        let ema = try referenceEMA()
        XCTAssertEqual(Set(saved.tensors.keys), Set(ema.keys))
        for (key, t) in ema { try assertClose(try XCTUnwrap(saved.tensors[key]), t, rtol: 0, atol: 0, key) }

        let config = try JSONDecoder().decode(DiTConfig.self, from: try Data(contentsOf: result.configURL))
        XCTAssertEqual(config, expected)
        XCTAssertEqual(result.configURL, folder.appendingPathComponent("config.json"))
        let model = try DiT.load(weights: out)
        try assertClose(model.xEmbedder.proj.weight, try XCTUnwrap(ema["x_embedder.proj.weight"]), rtol: 0, atol: 0)
    }

    func testConvertModelWeightsAndRawDDPStateDict() throws {
        let ema = try referenceEMA()
        let a = folder.appendingPathComponent("a/model.safetensors")
        try FileManager.default.createDirectory(at: a.deletingLastPathComponent(), withIntermediateDirectories: true)
        let r = try DiTConverter.convert(input: try fixtureURL("dit_tiny.pt"), output: a, weights: .model, numHeads: 4)
        XCTAssertEqual(r.source, "model")
        let w = try SafeTensors.load(a).tensors["final_layer.linear.bias"]!
        try assertClose(w, try ema["final_layer.linear.bias"]! + 1.0, rtol: 0, atol: 0, "model = ema + 1")

        let b = folder.appendingPathComponent("b/raw.safetensors")
        try FileManager.default.createDirectory(at: b.deletingLastPathComponent(), withIntermediateDirectories: true)
        let raw = try DiTConverter.convert(input: try fixtureURL("dit_tiny_raw.pt"), output: b, numHeads: 4)
        XCTAssertEqual(raw.source, "state dict")
        let t = try SafeTensors.load(b).tensors["blocks.1.attn.qkv.weight"]!
        try assertClose(t, try XCTUnwrap(ema["blocks.1.attn.qkv.weight"]), rtol: 0, atol: 0)
        XCTAssertThrowsError(try DiTConverter.convert(input: try fixtureURL("dit_tiny_raw.pt"),
                                                      output: folder.appendingPathComponent("c.safetensors"),
                                                      weights: .ema, numHeads: 4)) {
            XCTAssertTrue("\($0)".contains("no 'ema' weights"), "\($0)")
        }
    }

    func testRefusesToOverwriteUnlessForced() throws {
        let out = folder.appendingPathComponent("dit.safetensors")
        try Data("keep".utf8).write(to: out)
        XCTAssertThrowsError(try DiTConverter.convert(input: try fixtureURL("dit_tiny.pt"), output: out, numHeads: 4)) {
            XCTAssertTrue("\($0)".contains("already exists"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOf: out, encoding: .utf8), "keep")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path))
        try DiTConverter.convert(input: try fixtureURL("dit_tiny.pt"), output: out, overwrite: true, numHeads: 4)
        XCTAssertNoThrow(try SafeTensors.load(out))
        // config.json exists now: a second conversion to another name in this folder refuses too.
        XCTAssertThrowsError(try DiTConverter.convert(input: try fixtureURL("dit_tiny.pt"),
                                                      output: folder.appendingPathComponent("other.safetensors"),
                                                      numHeads: 4)) {
            XCTAssertTrue("\($0)".contains("config.json already exists"), "\($0)")
        }
    }

    /// A torch.save file naming unsafe globals (TorchTests' io_unsafe.pt) is refused for weights.
    func testRefusesACheckpointWithUnsafeGlobals() throws {
        let unsafe = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TorchTests/Fixtures/io_unsafe.pt")
        assertThrows({ try DiTConverter.convert(input: unsafe, output: self.folder.appendingPathComponent("o.safetensors")) },
                     contains: "refusing to load: its pickle names 2 globals")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("o.safetensors").path))
    }

    func testRejectsWhatIsNotADiT() throws {
        let out = folder.appendingPathComponent("x.safetensors")
        XCTAssertThrowsError(try DiTConverter.convert(input: try fixtureURL("not_dit.pt"), output: out)) {
            XCTAssertTrue("\($0)".contains("not a facebookresearch/DiT checkpoint"), "\($0)")
        }
        XCTAssertThrowsError(try DiTConverter.convert(input: folder.appendingPathComponent("missing.pt"), output: out)) {
            XCTAssertTrue("\($0)".contains("no such file"), "\($0)")
        }
        // Hidden size 16 matches no reference preset: the heads must be given.
        XCTAssertThrowsError(try DiTConverter.convert(input: try fixtureURL("dit_tiny.pt"), output: out)) {
            XCTAssertTrue("\($0)".contains("--num-heads"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    func testInferConfigOfAReferencePresetNeedsNoHeads() throws {
        // Shapes only (no data): DiT-S/2 as the reference builds it.
        let s2 = try DiTConfig.preset(named: "DiT-S/2")
        let model = try DiT(DiTConfig(inputSize: 16, patchSize: 2, inChannels: 4, hiddenSize: 384, depth: 12,
                                      numHeads: 6, numClasses: 5))
        let inferred = try DiTConverter.inferConfig(try model.stateDict())
        XCTAssertEqual(inferred.numHeads, s2.numHeads)
        XCTAssertEqual(inferred.inputSize, 16)
        XCTAssertEqual(inferred.numClasses, 5)
        XCTAssertTrue(inferred.learnSigma)
    }

    func testCatalogListsEveryDiTPresetWithItsCount() throws {
        let dit = ModelCatalog.entries.filter { $0.family.hasPrefix("DiT") }
        XCTAssertEqual(dit.map(\.name), DiTConfig.presets.map(\.name))
        XCTAssertEqual(dit.first { $0.name == "DiT-XL/2" }?.parameterCount, 675_129_632)
        let text = ModelCatalog.render()
        XCTAssertTrue(text.contains("675,129,632"), text)
        XCTAssertTrue(text.contains("DiT-T/2"), text)
    }
}
