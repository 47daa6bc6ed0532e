import Foundation
import ParisRun
import ParisTestSupport
import Torch
import XCTest

/// The checkpoint folder format on its own, with a minimal state: atomic step folders, `latest`, pruning, and
/// loading that skips (and names) every damaged checkpoint instead of crashing or loading garbage.
final class CheckpointStoreTests: XCTestCase {
    struct State: CheckpointState, Equatable {
        static let currentFormat = "test-state/1"
        var format = State.currentFormat
        var step: Int
        var files: [String: Int] = [:]
        var note = ""
        func validate() throws { if note == "bad" { throw RunError("state: note is bad") } }
    }

    var folder: URL!
    var store: CheckpointStore<State> { CheckpointStore(folder: folder, keep: 2) }

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("paris-ckpt-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func write(_ step: Int, note: String = "") throws {
        try store.write(state: State(step: step, note: note),
                        tensors: ["model": ["w": try Tensor.full([3], Double(step))], "optimizer": ["m": try Tensor.zeros([2])]])
    }

    func testWriteLoadPruneAndLatest() throws {
        for s in [2, 4, 6] { try write(s) }
        XCTAssertEqual(store.steps(), [6, 4], "keep = 2 prunes the oldest")
        XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent("latest"), encoding: .utf8), "step_6\n")
        XCTAssertEqual(CheckpointFolder.latest(in: folder)?.step, 6)
        let loaded = try store.load(step: 6, device: .cpu, keys: ["model"])
        XCTAssertEqual(try loaded.tensors["model"]?["w"]?.toArray(as: Float.self), [6, 6, 6])
        XCTAssertNil(loaded.tensors["optimizer"], "only the keys asked for are loaded")
        XCTAssertEqual(Set(loaded.state.files.keys), ["model.safetensors", "optimizer.safetensors"])
        assertThrows({ try self.store.load(step: 6, device: .cpu, keys: ["ema"]) }, contains: "holds no ema tensors")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        XCTAssertFalse(names.contains { $0.hasPrefix(".") }, "no temporary folder is left: \(names)")
    }

    func testDamagedCheckpointsAreSkippedByName() throws {
        try write(2)
        try write(4)
        // Truncate step 4's model: its recorded size no longer matches.
        let model = folder.appendingPathComponent("step_4/model.safetensors")
        let bytes = try Data(contentsOf: model)
        try bytes.prefix(bytes.count / 2).write(to: model)
        var warnings: [String] = []
        let loaded = try XCTUnwrap(store.loadLatest(device: .cpu, warn: { warnings.append($0) }))
        XCTAssertEqual(loaded.state.step, 2, "the newest intact checkpoint wins")
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("skipping checkpoint step_4") && warnings[0].contains("bytes"), warnings[0])

        // A state.json that names another step, one that fails to parse, and one whose validate() throws.
        try Data(#"{"format":"test-state/1","step":9,"files":{},"note":""}"#.utf8)
            .write(to: folder.appendingPathComponent("step_2/state.json"))
        assertThrows({ try self.store.load(step: 2, device: .cpu) }, contains: "says step 9, not 2")
        try Data("{not json".utf8).write(to: folder.appendingPathComponent("step_2/state.json"))
        assertThrows({ try self.store.load(step: 2, device: .cpu) }, contains: "is malformed")
        XCTAssertNil(store.loadLatest(device: .cpu, warn: { _ in }), "nothing loadable: nil, not a crash")
        try write(8, note: "bad")
        assertThrows({ try self.store.load(step: 8, device: .cpu) }, contains: "note is bad")
    }

    func testLeftoversOfACrashedWriteAreIgnoredThenRemoved() throws {
        try write(2)
        let crashed = folder.appendingPathComponent(".tmp-step_4-1-1")
        try FileManager.default.createDirectory(at: crashed, withIntermediateDirectories: true)
        try Data("partial".utf8).write(to: crashed.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(store.steps(), [2], "a temporary folder is never a checkpoint")
        XCTAssertEqual(CheckpointFolder.latest(in: folder)?.step, 2)
        try write(4)
        XCTAssertFalse(FileManager.default.fileExists(atPath: crashed.path), "the next write removes it")
        XCTAssertEqual(store.steps(), [4, 2])
    }

    func testBadTensorKeysAreRefused() throws {
        assertThrows({ try self.store.write(state: State(step: 1), tensors: [:]) }, contains: "no tensors to write")
        assertThrows({ try self.store.write(state: State(step: 1), tensors: ["../x": ["w": try Tensor.zeros([1])]]) },
                     contains: "cannot name a tensor file")
    }
}
