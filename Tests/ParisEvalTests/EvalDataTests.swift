import Foundation
import ParisData
import ParisRunTestSupport
@testable import ParisEval
import Torch
import XCTest

/// `EvalData.load` reads only the chosen rows of each shard, part by part: the result does not depend on how the
/// shards are cut into parts, a part that holds no chosen row is never read, and a latent partition's pixel
/// partition is compared with it item by item, a part of each at a time.
final class EvalDataTests: XCTestCase {
    /// TinyRun's K shards (24 images each) written into `folder` as parts of `partSize` images.
    private func partition(_ folder: URL, k: Int = 2, partSize: Int) throws -> URL {
        for c in 0..<k {
            try TinyRun.shard(c, of: k).write(to: folder.appendingPathComponent("shard_\(c)"), partSize: partSize)
        }
        return folder
    }

    private func assertSame(_ a: EvalData, _ b: EvalData, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertTrue(try a.images.equal(b.images), file: file, line: line)
        XCTAssertTrue(try a.text.equal(b.text), file: file, line: line)
        XCTAssertTrue(try a.textMask.equal(b.textMask), file: file, line: line)
        XCTAssertEqual(a.captions, b.captions, file: file, line: line)
        XCTAssertEqual(a.fileNames, b.fileNames, file: file, line: line)
        XCTAssertEqual(a.labels, b.labels, file: file, line: line)
        XCTAssertEqual(a.clusters, b.clusters, file: file, line: line)
    }

    func testRowsDoNotDependOnThePartsAndUnchosenPartsAreNotRead() throws {
        let root = try TinyRun.temporaryFolder(self)
        let one = try partition(root.appendingPathComponent("one"), partSize: 4096)
        let many = try partition(root.appendingPathComponent("many"), partSize: 5)  // parts of 5, 5, 5, 5, 4
        for limit in [nil, 7, 2] as [Int?] {
            let a = try EvalData.load(partition: one, numClusters: 2, limitPerCluster: limit, seed: 3)
            let b = try EvalData.load(partition: many, numClusters: 2, limitPerCluster: limit, seed: 3)
            XCTAssertEqual(a.count, 2 * (limit ?? 24))
            XCTAssertEqual(a.text.shape, [a.count, TinyRun.textLength, TinyRun.textDim])
            try assertSame(a, b)
        }
        // Shard 0's 2 chosen rows (seed 3 + 0) lie in at most 2 of its 5 parts: removing another changes nothing,
        // removing one of theirs is an error that names the file.
        let chosen = ShardLoader.permutation(count: 24, seed: 3, epoch: 0).prefix(2).map { $0 / 5 }
        let before = try EvalData.load(partition: many, numClusters: 2, limitPerCluster: 2, seed: 3)
        let unused = try XCTUnwrap((0..<5).first { !chosen.contains($0) })
        try FileManager.default.removeItem(at: many.appendingPathComponent("shard_0/\(ShardPart.name(unused)).jsonl"))
        try assertSame(before, try EvalData.load(partition: many, numClusters: 2, limitPerCluster: 2, seed: 3))
        let used = ShardPart.name(chosen[0])
        try FileManager.default.removeItem(at: many.appendingPathComponent("shard_0/\(used).jsonl"))
        XCTAssertThrowsError(try EvalData.load(partition: many, numClusters: 2, limitPerCluster: 2, seed: 3)) {
            XCTAssertTrue("\($0)".contains("\(used).jsonl"), "\($0)")
        }
    }

    func testItemsAreComparedRowByRowAcrossPartLayouts() throws {
        let root = try TinyRun.temporaryFolder(self)
        let one = try partition(root.appendingPathComponent("one"), k: 1, partSize: 4096)
        let many = try partition(root.appendingPathComponent("many"), k: 1, partSize: 7)
        func walk(_ folder: URL) throws -> ShardRowWalk {
            ShardRowWalk(try ShardReader(folder: folder.appendingPathComponent("shard_0"), verifyChecksums: false))
        }
        // The same items in 1 and in 4 parts: equal, and the rows taken on the way are the same rows.
        let a = try walk(one), b = try walk(many)
        XCTAssertTrue(try EvalData.sameItems(a, b, taking: [1, 8, 20, 23]))
        let ta = try XCTUnwrap(try a.takenRows()), tb = try XCTUnwrap(try b.takenRows())
        XCTAssertEqual(ta.items.map(\.fileName), ["img_0_1.png", "img_0_8.png", "img_0_20.png", "img_0_23.png"])
        XCTAssertEqual(ta.items, tb.items)
        XCTAssertTrue(try ta.images.equal(tb.images))
        // One item of the last part differs, or a row is missing: not the same shard.
        var shard = try TinyRun.shard(0, of: 1)
        shard.items[22].fileName = "other.png"
        try shard.write(to: root.appendingPathComponent("changed/shard_0"), partSize: 7)
        XCTAssertFalse(try EvalData.sameItems(try walk(one), try walk(root.appendingPathComponent("changed")), taking: []))
        let fewer = try TinyRun.shard(0, of: 1).part.rows(Array(0..<23))
        var info = try TinyRun.shard(0, of: 1).info
        info.count = 23
        info.captionCount = fewer.captions
        try Shard(info: info, images: fewer.images, captionIndex: fewer.captionIndex, textEmbeddings: fewer.textEmbeddings,
                  textMask: fewer.textMask, items: fewer.items).write(to: root.appendingPathComponent("fewer/shard_0"))
        XCTAssertFalse(try EvalData.sameItems(try walk(one), try walk(root.appendingPathComponent("fewer")), taking: []))
    }
}
