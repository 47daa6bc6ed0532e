import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ParisData
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisTraining
@testable import Torch
import XCTest

/// `RouterDataset` reads the shards' parts per batch: its batches do not depend on how a shard is cut into parts,
/// it reads nothing until a batch needs it (and names a corrupt part then), and its memory does not grow with the
/// shards beyond its row maps.
final class RouterDataTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    /// TinyRun's K shards written into `<root>/partition/` as parts of `partSize` images.
    private func partition(_ root: URL, k: Int, partSize: Int) throws -> URL {
        let folder = root.appendingPathComponent("partition")
        for c in 0..<k {
            try TinyRun.shard(c, of: k).write(to: folder.appendingPathComponent("shard_\(c)"), partSize: partSize)
        }
        return folder
    }

    func testBatchesDoNotDependOnHowTheShardsAreCutIntoParts() throws {
        let root = try TinyRun.temporaryFolder(self)
        let whole = try RouterDataset(partition: try partition(root.appendingPathComponent("one"), k: 3, partSize: 4096),
                                      numClusters: 3, heldOutFraction: 0.2, seed: 9)
        let parts = try RouterDataset(partition: try partition(root.appendingPathComponent("many"), k: 3, partSize: 5),
                                      numClusters: 3, heldOutFraction: 0.2, seed: 9)
        XCTAssertEqual(whole.counts.map(\.train), [19, 19, 19])
        XCTAssertEqual(parts.counts.map(\.heldOut), [5, 5, 5])
        XCTAssertEqual(parts.heldOutClusters, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
        // Two epochs of batches of 10 (5 per epoch): the same rows, labels and pooled captions, bit for bit.
        var a = LoaderCursor(), b = LoaderCursor(), labels: [Int64] = []
        for _ in 0..<10 {
            let x = try whole.batch(at: a, size: 10, seed: 4, device: .cpu)
            let y = try parts.batch(at: b, size: 10, seed: 4, device: .cpu)
            XCTAssertEqual(x.images.shape, [10, TinyRun.channels, TinyRun.size, TinyRun.size])
            XCTAssertEqual(x.text?.shape, [10, TinyRun.textDim])
            XCTAssertTrue(try x.images.equal(y.images))
            XCTAssertTrue(try x.labels.equal(y.labels))
            XCTAssertTrue(try XCTUnwrap(x.text).equal(try XCTUnwrap(y.text)))
            XCTAssertEqual(x.next, y.next)
            labels += try x.labels.toArray(as: Int64.self)
            (a, b) = (x.next, y.next)
        }
        XCTAssertEqual(a, LoaderCursor(epoch: 2, position: 0))
        // Each epoch sees 50 of the 57 training rows, of every cluster.
        XCTAssertEqual(Set(labels), [0, 1, 2])
        XCTAssertNil(try parts.batch(at: LoaderCursor(), size: 10, seed: 4, device: .cpu, captions: false).text)
        // The held-out rows, gathered in any windows, are the same too.
        let h = try whole.heldOut(0..<15, device: .cpu), g = try parts.heldOut(3..<11, device: .cpu)
        XCTAssertTrue(try h.images.slice(0, 3, 11).equal(g.images))
        XCTAssertTrue(try XCTUnwrap(h.text).slice(0, 3, 11).equal(try XCTUnwrap(g.text)))
        XCTAssertEqual(try h.labels.toArray(as: Int64.self).map { Int($0) }, parts.heldOutClusters)
        XCTAssertEqual(try parts.heldOut(4..<4, device: .cpu).images.shape, [0, TinyRun.channels, TinyRun.size, TinyRun.size])
        assertThrows({ try parts.heldOut(10..<16, device: .cpu) }, contains: "outside 0..<15")
    }

    func testNothingIsReadBeforeABatchAndACorruptPartIsNamedWhenABatchReadsIt() throws {
        let folder = try partition(try TinyRun.temporaryFolder(self), k: 2, partSize: 5)  // 5 parts per shard
        let data = try RouterDataset(partition: folder, numClusters: 2, heldOutFraction: 0.1, seed: 1)
        XCTAssertEqual(data.mappedParts, 0)
        // Corrupted after opening: the first batch that reads the part verifies it and names the file.
        let bad = folder.appendingPathComponent("shard_1/part-00002.safetensors")
        var bytes = try Data(contentsOf: bad)
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: bad)
        var cursor = LoaderCursor(), failure: Error?
        for _ in 0..<20 where failure == nil {
            do { cursor = try data.batch(at: cursor, size: 4, seed: 2, device: .cpu).next } catch { failure = error }
        }
        let message = "\(try XCTUnwrap(failure, "no batch read shard 1's part 2"))"
        XCTAssertTrue(message.contains("shard 1: "), message)
        XCTAssertTrue(message.contains("part-00002.safetensors: checksum mismatch"), message)
        XCTAssertGreaterThan(data.mappedParts, 0)
    }

    /// The process's anonymous resident memory (`RssAnon`), after glibc has returned its free pages (`malloc_trim`),
    /// so that only live allocations count, not what earlier tests freed.
    private func liveAnonymousMemory() throws -> Int {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let trim = dlsym(nil, "malloc_trim"), let bytes = ProcessMemory.status("RssAnon:") else {
            throw XCTSkip("needs glibc's malloc_trim and /proc/self/status")
        }
        _ = unsafeBitCast(trim, to: Trim.self)(0)
        return ProcessMemory.status("RssAnon:") ?? bytes
    }

    /// The anonymous memory a dataset holds after some batches and a held-out window is its row maps, not its
    /// images: 20,000 images of 32×32×3 (60 MiB of pixels) cost it well under a quarter of that.
    func testMemoryDoesNotGrowWithTheShards() throws {
        _ = try liveAnonymousMemory()
        let root = try TinyRun.temporaryFolder(self)
        let k = 2, n = 10_000, s = 32, captions = 500
        for c in 0..<k {
            let info = ShardInfo(cluster: c, numClusters: k, count: n, channels: 3, imageSize: s, captionCount: captions,
                                 textEncoder: "test-encoder", textLength: TinyRun.textLength, textDim: TinyRun.textDim,
                                 dataset: "memory", partitionMethod: "test")
            let items = (0..<n).map { Shard.Item(fileName: "img_\(c)_\($0).png", text: "caption \($0 % captions)", label: nil) }
            try Shard(info: info, images: try Tensor.randint(0, 256, [n, 3, s, s], dtype: .uint8),  // [n, 3, 32, 32]
                      captionIndex: try Tensor((0..<n).map { Int64($0 % captions) }),
                      textEmbeddings: try Tensor.randn([captions, TinyRun.textLength, TinyRun.textDim], dtype: .float16),
                      textMask: try Tensor.ones([captions, TinyRun.textLength], dtype: .bool), items: items)
                .write(to: root.appendingPathComponent("partition/shard_\(c)"))
        }
        let pixels = k * n * 3 * s * s
        let before = try liveAnonymousMemory()
        let data = try RouterDataset(partition: root.appendingPathComponent("partition"), numClusters: k,
                                     heldOutFraction: 0.1, seed: 3)
        var cursor = LoaderCursor()
        for _ in 0..<5 { cursor = try data.batch(at: cursor, size: 64, seed: 5, device: .cpu).next }
        _ = try data.heldOut(0..<256, device: .cpu)
        let grown = try liveAnonymousMemory() - before
        // Row maps: two Int32 per training and held-out row, plus the epoch's permutation of the training rows.
        XCTAssertEqual(data.rowMapBytes, (data.trainCount + data.heldOutCount) * 8 + data.trainCount * 8)
        XCTAssertEqual(data.rowMapBytes, 304_000)
        XCTAssertLessThan(grown, pixels / 4, "anonymous memory grew by \(grown) bytes over \(pixels) bytes of pixels")
        withExtendedLifetime(data) {}
    }
}
