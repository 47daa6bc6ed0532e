import Foundation
import ParisRun
import ParisRunTestSupport
import ParisData
import ParisDiffusion
import ParisModels
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// Runs for the router tests: `TinyRun`'s layout with shards of clearly different images (cluster k: a solid
/// colour that is bright in channel k mod 3, plus noise), and a router-T/4 job of a few dozen steps.
enum RouterTestRun {
    static func routerJob(steps: Int, seed: UInt64 = 7) -> TrainJobConfig {
        TrainJobConfig(model: "router-T/4", batchSize: 16, steps: steps, learningRate: 2e-3, warmupSteps: 4,
                       weightDecay: 0.01, emaDecay: 0, gradClip: 1, captionDropout: 0, checkpointEvery: 10,
                       logEvery: 5, seed: seed)
    }

    /// A run of K clusters with solid-colour shards; `configure` may change run.json before it is written.
    @discardableResult
    static func make(_ root: URL, k: Int = 3, steps: Int = 40,
                     configure: (inout RunConfig) -> Void = { _ in }) throws -> URL {
        try TinyRun.make(root, k: k) { config in
            config.router = routerJob(steps: steps)
            configure(&config)
        }
        for c in 0..<k {
            var shard = try TinyRun.shard(c, of: k)
            let n = shard.info.count, s = shard.info.imageSize, ch = shard.info.channels
            var rng = SplitMix64(seed: UInt64(100 + c))
            var pixels = [Float]()
            for _ in 0..<n {
                for channel in 0..<ch {
                    let base = channel == c % 3 ? 200 : 40
                    for _ in 0..<(s * s) { pixels.append(Float(base + Int(rng.next() % 41) - 20)) }
                }
            }
            shard.images = try Tensor(pixels, shape: [n, ch, s, s]).to(dtype: .uint8)
            try shard.write(to: root.appendingPathComponent("partition/shard_\(c)"), overwrite: true)
        }
        return root
    }

    static func json(_ url: URL) throws -> [String: Any] {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: url.path), "\(url.path) is missing")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

final class RouterTrainerTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func testRouterSeparatesClustersAndWritesEvaluation() throws {
        let run = try RouterTestRun.make(try TinyRun.temporaryFolder(self), k: 3, steps: 40)
        let result = try RouterTrainer.train(run: run, options: TrainOptions())
        XCTAssertEqual(result.outcome, .finished)
        XCTAssertEqual(result.step, 40)
        let folder = run.appendingPathComponent("router")
        for name in ["config.json", "model.safetensors", "eval.json", "eval.md", "confusion.png", "accuracy.png",
                     "loss.png", "metrics.jsonl", "status.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), name)
        }
        let eval = try JSONDecoder().decode(RouterEvaluation.self,
                                            from: Data(contentsOf: folder.appendingPathComponent("eval.json")))
        // 24 images per shard, 10 % held out, rounded up: 3 per cluster.
        XCTAssertEqual(eval.heldOut, 9)
        XCTAssertEqual(eval.confusion.count, 3)
        XCTAssertTrue(eval.confusion.allSatisfy { $0.count == 3 })
        XCTAssertEqual(eval.confusion.flatMap { $0 }.reduce(0, +), eval.heldOut)
        XCTAssertEqual(eval.points.map(\.t), RouterEvaluation.defaultTimes)
        // Overall, t spans the whole path: near t = 1 no router can tell 8×8 images apart, so the bar is lower there.
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(eval.accuracy), 0.75, "held-out accuracy \(eval.accuracy ?? 0)")
        for p in eval.points.prefix(5) {
            XCTAssertGreaterThanOrEqual(p.accuracy, 0.9, "t = \(p.t)")
        }
        // Entropy is highest at the noise end.
        XCTAssertLessThan(eval.points[0].entropy, eval.points[9].entropy + 1e-9)

        // The published router loads and classifies clean images like the evaluation says.
        let router = try RouterCheckpoint.load(from: folder)
        XCTAssertEqual(router.config.numExperts, 3)
        XCTAssertEqual(router.config.inputSize, TinyRun.size)
        let status = try XCTUnwrap(try JobStatusFile.read(from: folder))
        XCTAssertEqual(status.state, .finished)
        let lines = MetricsFile.read(folder.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(lines.compactMap { $0["step"] as? Int }, [5, 10, 15, 20, 25, 30, 35, 40])
        XCTAssertNotNil(lines.last?["accuracy"] as? Double)
        XCTAssertNotNil(lines.last?["images_per_s"] as? Double)
        let md = try String(contentsOf: folder.appendingPathComponent("eval.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("## Confusion"))

        // A second call has nothing to do.
        XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions()).outcome, .alreadyFinished)
    }

    func testResumeEqualsUninterrupted() throws {
        let a = try RouterTestRun.make(try TinyRun.temporaryFolder(self, "resumeA"), k: 3, steps: 24)
        let b = try RouterTestRun.make(try TinyRun.temporaryFolder(self, "resumeB"), k: 3, steps: 24)
        XCTAssertEqual(try RouterTrainer.train(run: a, options: TrainOptions()).outcome, .finished)

        // Stop after 7 steps (between checkpoints), then after 6 more, then finish.
        let first = try RouterTrainer.train(run: b, options: TrainOptions(stopAfterSteps: 7))
        XCTAssertEqual(first.outcome, .stopped)
        XCTAssertEqual(first.step, 7)
        XCTAssertEqual(try JobStatusFile.read(from: b.appendingPathComponent("router"))?.state, .stopped)
        // shouldStop is polled after each step, as for the experts: true at the 6th poll stops after 6 steps.
        var calls = 0
        let second = try RouterTrainer.train(run: b, options: TrainOptions(shouldStop: {
            calls += 1
            return calls >= 6
        }))
        XCTAssertEqual(second.outcome, .stopped)
        XCTAssertEqual(second.resumedFrom, 7)
        XCTAssertEqual(second.step, 13)
        let last = try RouterTrainer.train(run: b, options: TrainOptions())
        XCTAssertEqual(last.outcome, .finished)
        XCTAssertEqual(last.resumedFrom, 13)

        let ra = a.appendingPathComponent("router"), rb = b.appendingPathComponent("router")
        try TinyRun.assertIdentical(ra.appendingPathComponent("model.safetensors"),
                                    rb.appendingPathComponent("model.safetensors"))
        let ea = try JSONDecoder().decode(RouterEvaluation.self, from: Data(contentsOf: ra.appendingPathComponent("eval.json")))
        let eb = try JSONDecoder().decode(RouterEvaluation.self, from: Data(contentsOf: rb.appendingPathComponent("eval.json")))
        XCTAssertEqual(ea, eb)
        let steps = { (u: URL) in MetricsFile.read(u.appendingPathComponent("metrics.jsonl")).compactMap { $0["step"] as? Int } }
        XCTAssertEqual(steps(ra), steps(rb))
        let lossA = MetricsFile.read(ra.appendingPathComponent("metrics.jsonl")).compactMap { $0["loss"] as? Double }
        let lossB = MetricsFile.read(rb.appendingPathComponent("metrics.jsonl")).compactMap { $0["loss"] as? Double }
        // The logging interval is saved in the checkpoints, so the windows cut by an interruption agree too.
        XCTAssertEqual(lossA.last, lossB.last)
        XCTAssertEqual(lossA, lossB)
    }

    func testMissingShardIsNamed() throws {
        let run = try RouterTestRun.make(try TinyRun.temporaryFolder(self), k: 3, steps: 4)
        try FileManager.default.removeItem(at: run.appendingPathComponent("partition/shard_1"))
        assertThrows({ try RouterTrainer(run: run) }, contains: "shard 1 is missing")
    }

    func testNumExpertsDifferentFromShardsIsAnError() throws {
        // run.json says 2, the partition has 3 shards.
        let more = try RouterTestRun.make(try TinyRun.temporaryFolder(self, "more"), k: 3, steps: 4)
        var config = try RunLayout(more).config()
        config.numExperts = 2
        config.experts.removeLast()
        try config.write(to: more.appendingPathComponent("run.json"))
        assertThrows({ try RouterTrainer(run: more) }, contains: "num_experts = 2")

        // run.json says 3, the shards were made for 2 clusters (shard_2 copied from elsewhere).
        let fewer = try RouterTestRun.make(try TinyRun.temporaryFolder(self, "fewer"), k: 2, steps: 4)
        try TinyRun.shard(1, of: 2).write(to: fewer.appendingPathComponent("partition/shard_2"))
        config = try RunLayout(fewer).config()
        config.numExperts = 3
        config.experts.append(config.experts[0])
        try config.write(to: fewer.appendingPathComponent("run.json"))
        assertThrows({ try RouterTrainer(run: fewer) }, contains: "num_experts = 3")
    }

    func testChangedSettingsRefuseToResume() throws {
        let run = try RouterTestRun.make(try TinyRun.temporaryFolder(self), k: 3, steps: 12)
        XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions(stopAfterSteps: 10)).outcome, .stopped)
        var config = try RunLayout(run).config()
        config.router.learningRate = 1e-2
        try config.write(to: run.appendingPathComponent("run.json"))
        assertThrows({ try RouterTrainer.train(run: run, options: TrainOptions()) }, contains: "--restart")
        XCTAssertEqual(try JobStatusFile.read(from: run.appendingPathComponent("router"))?.state, .failed)
        XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions(restart: true)).outcome, .finished)
    }

    func testTimeSamplingFollowsTheExperts() throws {
        let fm = TrainJobConfig(model: "paris-T/4", objective: .flowMatching(.logitNormal(mean: 0, std: 1)))
        let ddpm = TrainJobConfig(model: "paris-T/4", objective: .ddpmEpsilon(.linear, numTimesteps: 1000))
        let uniform = TrainJobConfig(model: "paris-T/4")
        func run(_ experts: [TrainJobConfig]) -> RunConfig {
            RunConfig(name: "t", dataset: "d", numExperts: experts.count, experts: experts,
                      router: TrainJobConfig(model: "router-T/4"))
        }
        XCTAssertEqual(RouterTrainer.timeSampling(for: run([fm, fm])).0, .logitNormal(mean: 0, std: 1))
        XCTAssertEqual(RouterTrainer.timeSampling(for: run([fm, ddpm])).0, .logitNormal(mean: 0, std: 1))
        XCTAssertTrue(RouterTrainer.timeSampling(for: run([fm, ddpm])).1.contains("DDPM"))
        XCTAssertEqual(RouterTrainer.timeSampling(for: run([fm, uniform])).0, .uniform)
        XCTAssertEqual(RouterTrainer.timeSampling(for: run([ddpm, ddpm])).0, .uniform)
    }
}
