import Foundation
import ParisEnsemble
import ParisModels
import ParisTestSupport
import Torch
import XCTest

/// Bad release folders fail with an error naming the file and the key, and `paris sample --release` then writes
/// nothing. Each test breaks one thing in a copy of the synthetic release (scripts/fixtures/paris_release.py).
final class ParisReleaseErrorTests: XCTestCase {
    var tmp: URL!
    var release: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-release-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        release = tmp.appendingPathComponent("release")
        try fresh()
    }

    /// A fresh copy of the synthetic release at `release`.
    func fresh() throws {
        try? FileManager.default.removeItem(at: release)
        try FileManager.default.copyItem(at: try ParisReleaseTests.fixtureURL("paris_release"), to: release)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// Loading fails with an error that contains every one of `parts`.
    func assertLoadFails(_ parts: String..., file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ParisRelease.load(from: release), file: file, line: line) { error in
            for p in parts { XCTAssert("\(error)".contains(p), "'\(error)' does not mention '\(p)'", file: file, line: line) }
        }
    }

    func remove(_ path: String) throws { try FileManager.default.removeItem(at: release.appendingPathComponent(path)) }

    /// Rewrites the safetensors file `path` through `edit`.
    func editWeights(_ path: String, _ edit: (inout [String: Tensor]) throws -> Void) throws {
        let url = release.appendingPathComponent(path)
        var dict = try SafeTensors.load(url).tensors
        try edit(&dict)
        try SafeTensors.save(dict, to: url, metadata: ["format": "pt"])
    }

    func editJSON(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = release.appendingPathComponent(path)
        var dict = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&dict)
        try JSONSerialization.data(withJSONObject: dict).write(to: url)
    }

    func testMissingFolderAndIndex() throws {
        try remove("model_index.json")
        assertLoadFails("model_index.json", "not found")
        XCTAssertThrowsError(try ParisRelease.load(from: tmp.appendingPathComponent("nowhere"))) {
            XCTAssert("\($0)".contains("no such release folder"), "\($0)")
        }
    }

    func testMissingComponents() throws {
        for component in ["vae", "text_encoder", "tokenizer", "router", "expert_2"] {
            try fresh()
            try remove(component)
            assertLoadFails("release/\(component)", "missing")
        }
    }

    func testMissingFiles() throws {
        for (path, why) in [("tokenizer/merges.txt", "not found"), ("expert_1/diffusion_pytorch_model.safetensors", "not found"),
                            ("router/config.json", "not found"), ("vae/diffusion_pytorch_model.safetensors", "not found"),
                            ("text_encoder/model.safetensors", "not found")] {
            try fresh()
            try remove(path)
            assertLoadFails(path, why)
        }
    }

    func testMissingKey() throws {
        try editWeights("expert_1/diffusion_pytorch_model.safetensors") { $0["layers.1.mlp.0.bias"] = nil }
        assertLoadFails("expert_1/config.json", "expert_1/diffusion_pytorch_model.safetensors", "'layers.1.mlp.0.bias'")
        try fresh()
        try editWeights("vae/diffusion_pytorch_model.safetensors") { $0["decoder.conv_out.weight"] = nil }
        assertLoadFails("vae/diffusion_pytorch_model.safetensors", "decoder.conv_out.weight")
        try fresh()
        try editWeights("text_encoder/model.safetensors") { $0["final_layer_norm.bias"] = nil }
        assertLoadFails("text_encoder/model.safetensors", "final_layer_norm.bias")
    }

    func testExtraKey() throws {
        try editWeights("router/pytorch_model.safetensors") { $0["extra.weight"] = try Tensor.zeros([2]) }
        assertLoadFails("router/pytorch_model.safetensors", "'extra.weight'")
    }

    func testWrongShape() throws {
        try editWeights("expert_0/diffusion_pytorch_model.safetensors") { $0["text_proj.weight"] = try Tensor.zeros([32, 9]) }
        assertLoadFails("expert_0/diffusion_pytorch_model.safetensors", "'text_proj.weight'", "[32, 9]", "[32, 8]")
    }

    func testConfigDisagreesWithTensors() throws {
        try editJSON("expert_2/config.json") { $0["hidden_size"] = 48 }
        assertLoadFails("expert_2/config.json", "hidden_size 48")
        try fresh()
        try editJSON("router/config.json") { $0["depth"] = 3 }
        assertLoadFails("router/config.json", "depth is 3")
        try fresh()
        try editJSON("expert_0/config.json") { $0["text_dim"] = 16 }
        assertLoadFails("expert_0/config.json", "text_dim is 16", "hidden_size is 8")
        try fresh()
        try editJSON("vae/config.json") { $0["latent_channels"] = 8 }
        assertLoadFails("vae/config.json")
        try fresh()
        try editJSON("config.json") { $0["image_size"] = 64 }
        assertLoadFails("release/config.json", "image_size is 64")
    }

    /// Keys the loader does not read are reported, not refused (the released configs have not been seen here).
    func testUnreadConfigKeysAreNoted() throws {
        try editJSON("expert_1/config.json") { $0["learn_sigma"] = false; $0["_name_or_path"] = "x" }
        let release = try ParisRelease.load(from: release)
        XCTAssertEqual(release.notes.count, 1)
        XCTAssert(release.notes[0].contains("expert_1/config.json: keys not read (ignored): learn_sigma"), release.notes[0])
    }

    func testIndexErrors() throws {
        try editJSON("model_index.json") { $0["_class_name"] = "StableDiffusionPipeline" }
        assertLoadFails("model_index.json", "StableDiffusionPipeline", "DDMPipeline")
        try fresh()
        try editJSON("model_index.json") { $0["num_experts"] = 4 }
        assertLoadFails("release/expert_3", "missing")
        try fresh()
        try editJSON("model_index.json") { $0["num_experts"] = 2 }
        assertLoadFails("router/config.json", "3 experts", "num_experts 2")
        try fresh()
        try editJSON("model_index.json") { $0["vae"] = ["diffusers", "AutoencoderTiny"] }
        assertLoadFails("model_index.json", "\"vae\"", "AutoencoderTiny")
        try fresh()
        try editJSON("expert_1/config.json") { $0["depth"] = "two" }
        assertLoadFails("expert_1/config.json", "\"depth\"", "expected an integer")
    }

    /// A broken release fails `paris sample --release` before anything is written.
    func testNothingWrittenOnFailure() throws {
        try editWeights("expert_1/diffusion_pytorch_model.safetensors") { $0["pos_embed"] = nil }
        let out = tmp.appendingPathComponent("samples").appendingPathComponent("out")
        let job = ReleaseSampleJob(release: release, output: out, prompts: ["a cat"], steps: 2, device: .cpu)
        XCTAssertThrowsError(try job.run()) { XCTAssert("\($0)".contains("'pos_embed'"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        let parent = out.deletingLastPathComponent()
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? [], [])
        XCTAssertThrowsError(try ReleaseSampleJob(release: release, output: out, prompts: ["a cat"], strategy: .oracle,
                                                  device: .cpu).run()) { XCTAssert("\($0)".contains("oracle"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}
