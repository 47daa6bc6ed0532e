import Foundation
import Torch
import XCTest

@testable import ParisData

/// Issue #17: the partition streams in chunks through a work folder, fits k-means on a sample when there are more
/// training images than `kmeans_sample`, and a partition stopped at any stage resumes without redoing finished work.
extension PartitionTests {
    /// Counts the encoder calls and throws from the image encoder's call `failAt` (1-based), as a crash there would
    /// stop the partition.
    final class Calls: @unchecked Sendable {
        var image = 0, captions = 0
        var failAt: Int? = nil
    }

    func counted(_ calls: Calls) -> PartitionEncoders {
        var e = encoders
        let image = e.image!, captions = e.captions
        e.image = .init(name: image.name) { images in
            calls.image += 1
            if calls.image == calls.failAt { throw PartitionError("stopped for the test") }
            return try image.embed(images)
        }
        e.captions = .init(name: captions.name) { texts, t in
            calls.captions += 1
            return try captions.encode(texts, t)
        }
        return e
    }

    /// Every file of a partition (relative path → bytes), manifest.json left out (it records the config).
    func files(_ folder: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in walker where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            let name = String(url.path.dropFirst(folder.path.count + 1))
            if name != PartitionManifest.fileName { out[name] = try Data(contentsOf: url) }
        }
        return out
    }

    /// The names of the files that differ between two partitions (or that only one has); [] when they are the same.
    func differences(_ a: [String: Data], _ b: [String: Data]) -> [String] {
        Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
    }

    func streamingConfig(chunk: Int = 8) -> PartitionConfig {
        var c = config(k: 4, features: .both)
        c.batchSize = 4
        c.chunkSize = chunk
        c.heldOut = 4
        return c
    }

    func reference(_ c: PartitionConfig) throws -> [String: Data] {
        let ref = dir.appendingPathComponent("reference/partition")
        try Partitioner.run(dataset: data, output: ref, config: c, encoders: encoders)
        return try files(ref)
    }

    func testChunkSizeChangesNoByteOfThePartition() throws {
        try writeDataset(count: 60)
        var whole = streamingConfig()
        whole.chunkSize = 1000
        let expected = try reference(whole)
        XCTAssertTrue(expected.keys.contains("held_out/shard_0/shard.json"), "\(expected.keys.sorted())")
        var lines: [String] = []
        try Partitioner.run(dataset: data, output: out, config: streamingConfig(chunk: 5), encoders: encoders,
                            log: { lines.append($0) })
        XCTAssertEqual(differences(try files(out), expected), [])
        XCTAssertTrue(lines.contains { $0.contains("(chunk 8 of 8)") }, lines.joined(separator: "\n"))  // 5 → 8 rows
        XCTAssertTrue(lines.contains { $0.hasPrefix("stage images: ") && $0.contains("peak memory") })
        XCTAssertFalse(FileManager.default.fileExists(atPath: PartitionWork.folder(for: out).path),
                       "the work folder is removed once the partition is in place")
    }

    func testKMeansOnASampleAssignsEveryImageAndSaysSo() throws {
        try writeDataset(count: 80)
        var c = config(k: 4)
        c.kmeansSample = 24
        c.fineClusters = 8
        let sampled = try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders)
        XCTAssertEqual(sampled.clustering?.sample, 24)
        XCTAssertEqual(sampled.clusters.map(\.size).reduce(0, +), 80)
        XCTAssertEqual(try XCTUnwrap(sampled.metrics).purity, 1.0, accuracy: 1e-9, "four colours, four clusters")
        c.kmeansSample = 80
        let full = try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders, overwrite: true)
        XCTAssertNil(full.clustering?.sample, "a sample as large as the data is the data: plain Lloyd")
    }

    func testStoppedPartitionResumesWithoutRedoingFinishedWork() throws {
        try writeDataset(count: 60)
        let c = streamingConfig()
        let expected = try reference(c)
        let batches = 60 / c.batchSize

        // A crash in the middle of the images: the chunks already written are kept.
        let first = Calls()
        first.failAt = 5
        XCTAssertThrowsError(try Partitioner.run(dataset: data, output: out, config: c, encoders: counted(first)))
        XCTAssertTrue(FileManager.default.fileExists(atPath: PartitionWork.folder(for: out).path))
        let second = Calls()
        var lines: [String] = []
        try Partitioner.run(dataset: data, output: out, config: c, encoders: counted(second), log: { lines.append($0) })
        XCTAssertTrue(lines.contains("images: 2 of 8 chunks already decoded; resuming"), lines.joined(separator: "\n"))
        XCTAssertEqual(second.image, batches - 4, "the 4 batches of the 2 finished chunks are not embedded again")
        XCTAssertEqual(differences(try files(out), expected), [])

        // Stopped after each later stage: resumed, nothing finished is redone, and the result is the same.
        for stage in ["captions", "clustering", "shard 0", "shard 2", "held-out shards", "grids"] {
            let stopped = dir.appendingPathComponent("stopped-\(stage.replacingOccurrences(of: " ", with: "-"))")
            XCTAssertThrowsError(try Partitioner.run(
                dataset: data, output: stopped, config: c, encoders: encoders, overwrite: false, device: .cpu,
                log: { _ in }, after: { if $0 == stage { throw PartitionError("stopped after \(stage)") } }))
            let calls = Calls()
            lines = []
            try Partitioner.run(dataset: data, output: stopped, config: c, encoders: counted(calls), log: { lines.append($0) })
            XCTAssertEqual(calls.image, 0, stage)
            XCTAssertEqual(calls.captions, 0, stage)
            if stage != "captions" { XCTAssertTrue(lines.contains("clustering: already done"), stage) }
            if stage.hasPrefix("shard") || stage.hasPrefix("held") || stage == "grids" {
                XCTAssertTrue(lines.contains { $0.hasPrefix("shard 0: already written") }, stage)
            }
            XCTAssertEqual(differences(try files(stopped), expected), [], stage)
        }
    }

    func testWorkForOtherSettingsIsDiscardedAndASecondProcessIsRefused() throws {
        try writeDataset(count: 40)
        var c = streamingConfig()
        XCTAssertThrowsError(try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders,
                                                 overwrite: false, device: .cpu, log: { _ in },
                                                 after: { if $0 == "clustering" { throw PartitionError("stop") } }))
        c.numClusters = 2
        let expected = try reference(c)
        var lines: [String] = []
        try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.hasSuffix("holds work for other settings or data; starting over") })
        XCTAssertEqual(differences(try files(out), expected), [])

        let work = PartitionWork.folder(for: dir.appendingPathComponent("other"))
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let holder = try FileLock(work.appendingPathComponent(PartitionWork.lockName), busy: "held by the test")
        defer { holder.release() }
        XCTAssertThrowsError(try Partitioner.run(dataset: data, output: dir.appendingPathComponent("other"), config: c,
                                                 encoders: encoders)) { error in
            XCTAssertTrue("\(error)".contains("other is being partitioned by another process (pid \(getpid())"),
                          "\(error)")
        }
    }

    func testCorruptChunkIsMadeAgainAndAnUnreadableOneIsNamed() throws {
        try writeDataset(count: 40)
        let c = streamingConfig()
        let expected = try reference(c)
        XCTAssertThrowsError(try Partitioner.run(dataset: data, output: out, config: c, encoders: encoders,
                                                 overwrite: false, device: .cpu, log: { _ in },
                                                 after: { if $0 == "images" { throw PartitionError("stop") } }))
        let chunk = PartitionWork.folder(for: out).appendingPathComponent("chunks/chunk-00001.safetensors")
        try Data("not a safetensors file".utf8).write(to: chunk)
        let calls = Calls()
        try Partitioner.run(dataset: data, output: out, config: c, encoders: counted(calls))
        XCTAssertEqual(calls.image, 2, "only the corrupt chunk's two batches are embedded again")
        XCTAssertEqual(differences(try files(out), expected), [])

        let store = RowChunks(folder: dir.appendingPathComponent("chunks"), prefix: "chunk")
        try store.write(0, ["entries": try Tensor([Int64(0)])])
        let opened = try store.opened(count: 1, rowsOf: "entries")
        try Data([1, 2, 3]).write(to: store.url(0))
        XCTAssertThrowsError(try opened.gather("entries", rows: [0])) { error in
            XCTAssertTrue("\(error)".contains("chunk-00000.safetensors: unreadable"), "\(error)")
        }
    }

    func testBadChunkSizeAndSampleAreRefused() throws {
        var c = streamingConfig()
        c.chunkSize = 0
        assertThrows({ try c.validate() }, contains: "chunk_size must be positive, not 0")
        c = streamingConfig()
        c.kmeansSample = 3
        assertThrows({ try c.validate() }, contains: "kmeans_sample must be at least num_clusters (4), not 3")
    }
}
