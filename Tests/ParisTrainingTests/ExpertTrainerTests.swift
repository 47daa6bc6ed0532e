import Foundation
import ParisRun
import ParisRunTestSupport
import ParisImage
import ParisData
import ParisModels
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// The expert trainer in process: isolation, outputs, exact resume, corrupt checkpoints, finished jobs.
final class ExpertTrainerTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func testExpertTrainsWithOtherShardsDeleted() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 3)
        let fm = FileManager.default
        try fm.removeItem(at: run.appendingPathComponent("partition/shard_0"))
        try fm.removeItem(at: run.appendingPathComponent("partition/shard_2"))
        var lines: [String] = []
        let result = try ExpertTrainer.train(run: run, expert: 1,
                                             options: TrainOptions(output: TrainOutput { lines.append($0) }))
        XCTAssertEqual(result.outcome, .finished)
        XCTAssertEqual(result.step, 6)
        XCTAssertNil(result.resumedFrom)
        // Only expert_1/ was written next to run.json and the partition.
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: run.path).sorted(), ["expert_1", "partition", "run.json"])
        let folder = run.appendingPathComponent("expert_1")
        let files = TinyRun.listing(folder)
        for f in ["config.json", "diffusion_pytorch_model.safetensors", "metrics.jsonl", "log.txt", "samples/step_6.png",
                  "samples/step_6.json", "state/latest", "state/step_6/state.json", "state/step_6/model.safetensors",
                  "state/step_6/ema.safetensors", "state/step_6/optimizer.safetensors", "state/step_4/state.json"] {
            XCTAssertTrue(files.contains(f), "expert_1/\(f) is missing; have \(files)")
        }
        XCTAssertFalse(files.contains("state/step_2"), "only the last 2 checkpoints are kept: \(files)")
        // The published checkpoint loads; its config takes the data sizes from the shard.
        let (model, info) = try ExpertCheckpoint.load(from: folder)
        XCTAssertEqual(info.cluster, 1)
        XCTAssertEqual(info.steps, 6)
        XCTAssertEqual(info.textEncoder, "test-encoder")
        XCTAssertEqual(model.config.inputSize, 8)
        XCTAssertEqual(model.config.textDim, 8)
        // The published weights are the EMA ones, not the raw ones.
        let published = try TinyRun.tensors(folder.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        let ema = try TinyRun.tensors(folder.appendingPathComponent("state/step_6/ema.safetensors"))
        for (name, t) in ema { XCTAssertTrue(try t.equal(published[name]!), name) }
        // metrics.jsonl: one line per log_every (2) steps, with the loss by time bucket.
        let records = try MetricsLog.read(folder.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(records.map(\.step), [2, 4, 6])
        XCTAssertEqual(records[0].lossByT?.count, 10)
        XCTAssertTrue(records.allSatisfy { $0.loss.isFinite && $0.gradNorm > 0 && $0.imagesPerSecond > 0 })
        XCTAssertNotNil(records[0].rssMB)
        let grid = try Image(contentsOf: folder.appendingPathComponent("samples/step_6.png"))
        XCTAssertEqual(grid.width, 4 * (64 + 2))  // 4 captions, upscaled 8 → 64 pixels, 1-pixel borders
        XCTAssertTrue(lines.joined().contains("finished 6 steps"))
    }

    func testResumeEqualsUninterrupted() throws {
        let root = try TinyRun.temporaryFolder(self)
        let a = try TinyRun.make(root.appendingPathComponent("a"), k: 2, steps: 7, checkpointEvery: 3)
        let b = try TinyRun.make(root.appendingPathComponent("b"), k: 2, steps: 7, checkpointEvery: 3)
        XCTAssertEqual(try ExpertTrainer.train(run: a, expert: 1).outcome, .finished)

        // b: 2 steps, then a stop request after step 5 (closure), then the rest.
        let first = try ExpertTrainer.train(run: b, expert: 1, options: TrainOptions(stopAfterSteps: 2))
        XCTAssertEqual(first.outcome, .stopped)
        XCTAssertEqual(first.step, 2)
        var calls = 0
        let second = try ExpertTrainer.train(run: b, expert: 1, options: TrainOptions(shouldStop: {
            calls += 1
            return calls >= 3
        }))
        XCTAssertEqual(second.outcome, .stopped)
        XCTAssertEqual(second.resumedFrom, 2)
        XCTAssertEqual(second.step, 5)
        let third = try ExpertTrainer.train(run: b, expert: 1)
        XCTAssertEqual(third.outcome, .finished)
        XCTAssertEqual(third.resumedFrom, 5)

        let ea = a.appendingPathComponent("expert_1"), eb = b.appendingPathComponent("expert_1")
        for file in ["diffusion_pytorch_model.safetensors", "state/step_7/model.safetensors",
                     "state/step_7/ema.safetensors", "state/step_7/optimizer.safetensors"] {
            try TinyRun.assertIdentical(ea.appendingPathComponent(file), eb.appendingPathComponent(file))
        }
        // The metrics of the interrupted run read like the uninterrupted one's (same steps, same losses).
        let ma = try MetricsLog.read(ea.appendingPathComponent("metrics.jsonl"))
        let mb = try MetricsLog.read(eb.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(ma.map(\.step), mb.map(\.step))
        XCTAssertEqual(ma.map(\.loss), mb.map(\.loss))
        // Finished: a further session does nothing.
        XCTAssertEqual(try ExpertTrainer.train(run: b, expert: 1).outcome, .alreadyFinished)
    }

    /// The same shard as one v2 part, as five parts and as the v1 single-file layout trains the same expert: the
    /// same losses and bit-identical weights for the same seed.
    func testPartsAndSingleFileShardsTrainTheSameCurve() throws {
        let root = try TinyRun.temporaryFolder(self)
        let runs = try ["one-part", "parts", "single-file"].map { try TinyRun.make(root.appendingPathComponent($0), k: 2) }
        let shard = try TinyRun.shard(0, of: 2)
        try shard.write(to: runs[1].appendingPathComponent("partition/shard_0"), overwrite: true, partSize: 5)
        try Self.writeSingleFile(shard, to: runs[2].appendingPathComponent("partition/shard_0"))
        XCTAssertEqual(try Shard.info(at: runs[1].appendingPathComponent("partition/shard_0")).parts?.count, 5)
        XCTAssertEqual(try Shard.info(at: runs[2].appendingPathComponent("partition/shard_0")).format, "paris-shard-v1")
        for run in runs { XCTAssertEqual(try ExpertTrainer.train(run: run, expert: 0).outcome, .finished) }
        let logs = try runs.map { try MetricsLog.read($0.appendingPathComponent("expert_0/metrics.jsonl")) }
        XCTAssertFalse(logs[0].isEmpty)
        for log in logs.dropFirst() { XCTAssertEqual(log.map(\.loss), logs[0].map(\.loss)) }
        for run in runs.dropFirst() {
            try TinyRun.assertIdentical(runs[0].appendingPathComponent("expert_0/diffusion_pytorch_model.safetensors"),
                                        run.appendingPathComponent("expert_0/diffusion_pytorch_model.safetensors"))
        }
    }

    /// `shard` in the v1 layout (images.safetensors, text.safetensors, items.jsonl, shard.json last).
    static func writeSingleFile(_ shard: Shard, to folder: URL) throws {
        let fm = FileManager.default
        try? fm.removeItem(at: folder)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        try SafeTensors.save(["images": shard.images, "caption_index": shard.captionIndex],
                             to: folder.appendingPathComponent(Shard.imagesName))
        try SafeTensors.save(["text_embeddings": shard.textEmbeddings, "text_mask": shard.textMask],
                             to: folder.appendingPathComponent(Shard.textName))
        let lines = try shard.items.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) + "\n" }.joined()
        try Data(lines.utf8).write(to: folder.appendingPathComponent(Shard.itemsName))
        var info = shard.info
        info.format = ShardInfo.singleFileFormat
        for name in Shard.singleFileNames { info.checksums[name] = try Checksum.sha256(file: folder.appendingPathComponent(name)) }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(info).write(to: folder.appendingPathComponent(Shard.infoName))
    }

    func testCorruptNewestCheckpointIsSkippedAndResumeStaysExact() throws {
        let root = try TinyRun.temporaryFolder(self)
        let a = try TinyRun.make(root.appendingPathComponent("a"), k: 1, steps: 6)
        let b = try TinyRun.make(root.appendingPathComponent("b"), k: 1, steps: 6)
        _ = try ExpertTrainer.train(run: a, expert: 0)
        XCTAssertEqual(try ExpertTrainer.train(run: b, expert: 0, options: TrainOptions(stopAfterSteps: 4)).step, 4)
        let state = b.appendingPathComponent("expert_0/state")
        // A truncated file in the newest checkpoint, and a half-written temporary folder from a crash.
        let victim = state.appendingPathComponent("step_4/model.safetensors")
        let bytes = try Data(contentsOf: victim)
        try bytes.prefix(bytes.count / 2).write(to: victim)
        try FileManager.default.createDirectory(at: state.appendingPathComponent(".tmp-step_6-1-1"),
                                                withIntermediateDirectories: true)
        var log = ""
        let result = try ExpertTrainer.train(run: b, expert: 0, options: TrainOptions(output: TrainOutput { log += $0 }))
        XCTAssertEqual(result.resumedFrom, 2)
        XCTAssertTrue(log.contains("skipping checkpoint step_4"), log)
        try TinyRun.assertIdentical(a.appendingPathComponent("expert_0/diffusion_pytorch_model.safetensors"),
                                    b.appendingPathComponent("expert_0/diffusion_pytorch_model.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: state.appendingPathComponent(".tmp-step_6-1-1").path))
    }

    func testChangedSettingsRefuseResumeUnlessRestart() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 1)
        _ = try ExpertTrainer.train(run: run, expert: 0, options: TrainOptions(stopAfterSteps: 2))
        var config = try RunLayout(run).config()
        config.experts[0].learningRate = 5e-4
        try config.write(to: RunLayout(run).runJSON)
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "--restart")
        let restarted = try ExpertTrainer.train(run: run, expert: 0, options: TrainOptions(restart: true))
        XCTAssertEqual(restarted.outcome, .finished)
        XCTAssertNil(restarted.resumedFrom)
        // More steps in run.json extend a finished job.
        config.experts[0].steps = 8
        try config.write(to: RunLayout(run).runJSON)
        let extended = try ExpertTrainer.train(run: run, expert: 0)
        XCTAssertEqual(extended.resumedFrom, 6)
        XCTAssertEqual(extended.step, 8)
    }

    func testDDPMExpertAndMonolith() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 2, steps: 4) { config in
            config.experts[1].objective = .ddpmEpsilon(.cosine, numTimesteps: 1000)
        }
        XCTAssertEqual(try ExpertTrainer.train(run: run, expert: 1).outcome, .finished)
        let (_, info) = try ExpertCheckpoint.load(from: run.appendingPathComponent("expert_1"))
        XCTAssertEqual(info.objective, .ddpmEpsilon(.cosine, numTimesteps: 1000))
        // The monolith reads every shard and writes monolith/ like an expert folder.
        let mono = try MonolithTrainer.train(run: run)
        XCTAssertEqual(mono.outcome, .finished)
        let (_, monoInfo) = try ExpertCheckpoint.load(from: run.appendingPathComponent("monolith"))
        XCTAssertNil(monoInfo.cluster)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("monolith/samples/step_4.png").path))
        // The monolith needs every shard.
        try FileManager.default.removeItem(at: run.appendingPathComponent("partition/shard_0"))
        assertThrows({ try MonolithTrainer.train(run: run, options: TrainOptions(restart: true)) },
                     contains: "shard 0 is missing")
    }

    func testShardsReadOneAfterAnotherShiftCaptionIndices() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-join-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let folders = try (0..<2).map { k -> (folder: URL, cluster: Int) in
            let folder = dir.appendingPathComponent("shard_\(k)")
            try TinyRun.shard(k, of: 2).write(to: folder)
            return (folder, k)
        }
        let reader = try TrainingData.openShards(folders, numClusters: 2)
        let joined = try reader.readAll()
        XCTAssertEqual(joined.count, 2 * TinyRun.perShard)
        XCTAssertEqual(joined.captions, 2 * TinyRun.captions)
        let rows = try joined.captionIndex.toArray(as: Int64.self)
        XCTAssertEqual(rows[TinyRun.perShard], Int64(TinyRun.captions + 1))  // shard 1's first image: caption 1, shifted
        XCTAssertEqual(joined.items[TinyRun.perShard].text, "square 1 of cluster 1")
        assertThrows({ try TrainingData.openShards([(folders[0].folder, 1), (folders[1].folder, 0)], numClusters: 2) }, contains: "holds the shard of cluster")
        assertThrows({ try TrainingData.openShards(folders, numClusters: 3) }, contains: "has num_experts 3")
    }
}
