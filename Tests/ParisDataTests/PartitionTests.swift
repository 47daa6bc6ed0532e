import Foundation
import ParisImage
import ParisData
import Torch
import XCTest

final class PartitionTests: XCTestCase {
    var dir: URL!
    var data: URL { dir.appendingPathComponent("colours") }
    var out: URL { dir.appendingPathComponent("run/partition") }

    static let colours: [(String, [UInt8])] = [
        ("red", [220, 30, 30]), ("green", [30, 200, 40]), ("blue", [20, 40, 230]), ("yellow", [240, 230, 20]),
    ]

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-partition-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// 40 PNGs, 10 per colour, with a little noise; some RGBA with two transparent top rows, some non-square.
    /// Captions "a <colour> square", label the colour index.
    @discardableResult
    func writeDataset(extraLines: [String] = [], count: Int = 40) throws -> [String] {
        try FileManager.default.createDirectory(at: data.appendingPathComponent("train"), withIntermediateDirectories: true)
        var lines: [String] = []
        var rng = SplitMix64(seed: 3)
        for i in 0..<count {
            let (name, rgb) = Self.colours[i % 4]
            let alpha = i % 5 == 0, w = i % 3 == 0 ? 12 : 10, h = 10
            let c = alpha ? 4 : 3
            var px: [UInt8] = []
            for y in 0..<h {
                for x in 0..<w {
                    for ch in 0..<3 { px.append(UInt8(clamping: Int(rgb[ch]) + Int(rng.next() % 21) - 10)) }
                    if alpha { px.append(y < 2 ? 0 : 255) }
                }
            }
            let file = "train/\(String(format: "%03d", i)).png"
            try Image(width: w, height: h, channels: c, pixels: px).writePNG(to: data.appendingPathComponent(file))
            lines.append(#"{"file_name": "\#(file)", "text": "a \#(name) square", "label": \#(i % 4), "split": "train"}"#)
        }
        lines += extraLines
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data.appendingPathComponent("metadata.jsonl"))
        return lines
    }

    /// The fake encoders (`PartitionEncoders.fakes`).
    var encoders: PartitionEncoders { .fakes }

    func config(k: Int = 4, method: PartitionConfig.Method = .kmeans,
                features: PartitionConfig.Features = .image) -> PartitionConfig {
        var c = PartitionConfig.tiny
        c.numClusters = k
        c.method = method
        c.features = features
        c.imageSize = 8
        c.seed = 5
        return c
    }

    func testEndToEndKMeansPartition() throws {
        try writeDataset()
        var lines: [String] = []
        let manifest = try Partitioner.run(dataset: data, output: out, config: config(), encoders: encoders,
                                           log: { lines.append($0) })
        XCTAssertEqual(manifest.numImages, 40)
        XCTAssertEqual(manifest.sizes, [10, 10, 10, 10])
        XCTAssertEqual(manifest.metrics?.purity, 1.0)
        XCTAssertEqual(manifest.metrics?.nmi ?? 0, 1.0, accuracy: 1e-12)
        XCTAssertLessThan(manifest.metrics?.randomPurity ?? 1, 0.8)
        XCTAssertEqual(manifest.imageModel, "mean-colour")
        XCTAssertNil(manifest.textModel)
        XCTAssertTrue(lines.contains { $0.contains("images + features: 40/40") }, "\(lines)")

        // Files.
        let fm = FileManager.default
        for name in ["manifest.json", "centroids.safetensors", "grids.png"] + (0..<4).map({ "grid_\($0).png" }) {
            XCTAssertTrue(fm.fileExists(atPath: out.appendingPathComponent(name).path), name)
        }
        XCTAssertEqual(try PartitionManifest.load(from: out), manifest)
        let centroids = try SafeTensors.load(out.appendingPathComponent("centroids.safetensors"))
        XCTAssertEqual(try centroids.tensor("coarse_centroids").shape, [4, 3])
        XCTAssertEqual(try centroids.tensor("assignments").shape, [40])
        let grid = try Image(contentsOf: out.appendingPathComponent("grid_0.png"))
        XCTAssertEqual([grid.width, grid.height], [80, 20])  // 8 columns × (8 + 2), 2 rows
        let grids = try Image(contentsOf: out.appendingPathComponent("grids.png"))
        XCTAssertEqual([grids.width, grids.height], [160, 40])

        // Each shard reads back, with one colour, one caption, padded tokens and the manifest's checksums.
        for k in 0..<4 {
            let shard = try Shard.load(from: out.appendingPathComponent("shard_\(k)"), expectedCluster: k)
            XCTAssertEqual(shard.info.count, 10)
            XCTAssertEqual(Set(shard.items.compactMap(\.label)).count, 1)
            XCTAssertEqual(shard.info.captionCount, 1)
            XCTAssertEqual(shard.images.shape, [10, 3, 8, 8])
            XCTAssertEqual(shard.textEmbeddings.shape, [1, 8, 8])
            XCTAssertEqual(shard.textEmbeddings.dtype, .float16)
            XCTAssertEqual(try shard.textMask.to(dtype: .int64).sum().itemInt(), 3)
            XCTAssertEqual(shard.info.checksums, manifest.clusters[k].checksums)
            XCTAssertEqual(manifest.clusters[k].labels.values.reduce(0, +), 10)
            XCTAssertEqual(shard.info.partitionMethod, "kmeans")
        }
        // Transparent rows were composited over white: pixel (0, 0) of image 000 is white.
        let item = try XCTUnwrap((0..<4).lazy.compactMap { k -> (Shard, Int)? in
            let s = try? Shard.load(from: self.out.appendingPathComponent("shard_\(k)"))
            return s.flatMap { s in s.items.firstIndex { $0.fileName == "train/000.png" }.map { (s, $0) } }
        }.first)
        let corner = try item.0.images.select(0, item.1).select(1, 0).select(1, 0).to(dtype: .int64).toArray(as: Int64.self)
        XCTAssertTrue(corner.allSatisfy { $0 > 200 }, "\(corner)")

        // The same seed gives the same partition; overwriting needs the flag.
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: self.config(),
                                           encoders: self.encoders) }, contains: "already exists")
        let again = try Partitioner.run(dataset: data, output: out, config: config(), encoders: encoders, overwrite: true)
        XCTAssertEqual(again, manifest)
    }

    func testTextBothRandomAndLabelMethods() throws {
        try writeDataset()
        let text = try Partitioner.run(dataset: data, output: out, config: config(features: .text), encoders: encoders)
        XCTAssertEqual(text.metrics?.purity, 1.0)  // the captions name the colour
        XCTAssertEqual(text.textModel, "letter-counts")
        let both = try Partitioner.run(dataset: data, output: out, config: config(features: .both), encoders: encoders,
                                       overwrite: true)
        XCTAssertEqual(both.metrics?.purity, 1.0)
        let random = try Partitioner.run(dataset: data, output: out, config: config(method: .random),
                                         encoders: encoders, overwrite: true)
        XCTAssertEqual(random.sizes, [10, 10, 10, 10])
        XCTAssertNil(random.features)
        let label = try Partitioner.run(dataset: data, output: out, config: config(k: 2, method: .label),
                                        encoders: encoders, overwrite: true)
        XCTAssertEqual(label.sizes, [20, 20])
        XCTAssertEqual(label.clusters[0].labels, ["0": 10, "2": 10])
    }

    /// Held-out images: the same rows for every method and seed, never in a training shard, each in the cluster it
    /// would have joined; too many is an error.
    func testHeldOutImagesAreSetAsideTheSameForEveryMethod() throws {
        try writeDataset()
        func heldOutFiles(_ manifest: PartitionManifest) throws -> (held: [[String]], train: Set<String>) {
            let folder = out.appendingPathComponent(HeldOut.folderName)
            var held: [[String]] = [], train: Set<String> = []
            for k in 0..<4 {
                let name = "shard_\(k)"
                held.append(try Shard.load(from: folder.appendingPathComponent(name), expectedCluster: k).items.map(\.fileName))
                train.formUnion(try Shard.load(from: out.appendingPathComponent(name), expectedCluster: k).items.map(\.fileName))
            }
            return (held, train)
        }
        var sets: [Set<String>] = []
        for (method, seed) in [(PartitionConfig.Method.kmeans, UInt64(5)), (.random, 9), (.label, 1)] {
            var c = config(method: method)
            c.heldOut = 8
            c.seed = seed
            let m = try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders, overwrite: true)
            XCTAssertEqual(m.sizes.reduce(0, +), 32, "\(method)")
            XCTAssertEqual(m.heldOut?.map(\.size).reduce(0, +), 8, "\(method)")
            XCTAssertEqual(m.clusters.map { $0.labels.values.reduce(0, +) }.reduce(0, +), 32)
            let (held, train) = try heldOutFiles(m)
            let all = Set(held.flatMap { $0 })
            XCTAssertEqual(all.count, 8)
            XCTAssertTrue(all.isDisjoint(with: train), "\(method): a held-out image is in a training shard")
            XCTAssertEqual(try PartitionManifest.load(from: out).config.heldOut, 8)
            sets.append(all)
            if method != .random {
                // k-means on colour and the label groups: each held-out image sits with its own colour.
                for (k, files) in held.enumerated() {
                    let trainLabels = Set(m.clusters[k].labels.keys)
                    let heldLabels = Set(m.heldOut![k].labels.keys)
                    XCTAssertTrue(heldLabels.isSubset(of: trainLabels), "\(method) cluster \(k): \(files)")
                }
            }
        }
        XCTAssertEqual(sets[0], sets[1])
        XCTAssertEqual(sets[0], sets[2])
        XCTAssertEqual(HeldOut.folder(in: out)?.lastPathComponent, HeldOut.folderName)
        var c = config()
        c.heldOut = 40
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: c, encoders: self.encoders,
                                           overwrite: true) }, contains: "cannot hold out 40 of 40")
        c.heldOut = -1
        assertThrows({ try c.validate() }, contains: "held_out must be ≥ 0")
        // With the label method, a held-out label no training image has cannot be placed.
        XCTAssertEqual(try HeldOut.labelClusters(labels: ["b", "a"], groups: [["a"], ["b", "c"]]), [1, 0])
        assertThrows({ try HeldOut.labelClusters(labels: ["a", "z"], groups: [["a"], ["b"]]) },
                     contains: "held-out image 1 has label z, which no training image has")
        assertThrows({ try HeldOut.labelClusters(labels: [nil], groups: [["a"]]) }, contains: "has label none")
        // Without held-out images there is no held_out folder.
        try Partitioner.run(dataset: data, output: out, config: config(), encoders: encoders, overwrite: true)
        XCTAssertNil(HeldOut.folder(in: out))
        XCTAssertNil(try PartitionManifest.load(from: out).heldOut)
    }

    func testGrayAndLimitAndSplit() throws {
        try writeDataset(extraLines: [#"{"file_name": "test/x.png", "text": "t", "label": 0, "split": "test"}"#])
        var c = config(k: 2)
        c.channels = 1
        c.limit = 12
        c.split = "train"
        let m = try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders)
        XCTAssertEqual(m.numImages, 12)
        XCTAssertEqual(m.numSkipped, 0)
        let test = try ImageFolder.read(data, split: "test")
        XCTAssertEqual(try test.entries(0..<test.count).map(\.fileName), ["test/x.png"])
        XCTAssertEqual(try ImageFolder.read(data, split: "train").count, 40)
        XCTAssertEqual(try ImageFolder.read(data).count, 41)
        let shard = try Shard.load(from: out.appendingPathComponent("shard_0"))
        XCTAssertEqual(shard.images.size(1), 1)
    }

    func testBadMetadataHasClearErrors() throws {
        try writeDataset(extraLines: [#"{"file_name": "../secret.png", "text": "x"}"#])
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: self.config(),
                                           encoders: self.encoders) },
                     contains: "metadata.jsonl:41: file_name '../secret.png' leaves the dataset folder")
        try writeDataset(extraLines: [#"{"file_name": "train/003.png", "text": "again"}"#])
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: self.config(),
                                           encoders: self.encoders) },
                     contains: "metadata.jsonl:41: file_name 'train/003.png' repeats line 4")
        try writeDataset(extraLines: [#"{"file_name": "/etc/passwd", "text": "x"}"#])
        assertThrows({ try ImageFolder.read(self.data) }, contains: "leaves the dataset folder")
        try writeDataset(extraLines: ["{not json"])
        assertThrows({ try ImageFolder.read(self.data) }, contains: "metadata.jsonl:41: not a valid JSON object")
        try writeDataset(extraLines: [#"{"file_name": "a.png"}"#])
        assertThrows({ try ImageFolder.read(self.data) }, contains: "metadata.jsonl:41: no \"text\" string")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    /// The importers' bounded layout (`images/00012/x.png`) and an old flat folder both read; a nested path that
    /// climbs out is still refused.
    func testNestedAndFlatFoldersRead() throws {
        let folder = dir.appendingPathComponent("nested")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("images/00001"),
                                                withIntermediateDirectories: true)
        let lines = [#"{"file_name": "flat.png", "text": "a"}"#,
                     #"{"file_name": "images/00001/1000.png", "text": "b", "label": "star"}"#]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("metadata.jsonl"))
        let read = try ImageFolder.read(folder)
        let entries = try read.entries(0..<read.count)
        XCTAssertEqual(entries.map(\.fileName), ["flat.png", "images/00001/1000.png"])
        XCTAssertEqual(read.url(of: entries[1]).path, folder.appendingPathComponent("images/00001/1000.png").path)
        XCTAssertEqual(entries[1].label, "star")
        for bad in ["images/00001/../../x.png", "/images/00001/x.png", "~/x.png"] {
            try Data(#"{"file_name": "\#(bad)", "text": "c"}"#.utf8).write(to: folder.appendingPathComponent("metadata.jsonl"))
            assertThrows({ try ImageFolder.read(folder) }, contains: "file_name '\(bad)' leaves the dataset folder")
        }
    }

    /// Issue #18: `partition --held-out 100000` failed only after extracting every feature.
    func testHeldOutIsCheckedBeforeAnyFeatureIsExtracted() throws {
        try writeDataset()  // 40 images
        final class Calls: @unchecked Sendable { var n = 0 }
        let calls = Calls()
        var counting = encoders
        let embed = counting.image!.embed
        counting.image!.embed = { images in calls.n += 1; return try embed(images) }
        var c = config(k: 4)
        c.heldOut = 100_000
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: c, encoders: counting) },
                     contains: "cannot hold out 100000 of 40 images; hold out fewer (--held-out)")
        c.heldOut = 38
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: c, encoders: counting) },
                     contains: "holding out 38 of 40 images leaves 2 to split into K = 4 clusters; hold out at most 36")
        XCTAssertEqual(calls.n, 0, "features were extracted before the held-out count was checked")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        c.heldOut = 36
        XCTAssertEqual(try Partitioner.run(dataset: data, output: out, config: c, encoders: counting).heldOut?
            .map(\.size).reduce(0, +), 36)
        XCTAssertGreaterThan(calls.n, 0)
    }

    func testBadKAndEmptyDataHaveClearErrors() throws {
        try writeDataset(count: 6)
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: self.config(k: 7),
                                           encoders: self.encoders) }, contains: "K = 7 clusters but")
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: self.config(k: 0),
                                           encoders: self.encoders) }, contains: "must be at least 1")
        // Issue #18: K is bounded by RouterConfig.maxExperts (1024) before the data is read.
        assertThrows({ try Partitioner.run(dataset: self.dir.appendingPathComponent("nope"), output: self.out,
                                           config: self.config(k: 1_000_000_000), encoders: self.encoders) },
                     contains: "num_clusters (K) must be ≤ 1024 (RouterConfig.maxExperts")
        try self.config(k: 1024).validate()
        try Data().write(to: data.appendingPathComponent("metadata.jsonl"))
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: self.config(),
                                           encoders: self.encoders) }, contains: "lists no images")
        assertThrows({ try Partitioner.run(dataset: self.dir.appendingPathComponent("nope"), output: self.out,
                                           config: self.config(), encoders: self.encoders) }, contains: "no such dataset")
        var noImage = encoders
        noImage.image = nil
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: self.config(),
                                           encoders: noImage) }, contains: "need an image feature extractor")
    }

    func testBadImagesAreSkippedAndReportedOrRefused() throws {
        try writeDataset(extraLines: [#"{"file_name": "train/missing.png", "text": "a red square", "label": 0}"#,
                                      #"{"file_name": "train/bad.png", "text": "a red square", "label": 0}"#])
        try Data("not an image".utf8).write(to: data.appendingPathComponent("train/bad.png"))
        let m = try Partitioner.run(dataset: data, output: out, config: config(), encoders: encoders)
        XCTAssertEqual(m.numImages, 40)
        XCTAssertEqual(m.numSkipped, 2)
        XCTAssertTrue(m.skipped[0].contains("train/missing.png (metadata.jsonl:41)"), m.skipped[0])
        XCTAssertTrue(m.skipped[1].contains("not a PNG or JPEG"), m.skipped[1])
        var strict = config()
        strict.skipBadImages = false
        assertThrows({ try Partitioner.run(dataset: self.data, output: self.out, config: strict,
                                           encoders: self.encoders, overwrite: true) }, contains: "missing.png")
    }

    func testConfigJSONAndPresets() throws {
        let json = #"{"num_clusters": 3, "method": "label", "image_size": 28, "channels": 1, "split": null}"#
        let c = try JSONDecoder().decode(PartitionConfig.self, from: Data(json.utf8))
        XCTAssertEqual(c.numClusters, 3)
        XCTAssertEqual(c.method, .label)
        XCTAssertNil(c.split)
        XCTAssertEqual(c.textLength, 16)
        let round = try JSONDecoder().decode(PartitionConfig.self, from: try JSONEncoder().encode(PartitionConfig.emoji))
        XCTAssertEqual(round, .emoji)
        XCTAssertEqual(try PartitionConfig.preset(named: "fashion-mnist").channels, 1)
        assertThrows({ try PartitionConfig.preset(named: "nope") }, contains: "known: emoji, fashion-mnist, tiny")
        let text = String(decoding: try JSONEncoder().encode(PartitionConfig.tiny), as: UTF8.self)
        XCTAssertTrue(text.contains("\"num_clusters\""), text)
    }
}
