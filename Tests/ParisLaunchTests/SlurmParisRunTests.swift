import Foundation
import ParisRun
import ParisData
import ParisTraining
import Torch
import XCTest
@testable import ParisLaunch

/// End to end on a real single-node Slurm cluster with the real `paris` binary of this build: a tiny run (two
/// 32-image synthetic shards, K = 2 paris-T/4 experts of 20 steps, a router-T/4 of 10 steps) launched with
/// `paris launch --backend slurm`; a corrupt shard that fails expert 1 and cancels the router, then a retry of
/// that expert alone; an expert killed mid-run through `scancel` and resumed from its checkpoint. Evaluation is
/// left out (`--no-eval`): SlurmLaunchTests checks that eval runs last, and `paris eval` has its own tests.
final class SlurmParisRunTests: SlurmTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try LaunchFixtures.tempFolder("paris-slurm-real") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// The paris binary built beside this test bundle (`<scratch>/<triple>/debug/paris`).
    func parisBinary() throws -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("paris").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        XCTFail("no paris binary beside \(exe); build it with `swift build --build-tests`")
        throw LaunchError("paris binary not found")
    }

    /// Writes cluster k's synthetic shard: 32 random 3×32×32 images with 4 captions of 32×384 random tokens.
    func writeShard(_ k: Int, of numClusters: Int, to folder: URL) throws {
        let n = 32, u = 4, t = 32, d = 384
        Runtime.manualSeed(UInt64(100 + k))
        let images = try (Tensor.rand([n, 3, 32, 32]) * 255).to(dtype: .uint8)
        let captionIndex = try Tensor(Array(0..<n).map { Int64($0 % u) }, shape: [n])
        let text = try Tensor.randn([u, t, d]).to(dtype: .float16)
        let mask = try Tensor.ones([u, t], dtype: .bool)
        let items = (0..<n).map { Shard.Item(fileName: "img\(k)_\($0).png", text: "caption \($0 % u)", label: "c\(k)") }
        let info = ShardInfo(cluster: k, numClusters: numClusters, count: n, channels: 3, imageSize: 32,
                             captionCount: u, textEncoder: "all-MiniLM-L6-v2", textLength: t, textDim: d,
                             dataset: "synthetic", partitionMethod: "test")
        try Shard(info: info, images: images, captionIndex: captionIndex, textEmbeddings: text, textMask: mask,
                  items: items).write(to: folder, overwrite: true)
    }

    /// A K = 2 run with tiny jobs; `expertSteps` per expert, a checkpoint every `checkpointEvery` steps.
    func makeRun(expertSteps: Int = 20, checkpointEvery: Int = 10) throws -> RunLayout {
        let run = RunLayout(folder.appendingPathComponent("run"))
        var config = RunPreset.cpuTiny.config(name: "slurm-e2e", dataset: "synthetic", numExperts: 2)
        for k in 0..<2 {
            config.experts[k].steps = expertSteps
            config.experts[k].batchSize = 8
            config.experts[k].warmupSteps = 2
            config.experts[k].checkpointEvery = checkpointEvery
            config.experts[k].sampleEvery = 0
            config.experts[k].logEvery = 5
        }
        config.router.steps = 10
        config.router.batchSize = 8
        config.router.warmupSteps = 2
        config.router.checkpointEvery = 5
        config.router.logEvery = 5
        config.monolith = nil
        try FileManager.default.createDirectory(at: run.root, withIntermediateDirectories: true)
        try config.write(to: run.runJSON)
        for k in 0..<2 { try writeShard(k, of: 2, to: run.shard(k, config)) }
        return run
    }

    func launch(_ run: RunLayout, _ c: SlurmCluster, paris: String, resume: Bool = false) throws -> LaunchOutcome {
        try Launcher.launch(run: run, options: LaunchOptions(
            backend: .slurm, paris: paris, includeEval: false, resume: resume,
            environment: c.environment.merging(["OMP_NUM_THREADS": "1"]) { $1 }))
    }

    func logs(_ run: RunLayout) -> String {
        let dir = run.launch.appendingPathComponent("logs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()) ?? []
        return names.map { name in
            "== \(name)\n" + ((try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "")
        }.joined(separator: "\n")
    }

    func testTinyRunEndToEnd() throws {
        let c = try cluster()
        let paris = try parisBinary()
        let run = try makeRun()
        let outcome = try launch(run, c, paris: paris)
        XCTAssertEqual(outcome.submitted.first?.experts, [0, 1])
        let status = try waitForJobs(run, c, timeout: 600)
        XCTAssertTrue(status.isComplete, status.table + "\n" + logs(run))
        for k in 0..<2 { XCTAssertTrue(ExpertCheckpoint.exists(in: run.expert(k)), "expert \(k)") }
        XCTAssertTrue(RouterCheckpoint.exists(in: run.router))
        XCTAssertTrue(RunProgress.read(run, config: try run.config()).experts.allSatisfy(\.finished))
    }

    func testCorruptShardFailsItsExpertCancelsTheRouterAndARetryWorks() throws {
        let c = try cluster()
        let paris = try parisBinary()
        let run = try makeRun()
        let config = try run.config()
        let images = run.shard(1, config).appendingPathComponent("part-00000.safetensors")
        let good = try Data(contentsOf: images)
        var bad = good
        bad[bad.count - 1] ^= 0xFF
        try bad.write(to: images)
        _ = try launch(run, c, paris: paris)
        let status = try waitForJobs(run, c, timeout: 600)
        XCTAssertEqual(status.expert(0)?.state, .completed, status.table)
        XCTAssertEqual(status.expert(1)?.state, .failed, status.table)
        XCTAssertEqual(status.router?.state, .cancelled, status.table)
        let message = try XCTUnwrap(status.failureMessage(run: run))
        XCTAssertTrue(message.contains("expert 1 FAILED") && message.contains("router was cancelled"), message)
        XCTAssertTrue(logs(run).contains("checksum mismatch"), logs(run))

        try good.write(to: images)
        let retry = try launch(run, c, paris: paris, resume: true)
        XCTAssertEqual(retry.plan.jobs.first?.arrayIndices, [1])
        let after = try waitForJobs(run, c, timeout: 600)
        XCTAssertTrue(after.isComplete, after.table + "\n" + logs(run))
    }

    func testExpertKilledMidRunResumesFromItsCheckpoint() throws {
        let c = try cluster()
        let paris = try parisBinary()
        let run = try makeRun(expertSteps: 400, checkpointEvery: 5)
        let outcome = try launch(run, c, paris: paris)
        let array = outcome.submitted[0].jobId
        let store = TrainingCheckpoints(folder: run.expert(0).appendingPathComponent("state"))
        let deadline = Date().addingTimeInterval(300)
        while store.latestStep() == nil {
            guard Date() < deadline else { return XCTFail("expert 0 wrote no checkpoint\n" + logs(run)) }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(try c.run(["scancel", "\(array)_0"]).status, 0)
        // Expert 1 need not run its 400 steps for this test.
        _ = try c.run(["scancel", "\(array)_1"])
        let status = try waitForJobs(run, c, timeout: 120)
        XCTAssertEqual(status.expert(0)?.state, .cancelled, status.table)
        XCTAssertEqual(status.router?.state, .cancelled, status.table)
        let saved = try XCTUnwrap(store.latestStep())

        // Finish sooner: the resumed expert continues to the end of a shorter run.
        var config = try run.config()
        for k in 0..<2 { config.experts[k].steps = saved + 10 }
        try config.write(to: run.runJSON)
        let retry = try launch(run, c, paris: paris, resume: true)
        XCTAssertEqual(retry.plan.jobs.first?.arrayIndices, [0, 1])
        let after = try waitForJobs(run, c, timeout: 600)
        let newLog = run.launch.appendingPathComponent("logs/slurm-e2e-experts-\(retry.submitted[0].jobId)_0.out")
        let text = (try? String(contentsOf: newLog, encoding: .utf8)) ?? ""
        XCTAssertTrue(text.contains("resuming from step"), text)
        XCTAssertTrue(after.isComplete, after.table + "\n" + logs(run))
    }
}
