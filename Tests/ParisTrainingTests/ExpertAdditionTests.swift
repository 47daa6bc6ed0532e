import Foundation
import ParisData
import ParisImage
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTraining
import Torch
import XCTest

/// `paris run add-expert` (`ExpertAddition`) on real partitions (`Partitioner.run` with small fake encoders): the
/// K + 1-th expert trains on its shard alone, only the router is retrained (for K + 1), the existing experts and
/// their shards' data are untouched, the new shard and held-out split are recorded like the others', an interrupted
/// addition resumes, and bad new data is refused with the run unchanged.
final class ExpertAdditionTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    static let colours: [(String, [UInt8])] = [
        ("red", [220, 30, 30]), ("green", [30, 200, 40]), ("blue", [20, 40, 230]), ("yellow", [240, 230, 20]),
    ]

    /// An imagefolder of 8-px squares, `count` per colour, captioned "a <colour> square".
    func dataset(_ folder: URL, colours: [Int], count: Int = 14) throws {
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("train"), withIntermediateDirectories: true)
        var lines: [String] = [], rng = SplitMix64(seed: UInt64(colours.first ?? 0))
        for i in 0..<(count * colours.count) {
            let (name, rgb) = Self.colours[colours[i % colours.count]]
            var px: [UInt8] = []
            for _ in 0..<64 { for ch in 0..<3 { px.append(UInt8(clamping: Int(rgb[ch]) + Int(rng.next() % 21) - 10)) } }
            let file = "train/\(name)-\(i).png"
            try Image(width: 8, height: 8, channels: 3, pixels: px).writePNG(to: folder.appendingPathComponent(file))
            lines.append(#"{"file_name": "\#(file)", "text": "a \#(name) square", "label": "\#(name)"}"#)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("metadata.jsonl"))
    }

    /// Letter-count sentence embeddings and hashed caption tokens (5 tokens of 8 dims), named `captionEncoder`.
    func encoders(captionEncoder: String = "fake-tokens") -> PartitionEncoders {
        PartitionEncoders(
            sentences: .init(name: "letter-counts") { captions in
                let rows = captions.map { c in (0..<26).map { i in Float(c.utf8.filter { $0 == UInt8(97 + i) }.count) } }
                return try Tensor(rows.flatMap { $0 }, shape: [captions.count, 26])
            },
            captions: .init(name: captionEncoder) { captions, _ in
                let values = captions.flatMap { c in (0..<40).map { Float((c.utf8.count * 31 + $0) % 17) / 17 } }
                let mask = try Tensor.arange(0, 5).lt(3.0).unsqueeze(0).expand([captions.count, 5]).contiguous()
                return (try Tensor(values, shape: [captions.count, 5, 8]), mask)
            })
    }

    func partition(_ data: URL, _ out: URL, k: Int, heldOut: Int, captionEncoder: String = "fake-tokens") throws {
        var c = PartitionConfig.tiny
        c.numClusters = k
        c.features = .text
        c.imageSize = 8
        c.heldOut = heldOut
        c.seed = 5
        try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders(captionEncoder: captionEncoder))
    }

    /// A run of K = 2 (red, green | blue split by k-means on captions) with both experts and the router trained,
    /// and the new data: yellow squares as a one-cluster partition with 4 held out.
    func world() throws -> (run: URL, data: URL, root: URL) {
        let root = try TinyRun.temporaryFolder(self)
        try dataset(root.appendingPathComponent("colours"), colours: [0, 1, 2])
        let run = root.appendingPathComponent("run")
        var config = RunConfig(name: "grow", dataset: root.appendingPathComponent("colours").path, numExperts: 2,
                               experts: (0..<2).map { TinyRun.job(seed: UInt64(10 + $0)) },
                               router: TrainJobConfig(model: "router-T/4", batchSize: 8, steps: 6, checkpointEvery: 2,
                                                      logEvery: 2, seed: 2000),
                               monolith: nil)
        config.router.warmupSteps = 2
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try config.write(to: run.appendingPathComponent("run.json"))
        try partition(root.appendingPathComponent("colours"), run.appendingPathComponent("partition"), k: 2, heldOut: 6)
        for k in 0..<2 { _ = try ExpertTrainer.train(run: run, expert: k) }
        _ = try RouterTrainer.train(run: run, options: .init())
        try dataset(root.appendingPathComponent("yellow"), colours: [3])
        try partition(root.appendingPathComponent("yellow"), root.appendingPathComponent("yellow-partition"), k: 1, heldOut: 4)
        return (run, root.appendingPathComponent("yellow-partition"), root)
    }

    func digest(_ url: URL) throws -> String { try Checksum.sha256(file: url) }

    func testANewExpertTrainsInIsolationAndOnlyTheRouterIsRetrained() throws {
        let (run, data, _) = try world()
        let layout = RunLayout(run)
        let before = try (0..<2).map { try digest(layout.expert($0).appendingPathComponent(ExpertCheckpoint.weightsName)) }
        let shardData = try (0..<2).map { k in
            try Shard.dataFiles.map { try digest(layout.shard(k, try layout.config()).appendingPathComponent($0)) }
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
            XCTAssertEqual(try Shard.dataFiles.map { try digest(layout.shard(k, config).appendingPathComponent($0)) }, shardData[k])
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
