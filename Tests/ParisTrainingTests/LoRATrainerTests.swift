import Foundation
import ParisData
import ParisEnsemble
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// `paris train lora` and `paris lora merge` in process: a frozen, hash-checked base; PEFT's files; exact resume;
/// merging; and the refusals.
final class LoRATrainerTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    /// A tiny run with expert 0 trained, and a contributor's shard (cluster 1's images) outside the run.
    func baseAndData() throws -> (run: URL, data: URL) {
        let root = try TinyRun.temporaryFolder(self)
        let run = try TinyRun.make(root.appendingPathComponent("run"), k: 2)
        _ = try ExpertTrainer.train(run: run, expert: 0)
        let data = root.appendingPathComponent("contributor/shard_0")
        try TinyRun.shard(1, of: 2).write(to: data)
        return (run, data)
    }

    func request(_ run: URL, _ data: URL, out: URL? = nil, steps: Int = 6) -> LoRAJobRequest {
        var r = LoRAJobRequest(run: run, expert: 0, data: data,
                               lora: LoRAConfig(r: 2, loraAlpha: 4, targetModules: LoRAConfig.expertTargets), out: out)
        r.steps = steps
        r.checkpointEvery = 2
        r.logEvery = 2
        return r
    }

    func testLoRATrainsOnAFrozenHashCheckedBaseAndMerges() throws {
        let (run, data) = try baseAndData()
        let baseWeights = run.appendingPathComponent("expert_0/diffusion_pytorch_model.safetensors")
        let before = try Checksum.sha256(file: baseWeights)
        let result = try LoRATrainer.train(request(run, data))
        XCTAssertEqual(result.outcome, .finished)
        XCTAssertEqual(try Checksum.sha256(file: baseWeights), before, "the base expert is never written")
        let folder = run.appendingPathComponent("lora_0")
        let files = TinyRun.listing(folder)
        for f in ["adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "status.json",
                  "samples/step_6.png", "state/step_6/model.safetensors", "state/step_6/optimizer.safetensors"] {
            XCTAssertTrue(files.contains(f), "lora_0/\(f) is missing; have \(files)")
        }
        let lora = try LoRACheckpoint.read(from: folder)
        XCTAssertEqual(lora.baseSHA256, before)
        XCTAssertEqual(lora.steps, 6)
        XCTAssertEqual(lora.config.baseModelNameOrPath, "expert_0")
        let weights = try TinyRun.tensors(folder.appendingPathComponent("adapter_model.safetensors"))
        // paris-T/4 has 2 blocks: their mlp.0 and mlp.2 and the timestep embedder's, A and B each.
        XCTAssertEqual(weights.count, 12)
        let bKey = "base_model.model.layers.0.mlp.2.lora_B.weight"
        XCTAssertGreaterThan(try XCTUnwrap(weights[bKey]).abs().amax().item(), 0, "B trained away from zero")

        // Adapted in place and merged give the same velocity; the merged folder is a plain expert.
        let (adapted, _, _) = try LoRAMerge.adapted(base: run.appendingPathComponent("expert_0"), lora: folder)
        let merged = try LoRAMerge.merge(base: run.appendingPathComponent("expert_0"), lora: folder,
                                         out: run.appendingPathComponent("expert_0_merged"))
        let (plain, info) = try ExpertCheckpoint.load(from: merged)
        XCTAssertEqual(info.steps, 6 + 6)
        try Runtime.manualSeed(3)
        let x = try Tensor.randn([2, 3, 8, 8]), t = try Tensor([100.0, 800.0] as [Float])
        let text = try Tensor.randn([2, TinyRun.textLength, TinyRun.textDim])
        try assertClose(try plain(x: x, t: t, text: text), try adapted(x: x, t: t, text: text), rtol: 1e-5,
                        atol: 1e-5, "merged vs adapted")
        XCTAssertThrowsError(try LoRAMerge.merge(base: run.appendingPathComponent("expert_0"), lora: folder,
                                                 out: merged)) {
            XCTAssertTrue("\($0)".contains("already exists"), "\($0)")
        }
    }

    func testResumeEqualsUninterrupted() throws {
        let (run, data) = try baseAndData()
        let a = run.appendingPathComponent("lora_a"), b = run.appendingPathComponent("lora_b")
        _ = try LoRATrainer.train(request(run, data, out: a))
        let first = try LoRATrainer.train(request(run, data, out: b), options: TrainOptions(stopAfterSteps: 3))
        XCTAssertEqual(first.outcome, .stopped)
        let second = try LoRATrainer.train(request(run, data, out: b))
        XCTAssertEqual(second.outcome, .finished)
        XCTAssertNotNil(second.resumedFrom)
        try TinyRun.assertIdentical(a.appendingPathComponent("adapter_model.safetensors"),
                                    b.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(try LoRATrainer.train(request(run, data, out: b)).outcome, .alreadyFinished)
    }

    func testRefusals() throws {
        let (run, data) = try baseAndData()
        // No base expert yet.
        var noBase = request(run, data)
        noBase.expert = 1
        XCTAssertThrowsError(try LoRATrainer.train(noBase)) {
            XCTAssertTrue("\($0)".contains("expert 1 has no published weights"), "\($0)")
        }
        // Data that is not a shard.
        XCTAssertThrowsError(try LoRATrainer.train(request(run, run.appendingPathComponent("partition")))) {
            XCTAssertTrue("\($0)".contains("--k 1 --features text"), "\($0)")
        }
        // A shard encoded with another text encoder.
        let s = try TinyRun.shard(1, of: 2)
        var info = s.info
        info.textEncoder = "other-encoder"
        let other = data.deletingLastPathComponent().appendingPathComponent("other")
        try Shard(info: info, images: s.images, captionIndex: s.captionIndex, textEmbeddings: s.textEmbeddings,
                  textMask: s.textMask, items: s.items).write(to: other)
        XCTAssertThrowsError(try LoRATrainer.train(request(run, other))) {
            XCTAssertTrue("\($0)".contains("text encoder other-encoder vs test-encoder"), "\($0)")
        }
        // A target that names nothing.
        var bad = request(run, data)
        bad.lora.targetModules = ["qkv"]
        XCTAssertThrowsError(try LoRATrainer.train(bad)) {
            XCTAssertTrue("\($0)".contains("\"qkv\" matches no Linear layer"), "\($0)")
        }
        // Adapters for other base weights.
        _ = try LoRATrainer.train(request(run, data))
        _ = try ExpertTrainer.train(run: run, expert: 1)
        XCTAssertThrowsError(try LoRAMerge.adapted(base: run.appendingPathComponent("expert_1"),
                                                   lora: run.appendingPathComponent("lora_0"))) {
            XCTAssertTrue("\($0)".contains("adapts other weights"), "\($0)")
        }
    }

    func testPEFTsAdapterConfigReadsAndOursRoundTrips() throws {
        let peft = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ParisModelsTests/Fixtures/lora_adapter_config.json").standardized
        let config = try LoRACheckpoint.readConfig(peft)
        XCTAssertEqual(config.r, 2)
        XCTAssertEqual(config.loraAlpha, 3)
        XCTAssertEqual(Set(config.targetModules), ["mlp.0", "mlp.2", "final_layer.linear"])
        // Every key we write is one PEFT writes, with the same JSON type.
        let ours = try JSONObject.encode(config), theirs = try JSONObject.read(peft)
        for (key, value) in ours {
            let reference = try XCTUnwrap(theirs[key], "PEFT has no \(key)")
            XCTAssertEqual(type(of: value as AnyObject) == type(of: reference as AnyObject) || value is NSNull
                           || reference is NSNull || (value is NSNumber && reference is NSNumber), true, key)
        }
        // A config that would change the computation is refused.
        let folder = try TinyRun.temporaryFolder(self)
        var dict = theirs
        dict["use_dora"] = true
        let url = folder.appendingPathComponent("adapter_config.json")
        try JSONObject.write(dict, to: url)
        XCTAssertThrowsError(try LoRACheckpoint.readConfig(url)) { XCTAssertTrue("\($0)".contains("use_dora"), "\($0)") }
        dict["use_dora"] = false
        dict["layers_to_transform"] = [0]
        try JSONObject.write(dict, to: url)
        XCTAssertThrowsError(try LoRACheckpoint.readConfig(url)) {
            XCTAssertTrue("\($0)".contains("layers_to_transform"), "\($0)")
        }
    }
}
