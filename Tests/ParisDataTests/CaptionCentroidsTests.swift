import Foundation
import ParisImage
import ParisData
import Torch
import XCTest

/// `CaptionCentroids`: a caption goes to the cluster the partition put it in, from its sentence embedding alone,
/// for text and joint (both) features; partitions without caption centroids are refused by name.
final class CaptionCentroidsTests: XCTestCase {
    var dir: URL!
    var data: URL { dir.appendingPathComponent("colours") }

    static let colours: [(String, [UInt8])] = [
        ("red", [220, 30, 30]), ("green", [30, 200, 40]), ("blue", [20, 40, 230]), ("yellow", [240, 230, 20]),
    ]
    static let shapes = ["square", "disc", "kite", "star", "heart"]

    override func setUpWithError() throws {
        Runtime.threads = 1
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-captions-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: data.appendingPathComponent("train"), withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// 120 noisy 8×8 images of the four colours; caption "a <colour> <shape>": 20 distinct captions.
    func writeDataset() throws {
        var lines: [String] = [], rng = SplitMix64(seed: 9)
        for i in 0..<120 {
            let (name, rgb) = Self.colours[i % 4]
            var px: [UInt8] = []
            for _ in 0..<64 { for ch in 0..<3 { px.append(UInt8(clamping: Int(rgb[ch]) + Int(rng.next() % 41) - 20)) } }
            let file = "train/\(String(format: "%03d", i)).png"
            try Image(width: 8, height: 8, channels: 3, pixels: px).writePNG(to: data.appendingPathComponent(file))
            let caption = "a \(name) \(Self.shapes[(i / 4) % Self.shapes.count])"
            lines.append(#"{"file_name": "\#(file)", "text": "\#(caption)", "label": \#(i % 4)}"#)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data.appendingPathComponent("metadata.jsonl"))
    }

    /// Letter counts as sentence embeddings (26 wide), mean colour as image features.
    static func sentences(_ captions: [String]) throws -> Tensor {
        let rows = captions.map { c in (0..<26).map { i in Float(c.utf8.filter { $0 == UInt8(97 + i) }.count) } }
        return try Tensor(rows.flatMap { $0 }, shape: [captions.count, 26])
    }

    var encoders: PartitionEncoders {
        PartitionEncoders(
            image: .init(name: "mean-colour") { images in
                try Tensor.stack(images.map { try $0.tensor(range: .zeroToOne).mean(dims: [1, 2]) })
            },
            sentences: .init(name: "letter-counts") { try Self.sentences($0) },
            captions: .init(name: "fake-tokens") { captions, _ in
                (try Tensor.ones([captions.count, 4, 8]), try Tensor.ones([captions.count, 4], dtype: .bool))
            })
    }

    func partition(_ name: String, method: PartitionConfig.Method = .kmeans,
                   features: PartitionConfig.Features, metric: KMeans.Metric = .cosine,
                   fine: Int? = nil) throws -> URL {
        var c = PartitionConfig.tiny
        c.numClusters = 4
        c.method = method
        c.features = features
        c.metric = metric
        c.fineClusters = fine
        c.imageSize = 8
        c.seed = 5
        let out = dir.appendingPathComponent(name)
        try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders)
        return out
    }

    /// Each distinct training caption and the cluster most of its images are in.
    func captionsAndClusters(_ partition: URL) throws -> [(String, Int)] {
        var votes: [String: [Int: Int]] = [:]
        for k in 0..<4 {
            let shard = try Shard.load(from: partition.appendingPathComponent("shard_\(k)"))
            for item in shard.items { votes[item.text, default: [:]][k, default: 0] += 1 }
        }
        return votes.keys.sorted().map { c in (c, votes[c]!.max { ($0.value, -$0.key) < ($1.value, -$1.key) }!.key) }
    }

    /// The fraction of the partition's distinct captions that route to their own cluster.
    func agreement(_ partition: URL) throws -> Double {
        let centroids = try CaptionCentroids.load(partition: partition, embeddingDim: 26)
        let pairs = try captionsAndClusters(partition)
        let routed = try centroids.clusters(embeddings: Self.sentences(pairs.map(\.0)))
        return Double(zip(routed, pairs.map(\.1)).filter { $0 == $1 }.count) / Double(pairs.count)
    }

    func testTrainingCaptionsRouteToTheirOwnCluster() throws {
        try writeDataset()
        // Text features: the assignment itself, for one-stage and two-stage (fine → coarse) k-means and both metrics.
        XCTAssertEqual(try agreement(partition("text", features: .text)), 1.0)
        XCTAssertEqual(try agreement(partition("text-fine", features: .text, fine: 10)), 1.0)
        XCTAssertEqual(try agreement(partition("text-one-stage", features: .text, fine: 4)), 1.0)
        XCTAssertEqual(try agreement(partition("text-l2", features: .text, metric: .euclidean)), 1.0)
        // Joint features: the caption slice alone; the clear majority.
        let both = try partition("both", features: .both)
        XCTAssertEqual(try CaptionCentroids.load(partition: both, embeddingDim: 26).centroids.size(1), 26)
        XCTAssertGreaterThanOrEqual(try agreement(both), 0.8)
        XCTAssertGreaterThanOrEqual(try agreement(partition("both-l2", features: .both, metric: .euclidean)), 0.8)
    }

    func testAvailabilityWidthAndUnsupportedPartitions() throws {
        try writeDataset()
        let text = try partition("text", features: .text)
        let centroids = try CaptionCentroids.load(partition: text, embeddingDim: 26)
        let pairs = try captionsAndClusters(text)
        let own = pairs[0].1
        var available = [Bool](repeating: true, count: 4)
        available[own] = false
        let rerouted = try centroids.clusters(embeddings: Self.sentences([pairs[0].0]), available: available)
        XCTAssertNotEqual(rerouted, [own], "a missing cluster is never chosen")
        XCTAssertThrowsError(try centroids.clusters(embeddings: Tensor.ones([1, 5]))) {
            XCTAssertTrue("\($0)".contains("26-wide"), "\($0)")
        }
        XCTAssertThrowsError(try CaptionCentroids.load(partition: text, embeddingDim: 30)) {
            XCTAssertTrue("\($0)".contains("30-wide"), "\($0)")
        }
        for (name, method, features) in [("image", PartitionConfig.Method.kmeans, PartitionConfig.Features.image),
                                         ("random", .random, .text), ("label", .label, .text)] {
            let p = try partition(name, method: method, features: features)
            XCTAssertThrowsError(try CaptionCentroids.load(partition: p, embeddingDim: 26), name) {
                let message = "\($0)"
                XCTAssertTrue(message.contains("--features text") && message.contains("--features both"), message)
                XCTAssertTrue(message.contains(name == "image" ? "image features only" : "a \(name) split"), message)
                XCTAssertTrue(message.contains(p.appendingPathComponent("manifest.json").path), message)
            }
        }
    }
}
