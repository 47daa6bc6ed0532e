import Foundation
import ParisData
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// `paris run add-expert` (`ExpertAddition`) on real partitions (`Partitioner.run` with small fake encoders): the
/// K + 1-th expert trains on its shard alone, only the router is retrained (for K + 1), the existing experts and
/// their shards' data are untouched, the new shard and held-out split are recorded like the others', an interrupted
/// addition resumes, and bad new data is refused with the run unchanged.
final class ExpertAdditionTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func dataset(_ folder: URL, colours: [Int]) throws { try ColourPartitions.dataset(folder, colours: colours) }

    func partition(_ data: URL, _ out: URL, k: Int, heldOut: Int, captionEncoder: String = "fake-tokens") throws {
        try ColourPartitions.partition(data, out, k: k, heldOut: heldOut, captionEncoder: captionEncoder)
    }

    /// A run of K = 2 (red, green | blue split by k-means on captions) with both experts and the router trained,
    /// and the new data: yellow squares as a one-cluster partition with 4 held out.
    func world() throws -> (run: URL, data: URL, root: URL) {
        let root = try TinyRun.temporaryFolder(self)
        let run = try ColourPartitions.run(in: root)
        for k in 0..<2 { _ = try ExpertTrainer.train(run: run, expert: k) }
        _ = try RouterTrainer.train(run: run, options: .init())
        return (run, try ColourPartitions.newCluster(in: root), root)
    }


    func digest(_ url: URL) throws -> String { try Checksum.sha256(file: url) }

    func testANewExpertTrainsInIsolationAndOnlyTheRouterIsRetrained() throws {
        let (run, data, _) = try world()
        let layout = RunLayout(run)
        let before = try (0..<2).map { try digest(layout.expert($0).appendingPathComponent(ExpertCheckpoint.weightsName)) }
        let shardData = try (0..<2).map { k in
            try Shard.info(at: layout.shard(k, try layout.config())).dataFiles.map { try digest(layout.shard(k, try layout.config()).appendingPathComponent($0)) }
        }
        let oldRouter = try digest(layout.router.appendingPathComponent(RouterCheckpoint.weightsName))

        // Interrupted after the expert's first 2 steps: the run is as it was, the staging run holds the work.
        let listing = TinyRun.listing(run)
        XCTAssertFalse(try ExpertAddition.run(run: run, data: data, options: TrainOptions(stopAfterSteps: 2)))
        XCTAssertEqual(TinyRun.listing(run).filter { !$0.hasPrefix(ExpertAddition.stagingName) }, listing)
        XCTAssertEqual(try layout.config().numExperts, 2)
        // The same call resumes and finishes.
        var lines: [String] = []
        XCTAssertTrue(try ExpertAddition.run(run: run, data: data) { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("resuming the addition of expert 2") }, "\(lines)")

        let config = try layout.config()
        XCTAssertEqual(config.numExperts, 3)
        XCTAssertEqual(config.experts.count, 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent(ExpertAddition.stagingName).path))
        // The existing experts and their shards' data: untouched; their shard.json now says 3 clusters.
        XCTAssertEqual(try (0..<2).map { try digest(layout.expert($0).appendingPathComponent(ExpertCheckpoint.weightsName)) }, before)
        for k in 0..<2 {
            XCTAssertEqual(try Shard.info(at: layout.shard(k, config)).dataFiles.map { try digest(layout.shard(k, config).appendingPathComponent($0)) }, shardData[k])
            XCTAssertEqual(try Shard.info(at: layout.shard(k, config)).numClusters, 3)
            XCTAssertNil(ShardIdentity.staleness(of: "expert \(k)", recorded: try ExpertCheckpoint.read(from: layout.expert(k)).shards,
                                                 partition: layout.partition(config), clusters: [k], retrain: ""))
        }
        // The new cluster is recorded like the others: its shard, its held-out shard, the manifest.
        let manifest = try PartitionManifest.load(from: layout.partition(config))
        XCTAssertEqual(manifest.numClusters, 3)
        XCTAssertEqual(manifest.clusters.map(\.index), [0, 1, 2])
        XCTAssertEqual(manifest.clusters[2].labels, ["yellow": 10])
        XCTAssertEqual(manifest.heldOut?.map(\.size).last, 4)
        XCTAssertEqual(manifest.additions?.map(\.cluster), [2])
        XCTAssertEqual(try Shard.info(at: layout.shard(2, config)).cluster, 2)
        _ = try Shard.load(from: layout.shard(2, config), expectedCluster: 2)
        _ = try Shard.load(from: layout.partition(config).appendingPathComponent("held_out/shard_2"), expectedCluster: 2)
        // The new expert trained on shard 2 alone; the router was retrained, for 3 experts on all 3 shards.
        let expert = try ExpertCheckpoint.read(from: layout.expert(2))
        XCTAssertEqual(expert.shards?.digests.keys.sorted(), ["shard_2"])
        XCTAssertEqual(try RouterCheckpoint.checkWeights(in: layout.router).numExperts, 3)
        XCTAssertEqual(RouterCheckpoint.shards(in: layout.router)?.digests.keys.sorted(), ["shard_0", "shard_1", "shard_2"])
        XCTAssertNotEqual(try digest(layout.router.appendingPathComponent(RouterCheckpoint.weightsName)), oldRouter)
        // Prompt routing knows the new cluster: its caption centroid was appended.
        let centroids = try CaptionCentroids.load(partition: layout.partition(config), embeddingDim: 26)
        XCTAssertEqual(centroids.numClusters, 3)
        XCTAssertTrue(centroids.clusterOf.contains(2))
    }

    /// `paris run add-expert` as a process: the same addition, from the command line.
    func testTheCommandAddsAnExpert() throws {
        let paris = try parisBinary(self)
        let (run, data, _) = try world()
        let (status, output) = try runProcess(paris, ["run", "add-expert", "--run", run.path, "--data", data.path,
                                                      "--threads", "1"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("expert 2 added"), output)
        XCTAssertEqual(try RunLayout(run).config().numExperts, 3)
        let again = try runProcess(paris, ["run", "add-expert", "--run", run.path, "--data", data.path])
        XCTAssertNotEqual(again.status, 0, "the same data added twice: \(again.output)")
    }

    func testBadNewDataIsRefusedAndTheRunIsUnchanged() throws {
        let (run, _, root) = try world()
        let listing = TinyRun.listing(run)
        func refused(_ data: URL, _ expected: String, line: UInt = #line) {
            XCTAssertThrowsError(try ExpertAddition.run(run: run, data: data), line: line) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
            }
            XCTAssertEqual(TinyRun.listing(run).filter { !$0.hasPrefix(ExpertAddition.stagingName) }, listing, line: line)
            try? FileManager.default.removeItem(at: run.appendingPathComponent(ExpertAddition.stagingName))
        }
        try dataset(root.appendingPathComponent("more"), colours: [3, 0])
        try partition(root.appendingPathComponent("more"), root.appendingPathComponent("two"), k: 2, heldOut: 4)
        refused(root.appendingPathComponent("two"), "must be one cluster")
        try partition(root.appendingPathComponent("more"), root.appendingPathComponent("no-held-out"), k: 1, heldOut: 0)
        refused(root.appendingPathComponent("no-held-out"), "no held-out images")
        try partition(root.appendingPathComponent("more"), root.appendingPathComponent("other-encoder"), k: 1, heldOut: 4,
                      captionEncoder: "another-encoder")
        refused(root.appendingPathComponent("other-encoder"), "caption encoder")
        refused(root.appendingPathComponent("nothing-here"), "manifest.json")
    }
}
