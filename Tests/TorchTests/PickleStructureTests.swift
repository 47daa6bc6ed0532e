import Foundation
import XCTest

@testable import Torch

/// Legacy-format torch.save files written opcode by opcode, whose containers are shared, cyclic or deep, or whose
/// storage is larger than the file: the shapes a pickle's memo allows and a fuzzer reaches (fuzz/, docs/reliability.md). Each must load or fail with a
/// `TorchError` in bounded time and stack, never hang or crash.
final class PickleStructureTests: XCTestCase {
    /// The pickles every legacy file starts with: torch's magic number, protocol 1001, the system info.
    private static let header: [UInt8] = hex("80028a0a6cfc9c46f9206aa850192e") + hex("80024de9032e")
        + hex("80027d7100580d0000006c6974746c655f656e6469616e710188732e")

    private static func hex(_ s: String) -> [UInt8] {
        stride(from: 0, to: s.count, by: 2).map { i in
            UInt8(s[s.index(s.startIndex, offsetBy: i)..<s.index(s.startIndex, offsetBy: i + 2)], radix: 16)!
        }
    }

    /// BINUNICODE: a str.
    private static func str(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(b.count).littleEndian, Array.init) + b
    }

    /// `torch._utils._rebuild_tensor_v2(storage '0' of `numel` floats, 0, (numel,), (1,), False)`.
    private static func tensor(numel: Int32) -> [UInt8] {
        let n = [0x4A] + withUnsafeBytes(of: numel.littleEndian, Array.init)  // BININT
        return Array("ctorch._utils\n_rebuild_tensor_v2\n(".utf8)
            + [0x28] + str("storage") + Array("ctorch\nFloatStorage\n".utf8) + str("0") + str("cpu") + n + [0x74, 0x51]
            + [0x4B, 0] + n + [0x85, 0x4B, 1, 0x85, 0x89, 0x74, 0x52]
    }

    /// A tensor of one float.
    private static let tensor = tensor(numel: 1)

    /// A legacy file whose object pickle is `root` (protocol 2 opcodes, without PROTO and STOP); `withStorage`
    /// appends storage '0' (one float, 1.5) after it.
    private func write(_ root: [UInt8], withStorage: Bool, _ name: String) throws -> URL {
        var bytes = Self.header + [0x80, 0x02] + root + [0x2E]
        if withStorage {
            bytes += [0x80, 0x02, 0x5D] + Self.str("0") + [0x61, 0x2E]  // the storage keys: ['0']
            bytes += withUnsafeBytes(of: Int64(1).littleEndian, Array.init)
            bytes += withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian, Array.init)
        } else {
            bytes += [0x80, 0x02, 0x5D, 0x2E]  // []
        }
        let url = try temporaryFolder(self).appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// `levels` tuples, each holding the one below twice (through the memo), over `leaf`: 2^levels paths.
    private static func shared(levels: Int, over leaf: [UInt8]) -> [UInt8] {
        var ops = leaf + [0x71, 0]  // BINPUT 0
        for i in 1...levels { ops += [0x68, UInt8(i - 1), 0x68, UInt8(i - 1), 0x86, 0x71, UInt8(i)] }  // (x, x)
        return ops
    }

    func testSharedContainersWithoutTensorsLoadInLinearTime() throws {
        // 60 levels of (x, x): walking every path to look for tensors took 2^60 steps (a hang).
        let url = try write(Self.shared(levels: 60, over: [0x5D]), withStorage: false, "shared.pt")
        let ckpt = try PyTorchCheckpoint.open(url)
        XCTAssertTrue(ckpt.tensors.isEmpty)
        XCTAssertEqual(ckpt.skipped, ["(root): tuple of 2 values, no tensors"])
    }

    func testSharedContainersOverATensorAreRefusedNotUnrolled() throws {
        // The same DAG over a tensor names it 2^60 times; the walk stops after a bounded number of steps.
        let url = try write(Self.shared(levels: 60, over: Self.tensor), withStorage: true, "shared-tensor.pt")
        XCTAssertThrowsError(try PyTorchCheckpoint.open(url)) { error in
            let message = (error as? TorchError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("refer to shared containers more than 1000000 times"), message)
        }
        // Sharing that stays small (tied weights: one tensor under two names) still loads.
        let tied = try write(Self.shared(levels: 3, over: Self.tensor), withStorage: true, "tied.pt")
        let ckpt = try PyTorchCheckpoint.open(tied)
        XCTAssertEqual(ckpt.tensors.count, 8)
        XCTAssertEqual(ckpt.tensors.first?.name, "0.0.0")
        XCTAssertEqual(try ckpt.tensors[7].tensor.toArray(as: Float.self), [1.5])
    }

    func testListsHoldingThemselvesLoadNotHang() throws {
        // l = []; l.append(l); l.append(l); root = (l, t). Looking for a tensor in l walked both self-references
        // 256 levels deep, 2^256 paths (a hang). Now l is walked once: it holds no tensor, and t is found.
        // EMPTY_LIST, BINPUT 0, (BINGET 0, APPEND) twice, the tensor, TUPLE2.
        let root: [UInt8] = [0x5D, 0x71, 0, 0x68, 0, 0x61, 0x68, 0, 0x61] + Self.tensor + [0x86]
        let ckpt = try PyTorchCheckpoint.open(try write(root, withStorage: true, "cycle.pt"))
        XCTAssertEqual(ckpt.tensors.map(\.name), ["1"])
        XCTAssertEqual(ckpt.skipped, ["0: list of 2 values, no tensors"])
        // A cycle through the tensor's own container: l = [l, t]; its tensor is named again on every turn until
        // the depth limit.
        let loop: [UInt8] = [0x5D, 0x71, 0, 0x68, 0, 0x61] + Self.tensor + [0x61]
        XCTAssertThrowsError(try PyTorchCheckpoint.open(try write(loop, withStorage: true, "loop.pt"))) { error in
            let message = (error as? TorchError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("nests containers deeper than 256 levels"), message)
        }
    }

    func testAStorageLargerThanTheFileIsRefusedBeforeItIsAllocated() throws {
        // A 173-byte file declaring a storage of 2^30 floats: the 4 GB were allocated before the data was read.
        var bytes = Self.header + [0x80, 0x02] + Self.tensor(numel: 1 << 30) + [0x2E]
        bytes += [0x80, 0x02, 0x5D] + Self.str("0") + [0x61, 0x2E] + withUnsafeBytes(of: Int64(1 << 30).littleEndian, Array.init)
        let url = try temporaryFolder(self).appendingPathComponent("huge.pt")
        try Data(bytes).write(to: url)
        XCTAssertThrowsError(try PyTorchCheckpoint.open(url)) { error in
            let message = (error as? TorchError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("storage 0 claims 4294967296 bytes, more than the whole file (173 bytes)"),
                          message)
        }
    }

    func testDeeplyNestedListsDoNotOverflowTheStack() throws {
        // [[[...]]] 200,000 levels deep (400 kB): freeing it recursively overflowed the stack (SIGSEGV).
        let n = 200_000
        let root = [UInt8](repeating: 0x5D, count: n) + [UInt8](repeating: 0x61, count: n - 1)
        let ckpt = try PyTorchCheckpoint.open(try write(root, withStorage: false, "deep.pt"))
        XCTAssertTrue(ckpt.tensors.isEmpty)
        XCTAssertEqual(ckpt.skipped, ["(root): list of 1 values, no tensors"])
    }
}
