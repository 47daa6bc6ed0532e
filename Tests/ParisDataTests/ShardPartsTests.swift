import Foundation
@testable import ParisData
import Torch
import XCTest

/// The part-based shard (v2): fixed-size parts written by `ShardWriter`, read part by part by `ShardReader`, and
/// batched by `ShardLoader` in one window (the same order as a single-file shard) or streamed in windows.
final class ShardPartsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-parts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// `n` 4×4 RGB images, each with its own pixels, over 5 captions.
    func makeShard(n: Int) throws -> Shard {
        Runtime.manualSeed(1)
        let images = try Tensor.randint(0, 256, [n, 3, 4, 4], dtype: .uint8)
        let index = try Tensor((0..<n).map { Int64(($0 * 3) % 5) })
        let text = try Tensor.randn([5, 2, 3]).to(dtype: .float16)
        let mask = try Tensor.ones([5, 2], dtype: .bool)
        let items = (0..<n).map { Shard.Item(fileName: "img\($0).png", text: "caption \(($0 * 3) % 5)", label: nil) }
        let info = ShardInfo(cluster: 0, numClusters: 1, count: n, channels: 3, imageSize: 4, captionCount: 5,
                             textEncoder: "fake", textLength: 2, textDim: 3, dataset: "toy", partitionMethod: "random")
        return try Shard(info: info, images: images, captionIndex: index, textEmbeddings: text, textMask: mask,
                         items: items)
    }

    func batches(_ loader: ShardLoader, _ count: Int) throws -> [ShardBatch] { try (0..<count).map { _ in try loader.next() } }

    func testPartsRoundTripAndBatchLikeTheShardInMemory() throws {
        let shard = try makeShard(n: 23)
        let folder = dir.appendingPathComponent("shard_0")
        try shard.write(to: folder, partSize: 5)
        let info = try Shard.info(at: folder)
        XCTAssertEqual(info.parts?.map(\.count), [5, 5, 5, 5, 3])
        XCTAssertEqual(info.dataFiles.count, 10)
        XCTAssertEqual(Set(info.checksums.keys), Set(info.dataFiles))
        let back = try Shard.load(from: folder)
        XCTAssertTrue(try back.images.equal(shard.images))
        XCTAssertEqual(back.items, shard.items)
        // Each row keeps its caption's embeddings, though every part has its own caption table.
        let want = try shard.textEmbeddings.indexSelect(dim: 0, index: shard.captionIndex)
        XCTAssertTrue(try back.textEmbeddings.indexSelect(dim: 0, index: back.captionIndex).equal(want))
        // One window: the batches of the in-memory shard, value for value, across epochs.
        let reader = try ShardReader(folder: folder, expectedCluster: 0)
        let streamed = try batches(try ShardLoader(reader: reader, batchSize: 4, seed: 3), 12)
        let memory = try batches(try ShardLoader(shard: shard, batchSize: 4, seed: 3), 12)
        XCTAssertEqual(streamed.map(\.indices), memory.map(\.indices))
        XCTAssertEqual(streamed.map(\.cursor), memory.map(\.cursor))
        for (a, b) in zip(streamed, memory) {
            XCTAssertTrue(try a.images.equal(b.images))
            XCTAssertTrue(try a.text.equal(b.text))
            XCTAssertTrue(try a.textMask.equal(b.textMask))
        }
    }

    func testStreamedWindowsCoverEachEpochBoundMemoryAndResumeExactly() throws {
        let shard = try makeShard(n: 40)
        let folder = dir.appendingPathComponent("shard_0")
        try shard.write(to: folder, partSize: 4)  // 10 parts; a window of 9 images holds 2 parts
        let reader = try ShardReader(folder: folder)
        let loader = try ShardLoader(reader: reader, batchSize: 3, seed: 5, prefetch: 0, window: 9)
        var epoch0: [Int] = [], maxOpen = 0
        while loader.cursor.epoch == 0 {
            let b = try loader.next()
            epoch0 += b.indices
            maxOpen = max(maxOpen, loader.openPartCount)
            // Each row's pixels are the shard's row `indices[i]`.
            let want = try shard.images.indexSelect(dim: 0, index: Tensor(b.indices.map { Int64($0) }))
                .to(dtype: .float32) / 127.5 - 1
            XCTAssertTrue(try b.images.allClose(want))
        }
        XCTAssertEqual(epoch0.count, 39)  // 13 whole batches; the 40th image waits
        XCTAssertEqual(Set(epoch0).count, 39, "a row was served twice in one epoch")
        XCTAssertLessThanOrEqual(maxOpen, 4, "more than two windows of parts were open")
        XCTAssertNotEqual(epoch0, ShardLoader.permutation(count: 40, seed: 5, epoch: 0).prefix(39).map { $0 })
        // The windows follow a permutation of the parts, so consecutive batches come from the same few parts.
        let first = try batches(try ShardLoader(reader: reader, batchSize: 3, seed: 5, window: 9), 20)
        let cut = first[6].cursor
        let resumed = try batches(try ShardLoader(reader: try ShardReader(folder: folder), batchSize: 3, seed: 5,
                                                  start: cut, window: 9), 13)
        XCTAssertEqual(resumed.map(\.indices), first[7..<20].map(\.indices))
        XCTAssertEqual(resumed.map(\.cursor), first[7..<20].map(\.cursor))
    }

    func testACorruptPartIsNamedWhenFirstReadAndBadIndexesAreRefused() throws {
        let folder = dir.appendingPathComponent("shard_0")
        try makeShard(n: 12).write(to: folder, partSize: 4)
        let part = folder.appendingPathComponent("part-00002.safetensors")
        var bytes = [UInt8](try Data(contentsOf: part))
        bytes[bytes.count - 2] ^= 0x10
        try Data(bytes).write(to: part)
        let reader = try ShardReader(folder: folder)  // opening reads shard.json only
        XCTAssertNoThrow(try reader.part(0))
        assertThrows({ try reader.part(2) }, contains: "part-00002.safetensors: checksum mismatch")
        assertThrows({ try Shard.load(from: folder) }, contains: "part-00002.safetensors: checksum mismatch")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("part-00001.jsonl"))
        assertThrows({ try reader.part(1) }, contains: "part-00001.jsonl is missing")

        // shard.json that names a file outside the folder, or whose parts do not add up.
        let infoURL = folder.appendingPathComponent(Shard.infoName)
        var info = try Shard.info(at: folder)
        info.parts![0].name = "../../etc/passwd"
        try AtomicFile.write(try Shard.encode(info), to: infoURL)
        assertThrows({ try ShardReader(folder: folder) }, contains: "is not a valid part")
        info = try { var i = info; i.parts![0].name = "part-00000"; i.count = 13; return i }()
        try AtomicFile.write(try Shard.encode(info), to: infoURL)
        assertThrows({ try ShardReader(folder: folder) }, contains: "the parts hold 12 images")
    }

    func testSingleFileShardsAreStillReadAndStreamed() throws {
        let reader = try ShardReader(folder: fixtureURL("shard_sha256_v1"), expectedCluster: 1)
        XCTAssertEqual(reader.info.format, ShardInfo.singleFileFormat)
        XCTAssertEqual(reader.parts.count, 1)
        let loader = try ShardLoader(reader: reader, batchSize: 2, seed: 0)
        let memory = try ShardLoader(shard: try Shard.load(from: fixtureURL("shard_sha256_v1")), batchSize: 2, seed: 0)
        for _ in 0..<5 {
            let (a, b) = (try loader.next(), try memory.next())
            XCTAssertEqual(a.indices, b.indices)
            XCTAssertTrue(try a.images.equal(b.images))
        }
    }
}
