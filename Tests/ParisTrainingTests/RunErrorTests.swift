import Foundation
import ParisModels
import ParisRun
import ParisRunTestSupport
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

    /// Issue #18: `"num_experts": 4.5` was "not valid JSON", and unknown keys (`"stepz"`) were ignored silently.
    func testRunJSONTypeErrorsAndUnknownKeysNameTheKey() throws {
        let run = try TinyRun.make(TinyRun.temporaryFolder(self), k: 2)
        let url = run.appendingPathComponent("run.json")
        let original = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        func check(_ change: (inout [String: Any]) -> Void, _ expected: String, line: UInt = #line) throws {
            var dict = original
            change(&dict)
            try JSONSerialization.data(withJSONObject: dict).write(to: url)
            assertThrows({ try RunConfig.load(url) }, contains: "\(url.path): malformed run.json: " + expected, line: line)
        }
        func job(_ name: String, _ index: Int?, _ change: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { dict in
                if let index {
                    var jobs = dict[name] as! [[String: Any]]
                    change(&jobs[index])
                    dict[name] = jobs
                } else {
                    var j = dict[name] as! [String: Any]
                    change(&j)
                    dict[name] = j
                }
            }
        }
        try check({ $0["num_experts"] = 4.5 }, "wrong type at num_experts: expected an integer, found 4.5")
        try check({ $0["num_experts"] = "2" }, "wrong type at num_experts")
        try check(job("experts", 1) { $0["steps"] = 1e30 },
                  "wrong type at experts[1].steps: expected an integer from \(Int.min) to \(Int.max), found 1e+30")
        try check(job("router", nil) { $0["seed"] = -1 }, "wrong type at router.seed: expected an integer ≥ 0, found -1")
        try check({ $0["stepz"] = 5 }, "unknown key 'stepz' at the top level; known keys: version, name")
        try check({ $0["num_expert"] = 2 }, "unknown key 'num_expert' at the top level; did you mean 'num_experts'?")
        try check(job("experts", 0) { $0["stepz"] = 5 }, "unknown key 'stepz' in experts[0]; did you mean 'steps'?")
        try check(job("router", nil) { $0["learning_rat"] = 1 }, "unknown key 'learning_rat' in router; did you mean 'learning_rate'?")
        try check(job("monolith", nil) { $0["batchsize"] = 8 }, "unknown key 'batchsize' in monolith; did you mean 'batch_size'?")
        try check(job("experts", 1) { $0["resources"] = ["gpu": 1] },
                  "unknown key 'gpu' in experts[1].resources; did you mean 'gpus'?")
        try check(job("experts", 0) { $0["objective"] = ["type": "ddpm_epsilon", "num_timestep": 10] },
                  "unknown key 'num_timestep' in experts[0].objective; did you mean 'num_timesteps'?")
        try check(job("experts", 0) { $0["objective"] = ["type": "ddpm_epsilon", "num_timesteps": 10.5] },
                  "wrong type at experts[0].objective.num_timesteps")
        // The unchanged file still loads.
        try JSONSerialization.data(withJSONObject: original).write(to: url)
        XCTAssertEqual(try RunConfig.load(url).numExperts, 2)
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

    /// A dataset folder `root/name` whose metadata.jsonl lists `images` images (the files need not exist: run init
    /// only counts the lines).
    static func dataset(_ root: URL, _ name: String = "data", images: Int) throws -> String {
        let folder = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let lines = (0..<images).map { #"{"file_name": "\#($0).png", "text": "image \#($0)"}"# + "\n" }
        try Data(lines.joined().utf8).write(to: folder.appendingPathComponent("metadata.jsonl"))
        return folder.path
    }

    func testRunInit() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = root.appendingPathComponent("r")
        let data = try Self.dataset(root, images: 100)
        let config = try RunInit.create(.init(run: run, dataset: data, numExperts: 3, preset: "cpu-tiny", seed: 5))
        XCTAssertEqual(config.numExperts, 3)
        XCTAssertEqual(config.experts.map(\.seed), [5, 6, 7])
        XCTAssertEqual(config.monolith?.batchSize, 3 * config.experts[0].batchSize)
        XCTAssertEqual(try RunLayout(run).config(), config)
        assertThrows({ try RunInit.create(.init(run: run, dataset: data, numExperts: 2)) }, contains: "--force")
        XCTAssertEqual(try RunInit.create(.init(run: run, dataset: data, numExperts: 2, force: true)).numExperts, 2)
        assertThrows({ try RunInit.create(.init(run: root.appendingPathComponent("s"), dataset: data, numExperts: 2,
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

    /// Issue #18: `run init --k 1000000000` aborted building 10⁹ experts, `--k 100000` on 5.7k images was
    /// accepted, and `--data /nonexistent` succeeded.
    func testRunInitBoundsKAndChecksTheDataset() throws {
        let root = try TinyRun.temporaryFolder(self)
        let data = try Self.dataset(root, images: 5700)
        func create(_ name: String, _ k: Int, _ dataset: String? = nil) throws {
            try RunInit.create(.init(run: root.appendingPathComponent(name), dataset: dataset ?? data, numExperts: k))
        }
        XCTAssertEqual(RouterConfig.maxExperts, 1024)
        assertThrows({ try create("a", 1_000_000_000) }, contains: "--k must be ≤ 1024 (RouterConfig.maxExperts), not 1000000000")
        assertThrows({ try create("b", Int.max) }, contains: "--k must be ≤ 1024")
        // cpu-tiny experts train with batch 32: 5700 images hold at most 178 experts' first batches.
        assertThrows({ try create("c", 1000) }, contains: "1000 experts need at least 32000 images")
        assertThrows({ try create("c", 179) }, contains: "lists 5700; use K ≤ 178")
        XCTAssertNoThrow(try create("d", 178))
        // A dataset that is not there, or is not a dataset folder.
        assertThrows({ try create("e", 2, "/nonexistent") }, contains: "/nonexistent: no such dataset folder")
        assertThrows({ try create("f", 2, root.path) }, contains: "metadata.jsonl: missing")
        for name in ["a", "b", "c", "e", "f"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path), name)
        }
        // A run.json given as a file is checked the same way, and num_experts is bounded by RunConfig.validate.
        var config = try RunLayout(root.appendingPathComponent("d")).config()
        config.dataset = "/nonexistent"
        let file = root.appendingPathComponent("custom.json")
        try config.write(to: file)
        assertThrows({ try RunInit.create(.init(run: root.appendingPathComponent("g"), dataset: nil, numExperts: nil,
                                                configFile: file)) }, contains: "no such dataset folder")
        config.numExperts = 2000
        config.experts = Array(repeating: config.experts[0], count: 2000)
        try config.write(to: file)
        assertThrows({ try RunConfig.load(file) }, contains: "num_experts must be ≤ 1024")
        var router = RouterConfig.cpuTiny
        router.numExperts = 1025
        assertThrows({ try router.validate() }, contains: "num_experts must be ≤ 1024")
    }
}
