import Foundation
import ParisRun
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// Bad runs give clear errors that name the file, the key or the index.
final class RunErrorTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func testMalformedRunJSON() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 1)
        try Data("{\"version\": 1, \"name\": ".utf8).write(to: run.appendingPathComponent("run.json"))
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "malformed run.json")
        try Data("{\"version\": 1, \"name\": \"x\", \"dataset\": \"d\", \"partition\": \"p\"}".utf8)
            .write(to: run.appendingPathComponent("run.json"))
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "missing key 'num_experts'")
        try FileManager.default.removeItem(at: run.appendingPathComponent("run.json"))
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "paris run init")
    }

    func testUnknownPreset() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 2) { $0.experts[1].model = "paris-Huge/1" }
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "unknown Paris expert preset 'paris-Huge/1'")
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "expert 1")
    }

    func testExpertIndexOutOfRange() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 2)
        assertThrows({ try ExpertTrainer.train(run: run, expert: 2) }, contains: "expert index 2 is out of range")
        assertThrows({ try ExpertTrainer.train(run: run, expert: -1) }, contains: "out of range")
    }

    func testMissingShard() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 2)
        try FileManager.default.removeItem(at: run.appendingPathComponent("partition/shard_1"))
        assertThrows({ try ExpertTrainer.train(run: run, expert: 1) }, contains: "shard 1 is missing")
        // A shard folder without its shard.json (an unfinished partition) is named too.
        try FileManager.default.removeItem(at: run.appendingPathComponent("partition/shard_0/shard.json"))
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "no shard.json")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("expert_1").path))
    }

    func testShardOfAnotherPartition() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 2)
        try TinyRun.shard(0, of: 3).write(to: run.appendingPathComponent("partition/shard_0"), overwrite: true)
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "partition into 3 clusters")
    }

    func testBatchLargerThanShard() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 1) { $0.experts[0].batchSize = 100 }
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "lower the batch size")
    }

    func testUnavailableCUDADevice() throws {
        try XCTSkipIf(Runtime.cudaIsAvailable, "CUDA is available here")
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 1) { $0.experts[0].device = "cuda" }
        assertThrows({ try ExpertTrainer.train(run: run, expert: 0) }, contains: "CUDA is not available")
    }

    func testRunInit() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = root.appendingPathComponent("r")
        let config = try RunInit.create(.init(run: run, dataset: "data/x", numExperts: 3, preset: "cpu-tiny", seed: 5))
        XCTAssertEqual(config.numExperts, 3)
        XCTAssertEqual(config.experts.map(\.seed), [5, 6, 7])
        XCTAssertEqual(config.monolith?.batchSize, 3 * config.experts[0].batchSize)
        XCTAssertEqual(try RunLayout(run).config(), config)
        assertThrows({ try RunInit.create(.init(run: run, dataset: "d", numExperts: 2)) }, contains: "--force")
        XCTAssertEqual(try RunInit.create(.init(run: run, dataset: "d", numExperts: 2, force: true)).numExperts, 2)
        assertThrows({ try RunInit.create(.init(run: root.appendingPathComponent("s"), dataset: "d", numExperts: 2,
                                                preset: "tpu-giant")) }, contains: "unknown run preset 'tpu-giant'")
        // From a complete run.json: validated, and --k must agree.
        let file = root.appendingPathComponent("custom.json")
        var custom = config
        custom.experts[1].model = "paris-S/2"
        try custom.write(to: file)
        let fromFile = try RunInit.create(.init(run: root.appendingPathComponent("t"), dataset: nil, numExperts: nil,
                                                configFile: file))
        XCTAssertEqual(fromFile.experts[1].model, "paris-S/2")
        assertThrows({ try RunInit.create(.init(run: root.appendingPathComponent("u"), dataset: nil, numExperts: 4,
                                                configFile: file)) }, contains: "--k 4 disagrees")
        custom.experts[2].model = "nope"
        try custom.write(to: file)
        assertThrows({ try RunInit.create(.init(run: root.appendingPathComponent("v"), dataset: nil, numExperts: nil,
                                                configFile: file)) }, contains: "unknown Paris expert preset 'nope'")
    }
}
