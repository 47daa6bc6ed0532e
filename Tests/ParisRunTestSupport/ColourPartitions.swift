import Foundation
import ParisData
import ParisDiffusion
import ParisImage
import ParisModels
import ParisRun
import Torch
import XCTest

/// Real partitions (`Partitioner.run`) of tiny image folders, with small fake encoders, for the tests that grow a
/// run by one cluster (`paris run add-expert`, admitting a contributed expert).
public enum ColourPartitions {
    public static let colours: [(String, [UInt8])] = [
        ("red", [220, 30, 30]), ("green", [30, 200, 40]), ("blue", [20, 40, 230]), ("yellow", [240, 230, 20]),
    ]

    /// An imagefolder of 8-px squares, `count` per colour, captioned "a <colour> square", labelled by colour.
    public static func dataset(_ folder: URL, colours: [Int], count: Int = 14) throws {
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
    public static func encoders(captionEncoder: String = "fake-tokens") -> PartitionEncoders {
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

    /// Prompts as the fake caption tokens (`length` tokens of 8 dims), for sampling a run of these partitions.
    public static func encoder(_ prompts: [String], _ length: Int) throws -> TextCondition {
        let (tokens, mask) = try encoders().captions.encode(prompts, length)
        return try TextCondition(tokens: tokens.slice(1, 0, length).contiguous(), mask: mask.slice(1, 0, length).contiguous())
    }

    /// k-means on the captions into `k` clusters, `heldOut` images held out.
    public static func partition(_ data: URL, _ out: URL, k: Int, heldOut: Int, captionEncoder: String = "fake-tokens") throws {
        var c = PartitionConfig.tiny
        c.numClusters = k
        c.features = .text
        c.imageSize = 8
        c.heldOut = heldOut
        c.seed = 5
        try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders(captionEncoder: captionEncoder))
    }

    /// A K = 2 run (red, green, blue squares, split by k-means on the captions, 6 held out) with run.json and its
    /// partition; nothing trained. Returns the run folder `<root>/run`.
    public static func run(in root: URL, steps: Int = 6, routerSteps: Int = 6) throws -> URL {
        try dataset(root.appendingPathComponent("colours"), colours: [0, 1, 2])
        let run = root.appendingPathComponent("run")
        var config = RunConfig(name: "grow", dataset: root.appendingPathComponent("colours").path, numExperts: 2,
                               experts: (0..<2).map { TinyRun.job(seed: UInt64(10 + $0), steps: steps) },
                               router: TrainJobConfig(model: "router-T/4", batchSize: 8, steps: routerSteps, checkpointEvery: 2,
                                                      logEvery: 2, seed: 2000),
                               monolith: nil)
        config.router.warmupSteps = 2
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try config.write(to: run.appendingPathComponent("run.json"))
        try partition(root.appendingPathComponent("colours"), run.appendingPathComponent("partition"), k: 2, heldOut: 6)
        return run
    }

    /// Yellow squares as a one-cluster partition with 4 held out: the new cluster's data. Returns its folder.
    public static func newCluster(in root: URL) throws -> URL {
        try dataset(root.appendingPathComponent("yellow"), colours: [3])
        try partition(root.appendingPathComponent("yellow"), root.appendingPathComponent("yellow-partition"), k: 1, heldOut: 4)
        return root.appendingPathComponent("yellow-partition")
    }
}
