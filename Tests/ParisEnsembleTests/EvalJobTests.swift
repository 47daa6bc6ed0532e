import Foundation
import ParisRun
import ParisData
import ParisModels
@testable import ParisEnsemble
@testable import ParisEval
import ParisTestSupport
import ParisTraining
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

    /// Shard k: 10 images of 32×32 RGB, bright for cluster 0 and dark for cluster 1; labels "a"/"b" by cluster,
    /// plus "c" on a few (so the classifier sees three classes); random caption embeddings.
    func writeShards(_ run: RunLayout, heldOut: Bool = false, labels: [String] = ["a", "b", "c"]) throws {
        let config = try run.config()
        Runtime.manualSeed(3)
        for c in 0..<2 {
            let n = 10
            let base = try Tensor.randint(0, 100, [n, 3, 32, 32]) + (c == 0 ? 150 : 0)
            let items = (0..<n).map { i in
                Shard.Item(fileName: "\(heldOut ? "h" : "")\(c)_\(i).png", text: "caption \(c) \(i % 3)",
                           label: i < 2 ? labels[2] : labels[c])
            }
            let info = ShardInfo(cluster: c, numClusters: 2, count: n, channels: 3, imageSize: 32, captionCount: 3,
                                 textEncoder: "stub", textLength: 32, textDim: 384, dataset: "test",
                                 partitionMethod: "label")
            let shard = try Shard(info: info, images: base.to(dtype: .uint8),
                                  captionIndex: Tensor((0..<n).map { Int64($0 % 3) }),
                                  textEmbeddings: Tensor.randn([3, 32, 384]).to(dtype: .float16),
                                  textMask: Tensor.ones([3, 32], dtype: .bool), items: items)
            let folder = run.shard(c, config)
            try shard.write(to: heldOut ? folder.deletingLastPathComponent().appendingPathComponent(HeldOut.folderName)
                .appendingPathComponent(folder.lastPathComponent) : folder)
        }
    }

    func testEvalWritesReportTablesAndPlots() throws {
        let run = try TinyRun.make(tmp)
        try writeShards(run)
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
        }
        XCTAssertEqual(report.router.map(\.t), [0.1, 0.9])
        for p in report.router {
            XCTAssertTrue((0...1).contains(p.accuracy))
            XCTAssertLessThanOrEqual(p.entropy, Foundation.log(2) + 1e-9)
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
        // A second eval reuses the classifier.
        lines.removeAll()
        _ = try job.run(inception: nil, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("reusing") }, "\(lines)")
    }

    /// With the partition's held_out/ shards and a trained monolith: the reference set comes from held_out/, the
    /// monolith gets a row, and a shared classifier folder is reused by a second run and refused for other classes.
    func testHeldOutDataMonolithRowAndSharedClassifier() throws {
        let run = try TinyRun.make(tmp.appendingPathComponent("run"))
        try writeShards(run)
        try writeShards(run, heldOut: true)
        try FileManager.default.copyItem(at: run.expert(0), to: run.monolith)
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

        // A second run with the same classes reuses the shared classifier; other classes are refused.
        let other = try TinyRun.make(tmp.appendingPathComponent("other"))
        try writeShards(other)
        var lines: [String] = []
        var second = job
        second.run = other
        _ = try second.run(inception: nil, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("reusing \(shared.path)") }, "\(lines)")
        try FileManager.default.removeItem(at: other.partition(try other.config()))
        try writeShards(other, labels: ["x", "y", "z"])
        assertThrows({ try second.run(inception: nil) }, contains: "give each dataset its own --classifier folder")
    }

    /// A text-conditioned router is scored with its images' captions and without them, side by side; the prompt
    /// strategy on a partition without caption centroids is refused before anything is sampled.
    func testTextRouterIsReportedWithAndWithoutThePromptAndPromptNeedsCentroids() throws {
        let run = try TinyRun.make(tmp)
        try writeShards(run)
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
        var job = EvalJob(run: run, samples: 4, fidSamples: 6, steps: 2, guidance: 2, strategies: [.top1],
                          classifierSteps: 2, alignmentPerCluster: 2, routerTimes: [0.05, 0.95], alignmentTimes: [0.5])
        job.compareRouters = [freeFolder]
        let report = try job.run(inception: nil)
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
        assertThrows({ try EvalJob(run: run, guidance: .nan).validate() }, contains: "--cfg must be finite")
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
