import Foundation
import ParisRun
import ParisRunTestSupport
import ParisData
import ParisModels
@testable import ParisEnsemble
@testable import ParisEval
import ParisTestSupport
import Torch
import XCTest

/// `paris eval` end to end on a tiny untrained run with two small shards, and the classifier on its own.
final class EvalJobTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        Runtime.threads = 1
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-eval-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// Replaces the run's router with one that answers `cluster` with certainty for every input (its last head
    /// layer zeroed, bias ±20): a router whose true accuracy is exactly that cluster's share of the images.
    func writeConstantRouter(_ run: RunLayout, cluster: Int) throws {
        var rc = RouterConfig.cpuTiny
        rc.numExperts = 2
        let router = try Router(rc)
        try TinyRun.makeConstant(router, cluster: cluster)
        try RouterCheckpoint.write(config: rc, weights: try router.stateDict(), steps: 0, to: run.router)
    }

    func testEvalWritesReportTablesAndPlots() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        try TinyRun.writeShards(run)
        try writeConstantRouter(run, cluster: 0)
        let job = EvalJob(run: run, samples: 4, fidSamples: 6, steps: 2, guidance: 2, strategies: [.top1, .full, .oracle],
                          classifierSteps: 5, alignmentPerCluster: 3, routerTimes: [0.1, 0.9], alignmentTimes: [0.5])
        var lines: [String] = []
        let report = try job.run(inception: nil, log: { lines.append($0) })
        XCTAssertEqual(report.strategies.map(\.strategy), [.top1, .full, .oracle])
        XCTAssertTrue(report.sharedWithTraining)
        XCTAssertTrue(report.notes.contains { $0.contains("No monolith row") }, "\(report.notes)")
        XCTAssertEqual(report.fidReference, 6)
        for s in report.strategies {
            XCTAssertEqual(s.samples, 4)
            XCTAssertNil(s.fid)
            XCTAssertNotNil(s.classifierFD)
            XCTAssertNotNil(s.promptAccuracy)
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.eval.appendingPathComponent(s.grid).path))
            // Cost per image, counted from the weights used: the constant router leaves full with one expert
            // above RoutingStrategy.fullMinimumWeight, so every row here evaluates one expert per step.
            let cost = try XCTUnwrap(s.cost, s.name)
            XCTAssertEqual(cost.expertEvaluationsPerStep, 1, s.name)
            XCTAssertEqual(cost.routerEvaluationsPerStep, 1, s.name)
            XCTAssertEqual(cost.modelEvaluations, 2, s.name)
            XCTAssertGreaterThan(cost.secondsPerImage, 0, s.name)
        }
        XCTAssertTrue(try String(contentsOf: run.eval.appendingPathComponent("report.md"), encoding: .utf8)
            .contains("| expert evaluations per step | router evaluations per step | s per image |"))
        XCTAssertEqual(report.router.map(\.t), [0.1, 0.9])
        // A router that always says cluster 0 is right exactly on cluster 0's images, whatever t: the same accuracy
        // at every t, strictly between 0 and 1 (both clusters are in the data), and no entropy.
        let share = try XCTUnwrap(report.router.first?.accuracy)
        XCTAssertTrue(share > 0 && share < 1, "\(report.router)")
        for p in report.router {
            XCTAssertEqual(p.accuracy, share, accuracy: 1e-12, "t=\(p.t)")
            XCTAssertLessThan(p.entropy, 1e-3, "t=\(p.t)")
        }
        let a = try XCTUnwrap(report.alignment)
        XCTAssertEqual(a.imagesPerCluster.count, 2)  // from the 6 reference images, at most 3 per cluster
        XCTAssertTrue(a.imagesPerCluster.allSatisfy { (1...3).contains($0) }, "\(a.imagesPerCluster)")
        XCTAssertTrue(a.errors.allSatisfy { $0.allSatisfy { $0 != nil && $0!.isFinite } })
        for name in ["report.md", "report.json", "router.png", "alignment.png", "classifier/config.json",
                     "classifier/model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.eval.appendingPathComponent(name).path), name)
        }
        let md = try String(contentsOf: run.eval.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| top1 | 4 |"), md)
        XCTAssertTrue(md.contains("FID skipped"), md)
        XCTAssertTrue(md.contains("not comparable"), md)
        XCTAssertTrue(md.contains("## Router"), md)
        XCTAssertTrue(md.contains("Router: text-free, p(k | x_t, t)"), md)
        XCTAssertTrue(md.contains("| router | accuracy at t = 0.90 | accuracy at t = 0.10 |"), md)
        XCTAssertEqual(report.routerKind, .textFree)
        XCTAssertNil(report.routerUnconditional)
        XCTAssertTrue(md.contains("x0 error"), md)
        let decoded = try JSONDecoder().decode(EvalReport.self, from: Data(contentsOf: run.eval.appendingPathComponent("report.json")))
        XCTAssertEqual(decoded.samples, 4)
        // A second eval, with a router that always says cluster 1, reuses the classifier and is right exactly
        // where the first was wrong: with K = 2 the two accuracies sum to 1 at every t.
        try writeConstantRouter(run, cluster: 1)
        lines.removeAll()
        let flipped = try job.run(inception: nil, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("reusing") }, "\(lines)")
        for (a, b) in zip(report.router, flipped.router) {
            XCTAssertEqual(a.accuracy + b.accuracy, 1, accuracy: 1e-12, "t=\(a.t)")
        }

        // Prompt accuracy is withheld, by name, when the classifier is below the threshold (here: just above what
        // this classifier reached); at or under it, it is shown.
        let reached = try XCTUnwrap(flipped.classifier?.heldOutAccuracy)
        XCTAssertEqual(flipped.minClassifierAccuracy, EvalJob.defaultMinClassifierAccuracy)
        var strict = job
        strict.minClassifierAccuracy = min(1, reached + 0.01)
        let withheld = try strict.run(inception: nil)
        if reached < 1 {
            XCTAssertTrue(withheld.strategies.allSatisfy { $0.promptAccuracy == nil }, "\(withheld.strategies)")
            XCTAssertTrue(withheld.notes.contains { $0.hasPrefix("Prompt accuracy withheld: the classifier's held-out accuracy") },
                          "\(withheld.notes)")
            let md = try String(contentsOf: run.eval.appendingPathComponent("report.md"), encoding: .utf8)
            XCTAssertTrue(md.contains("| top1 | 4 | – | ") && md.contains(" | withheld | "), md)
        }
        strict.minClassifierAccuracy = reached
        XCTAssertTrue(try strict.run(inception: nil).strategies.allSatisfy { $0.promptAccuracy != nil })
        strict.minClassifierAccuracy = 1.5
        assertThrows({ try strict.validate() }, contains: "--min-classifier-accuracy must lie in [0, 1], not 1.5")
    }

    /// With the partition's held_out/ shards and a trained monolith: the reference set comes from held_out/, the
    /// monolith gets a row, and a shared classifier folder is reused by a second run and refused for other classes.
    func testHeldOutDataMonolithRowAndSharedClassifier() throws {
        let run = try TinyRun.withCheckpoints(tmp.appendingPathComponent("run"))
        try TinyRun.writeShards(run)
        try TinyRun.writeShards(run, heldOut: true)
        try FileManager.default.copyItem(at: run.expert(0), to: run.monolith)
        // Issue #18, item 9: expert 1 and the monolith say they were trained on another shard_1 than the partition
        // holds now (expert 0 records nothing, an older checkpoint): the report notes name both.
        let partition = run.partition(try run.config())
        let current = ShardIdentity.current(partition: partition, clusters: [0, 1]).digests
        for (folder, digests) in [(run.expert(1), ["shard_1": "0123456789abcdef"]),
                                  (run.monolith, ["shard_0": current["shard_0"]!, "shard_1": "0123456789abcdef"])] {
            let url = folder.appendingPathComponent("config.json")
            var dict = try JSONObject.read(url)
            dict["shards"] = digests
            try JSONObject.write(dict, to: url)
        }
        let shared = tmp.appendingPathComponent("classifier-test")
        let job = EvalJob(run: run, samples: 4, fidSamples: 6, steps: 2, guidance: 2, strategies: [.top1],
                          classifierSteps: 5, classifierFolder: shared, alignmentPerCluster: 3, routerTimes: [0.5],
                          alignmentTimes: [0.5])
        let report = try job.run(inception: nil)
        XCTAssertFalse(report.sharedWithTraining)
        XCTAssertTrue(report.dataSource.hasSuffix(HeldOut.folderName), report.dataSource)
        XCTAssertEqual(report.strategies.map(\.name), ["top1", "monolith"])
        XCTAssertNil(report.strategies[1].strategy)
        XCTAssertNotNil(report.strategies[1].classifierFD)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.eval.appendingPathComponent("samples_monolith.png").path))
        XCTAssertEqual(report.classifierFolder, shared.path)
        XCTAssertEqual(report.classifier?.trainImages, 20)
        let md = try String(contentsOf: run.eval.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| monolith | 4 |"), md)
        XCTAssertFalse(md.contains("own training shards"), md)
        let stale = "shard_1 (trained on 0123456789abcdef, now \(current["shard_1"]!))"
        for model in ["expert 1", "the monolith"] {
            XCTAssertTrue(report.notes.contains { $0.hasPrefix("\(model) was trained on other data") && $0.contains(stale) },
                          "\(report.notes)")
            XCTAssertTrue(md.contains("- \(model) was trained on other data"), md)
        }
        XCTAssertFalse(report.notes.contains { $0.contains("expert 0 was trained") || $0.contains("shard_0 (") },
                       "\(report.notes)")

        // A second run with the same classes reuses the shared classifier; other classes are refused.
        let other = try TinyRun.withCheckpoints(tmp.appendingPathComponent("other"))
        try TinyRun.writeShards(other)
        var lines: [String] = []
        var second = job
        second.run = other
        _ = try second.run(inception: nil, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("reusing \(shared.path)") }, "\(lines)")
        try FileManager.default.removeItem(at: other.partition(try other.config()))
        try TinyRun.writeShards(other, labels: ["x", "y", "z"])
        assertThrows({ try second.run(inception: nil) }, contains: "give each dataset its own --classifier folder")
    }

    /// A text-conditioned router is scored with its images' captions and without them, side by side; the prompt
    /// strategy on a partition without caption centroids is refused before anything is sampled.
    func testTextRouterIsReportedWithAndWithoutThePromptAndPromptNeedsCentroids() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        try TinyRun.writeShards(run)
        var config = try run.config()
        config.router.model = "router-T/4-text"
        try config.write(to: run.runJSON)
        var rc = RouterConfig.cpuTiny.withText(384)
        rc.numExperts = 2
        try RouterCheckpoint.write(config: rc, weights: try Router(rc).stateDict(), steps: 0, to: run.router)
        // A text-free router to compare with, scored on the same images.
        let freeFolder = tmp.appendingPathComponent("text-free-router")
        var free = RouterConfig.cpuTiny
        free.numExperts = 2
        try RouterCheckpoint.write(config: free, weights: try Router(free).stateDict(), steps: 0, to: freeFolder)
        var job = EvalJob(run: run, samples: 4, fidSamples: 6, steps: 2, guidance: 2, strategies: [.top1, .full, .oracle],
                          classifierSteps: 2, alignmentPerCluster: 2, routerTimes: [0.05, 0.95], alignmentTimes: [0.5])
        job.compareRouters = [freeFolder]
        let report = try job.run(inception: nil)
        // The compared router samples too, with every strategy that consults a router (not oracle).
        XCTAssertEqual(report.strategies.map(\.name),
                       ["top1", "full", "oracle", "top1 (text-free-router)", "full (text-free-router)"])
        XCTAssertEqual(report.strategies.map(\.router), [nil, nil, nil, "text-free-router", "text-free-router"])
        for s in report.strategies {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.eval.appendingPathComponent(s.grid).path), s.grid)
        }
        // Untrained routers are near uniform: full evaluates both experts, top-1 and oracle one.
        XCTAssertEqual(report.strategies.map { $0.cost?.expertEvaluationsPerStep }, [1, 2, 1, 1, 2])
        var only = job
        only.compareStrategies = [.top1]
        XCTAssertEqual(try only.run(inception: nil).strategies.map(\.name), ["top1", "full", "oracle", "top1 (text-free-router)"])
        XCTAssertEqual(report.comparedRouters.map(\.kind), [.textFree])
        XCTAssertEqual(report.comparedRouters.first?.points.map(\.t), [0.05, 0.95])
        XCTAssertNil(report.comparedRouters.first?.unconditional)
        XCTAssertEqual(report.routerKind, .textConditioned)
        XCTAssertEqual(report.routerUnconditional?.map(\.t), [0.05, 0.95])
        let md = try String(contentsOf: run.eval.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("Router: text-conditioned, p(k | x_t, t, prompt)"), md)
        XCTAssertTrue(md.contains("| text-conditioned, with the prompt |"), md)
        XCTAssertTrue(md.contains("| text-conditioned, no prompt (null caption) |"), md)
        XCTAssertTrue(md.contains("accuracy without the prompt"), md)
        XCTAssertTrue(md.contains("| `\(freeFolder.path)`: text-free |"), md)

        // A compared router for another K is refused by name.
        var three = free
        three.numExperts = 3
        try RouterCheckpoint.write(config: three, weights: try Router(three).stateDict(), steps: 0, to: freeFolder)
        assertThrows({ try job.run(inception: nil) }, contains: "scores 3 experts, but the run has 2")

        var prompt = job
        prompt.strategies = [.prompt]
        assertThrows({ try prompt.run(inception: nil) }, contains: "routing strategy prompt needs")
    }

    func testDiagonalBest() {
        XCTAssertEqual(AlignmentMatrix(errors: [[1, 5], [3, 2]], times: [0.5], imagesPerCluster: [1, 1]).diagonalBest,
                       [0, 1])
        XCTAssertEqual(AlignmentMatrix(errors: [[5, 3], [2, 2]], times: [0.5], imagesPerCluster: [1, 1]).diagonalBest,
                       [1])
        XCTAssertEqual(AlignmentMatrix(errors: [[nil, 3], [3, 2]], times: [0.5], imagesPerCluster: [1, 1]).diagonalBest,
                       [1])
    }

    func testBadEvalSettings() throws {
        let run = RunLayout(tmp)
        assertThrows({ try EvalJob(run: run, samples: 1).validate() }, contains: "--samples must be ≥ 2")
        assertThrows({ try EvalJob(run: run, strategies: []).validate() }, contains: "no routing strategy")
        assertThrows({ try EvalJob(run: run).run(inception: nil) }, contains: "run.json")
        // Issue #18: the step bound is checked before the run is read (tmp holds no run.json).
        assertThrows({ try EvalJob(run: run, steps: 1_000_000_000_000).run(inception: nil) },
                     contains: "--steps must be ≤ 10000 (SamplerConfig.maxSteps)")
        assertThrows({ try EvalJob(run: run, steps: -1).validate() }, contains: "--steps must be ≥ 1, not -1")
        assertThrows({ try EvalJob(run: run, guidance: .nan).validate() }, contains: "(--cfg, guidance_scale) must be finite")
        // Issue #18: an absurd guidance scale is refused up front, naming the option (it used to end in NaN images).
        assertThrows({ try EvalJob(run: run, guidance: 1e30).validate() },
                     contains: "(--cfg, guidance_scale) must be finite and within ±100")
    }

    func testClassifierLearnsAndRoundTrips() throws {
        Runtime.manualSeed(0)
        let bright = try Tensor.rand([40, 1, 8, 8]) * 0.3 + 0.7, dark = try Tensor.rand([40, 1, 8, 8]) * 0.3
        let images = try Tensor.cat([bright, dark]), labels = Array(repeating: 0, count: 40) + Array(repeating: 1, count: 40)
        let model = try ImageClassifier(.init(channels: 1, imageSize: 8, classes: ["bright", "dark"]))
        try model.fit(images: images, labels: labels, steps: 60, batchSize: 16)
        let predicted = try model.predict(images)
        XCTAssertGreaterThan(Double(zip(predicted, labels).filter { $0 == $1 }.count) / 80, 0.95)
        let folder = tmp.appendingPathComponent("clf")
        try model.save(to: folder)
        let loaded = try ImageClassifier.load(from: folder)
        XCTAssertEqual(try loaded.predict(images), predicted)
        XCTAssertEqual(try loaded.featureBatches(images).shape, [80, 128])
        assertThrows({ try model.features(Tensor.zeros([1, 3, 8, 8])) }, contains: "[N, 1, 8, 8]")
        assertThrows({ try ImageClassifier(.init(channels: 1, imageSize: 8, classes: ["one"])) }, contains: "≥ 2 classes")
    }
}
