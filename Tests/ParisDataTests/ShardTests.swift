import Foundation
import ParisData
import Torch
import XCTest

final class ShardTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-shard-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A shard of `n` 4×4 RGB images with 3 captions of 5 tokens × 6 dims.
    func makeShard(n: Int = 10, cluster: Int = 1) throws -> Shard {
        Runtime.manualSeed(0)
        let images = try Tensor.randint(0, 256, [n, 3, 4, 4], dtype: .uint8)
        let index = try Tensor((0..<n).map { Int64($0 % 3) })
        let text = try Tensor.randn([3, 5, 6]).to(dtype: .float16)
        let mask = try Tensor.arange(0, 5).unsqueeze(0).lt(try Tensor([2, 5, 3] as [Int64]).unsqueeze(1))
        let items = (0..<n).map { Shard.Item(fileName: "img\($0).png", text: "caption \($0 % 3)", label: "\($0 % 2)") }
        let info = ShardInfo(cluster: cluster, numClusters: 3, count: n, channels: 3, imageSize: 4, captionCount: 3,
                             textEncoder: "fake", textLength: 5, textDim: 6, dataset: "toy", partitionMethod: "random")
        return try Shard(info: info, images: images, captionIndex: index, textEmbeddings: text, textMask: mask,
                         items: items)
    }

    func testWriteLoadRoundTrip() throws {
        let shard = try makeShard()
        let folder = dir.appendingPathComponent(Shard.folderName(cluster: 1))
        try shard.write(to: folder)
        let back = try Shard.load(from: folder, expectedCluster: 1)
        XCTAssertEqual(back.items, shard.items)
        XCTAssertTrue(try back.images.equal(shard.images))
        XCTAssertTrue(try back.captionIndex.equal(shard.captionIndex))
        XCTAssertTrue(try back.textEmbeddings.equal(shard.textEmbeddings))
        XCTAssertTrue(try back.textMask.equal(shard.textMask))
        XCTAssertEqual(back.info.checksums.keys.sorted(), ["part-00000.jsonl", "part-00000.safetensors"])
        XCTAssertEqual(back.info.format, ShardInfo.currentFormat)
        assertThrows({ try shard.write(to: folder) }, contains: "already holds a shard")
        XCTAssertNoThrow(try shard.write(to: folder, overwrite: true))
    }

    func testCorruptFileAndWrongClusterAreRefused() throws {
        let folder = dir.appendingPathComponent("shard_1")
        try makeShard().write(to: folder)
        assertThrows({ try Shard.load(from: folder, expectedCluster: 2) },
                     contains: "holds the shard of cluster 1, not of cluster 2")
        let file = folder.appendingPathComponent("part-00000.safetensors")
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[bytes.count - 3] ^= 0x40
        try Data(bytes).write(to: file)
        assertThrows({ try Shard.load(from: folder, expectedCluster: 1) }, contains: "checksum mismatch")
        assertThrows({ try Shard.load(from: dir.appendingPathComponent("shard_9")) }, contains: "no shard.json")
    }

    /// Fixtures/shard_sha256_v1 is a shard (its shard.json checksums included) written at 7716fcc by the hand-written
    /// SHA-256 that came before swift-crypto's: shards written then must still load, with their checksums verified.
    func testShardWrittenBeforeTheChecksumSwapStillVerifies() throws {
        let fixture = fixtureURL("shard_sha256_v1")
        let want = [
            "images.safetensors": "178935bc0624a1b55b230051c79d05629dba1193458b24a5641668cee3649c30",
            "items.jsonl": "dcb532140552fe2753578717e2af4f5537be3e171eb8e5b405d826edc0a593a8",
            "text.safetensors": "e5ee2ad3873ae34bd65f1d9c92bddf4664b13baa178dfbe209806c3327c3ba47",
        ]
        let shard = try Shard.load(from: fixture, expectedCluster: 1)
        XCTAssertEqual(shard.info.checksums, want, "the fixture's shard.json was rewritten")
        XCTAssertEqual(shard.info.count, 6)
        XCTAssertEqual(shard.items.map(\.fileName), (0..<6).map { "img\($0).png" })
        for (name, sum) in want {
            XCTAssertEqual(try Checksum.sha256(file: fixture.appendingPathComponent(name)), sum, name)
        }
        // The verification is not vacuous: one changed byte in a copy is refused.
        let copy = dir.appendingPathComponent("shard_1")
        try FileManager.default.copyItem(at: fixture, to: copy)
        let items = copy.appendingPathComponent(Shard.itemsName)
        var bytes = [UInt8](try Data(contentsOf: items))
        bytes[10] ^= 0x01
        try Data(bytes).write(to: items)
        assertThrows({ try Shard.load(from: copy, expectedCluster: 1) }, contains: "checksum mismatch")
    }

    func testInconsistentTensorsAreRefused() throws {
        let good = try makeShard()
        var info = good.info
        info.count = 11
        assertThrows({ try Shard(info: info, images: good.images, captionIndex: good.captionIndex,
                                 textEmbeddings: good.textEmbeddings, textMask: good.textMask, items: good.items) },
                     contains: "images are")
        assertThrows({ try Shard(info: good.info, images: good.images, captionIndex: try Tensor((0..<10).map { _ in Int64(7) }),
                                 textEmbeddings: good.textEmbeddings, textMask: good.textMask, items: good.items) },
                     contains: "caption_index spans")
    }

    func collect(_ loader: ShardLoader, _ count: Int) throws -> [ShardBatch] { try (0..<count).map { _ in try loader.next() } }

    func testLoaderIsDeterministicAndResumes() throws {
        let shard = try makeShard(n: 10)
        let a = try collect(try ShardLoader(shard: shard, batchSize: 3, seed: 9), 7)
        let b = try collect(try ShardLoader(shard: shard, batchSize: 3, seed: 9, prefetch: 0), 7)
        XCTAssertEqual(a.map(\.indices), b.map(\.indices))
        for (x, y) in zip(a, b) { XCTAssertTrue(try x.images.equal(y.images)) }
        // 3 whole batches per epoch of 10, each epoch a permutation; the cursor moves to the next epoch after 3.
        XCTAssertEqual(a[2].cursor, LoaderCursor(epoch: 1, position: 0))
        XCTAssertEqual(Set(a[0..<3].flatMap(\.indices)).count, 9)
        XCTAssertNotEqual(a[0..<3].flatMap(\.indices), a[3..<6].flatMap(\.indices))
        // Resuming from a saved cursor gives the batches an uninterrupted loader gives.
        let resumed = try collect(try ShardLoader(shard: shard, batchSize: 3, seed: 9, start: a[3].cursor), 3)
        XCTAssertEqual(resumed.map(\.indices), a[4..<7].map(\.indices))
        let other = try collect(try ShardLoader(shard: shard, batchSize: 3, seed: 10), 3)
        XCTAssertNotEqual(other.map(\.indices), a[0..<3].map(\.indices))
    }

    func testBatchShapesAndRanges() throws {
        let shard = try makeShard(n: 10)
        let batch = try ShardLoader(shard: shard, batchSize: 4, seed: 1).next()
        XCTAssertEqual(batch.images.shape, [4, 3, 4, 4])
        XCTAssertEqual(batch.images.dtype, .float32)
        XCTAssertGreaterThanOrEqual(try batch.images.amin().item(), -1)
        XCTAssertLessThanOrEqual(try batch.images.amax().item(), 1)
        XCTAssertEqual(batch.text.shape, [4, 5, 6])
        XCTAssertEqual(batch.text.dtype, .float32)
        XCTAssertEqual(batch.textMask.shape, [4, 5])
        // Row i's text is its caption's embeddings.
        let row = batch.indices[0]
        let expected = try shard.textEmbeddings.select(0, row % 3).to(dtype: .float32)
        XCTAssertTrue(try batch.text.select(0, 0).equal(expected))
        let pixel = try shard.images.select(0, row).to(dtype: .float32) / 127.5 - 1
        XCTAssertTrue(try batch.images.select(0, 0).allClose(pixel))
    }

    func testLoaderRejectsBadSettings() throws {
        let shard = try makeShard(n: 10)
        assertThrows({ try ShardLoader(shard: shard, batchSize: 0, seed: 0) }, contains: "batch size must be positive")
        assertThrows({ try ShardLoader(shard: shard, batchSize: 11, seed: 0) }, contains: "fewer than one batch")
        assertThrows({ try ShardLoader(shard: shard, batchSize: 4, seed: 0, start: .init(epoch: 0, position: 8)) },
                     contains: "does not fit")
    }
}
