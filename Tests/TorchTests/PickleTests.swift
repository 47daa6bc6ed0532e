import Foundation
import XCTest

@testable import Torch

/// torch.save state dicts and TorchScript modules, against fixtures written by scripts/fixtures/io.py.
final class PickleTests: XCTestCase {
    private func assertFails(_ body: @autoclosure () throws -> Any, _ expected: String..., file: StaticString = #filePath,
                             line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let e = error as? TorchError else { return XCTFail("not a TorchError: \(error)", file: file, line: line) }
            for s in expected {
                XCTAssertTrue(e.message.contains(s), "message: \(e.message)\nexpected: \(s)", file: file, line: line)
            }
        }
    }

    func testLoadsNestedStateDictWithDottedNames() throws {
        let expected = try SafeTensors.load(try fixtureURL("io_state_dict.safetensors"))
        let order = expected.metadata["order"]!.split(separator: ",").map(String.init)
        let ckpt = try PyTorchCheckpoint.open(try fixtureURL("io_state_dict.pt"))
        XCTAssertEqual(ckpt.tensors.map(\.name), order, "names and their order follow the pickled dicts")
        XCTAssertTrue(order.contains("model.x_embedder.proj.weight"))
        XCTAssertTrue(order.contains("ema.final_layer.weight"))
        XCTAssertTrue(order.contains("blocks.1.scale"))
        XCTAssertTrue(order.contains("opt.state.0.step"))
        for (name, t) in ckpt.tensors {
            let e = try expected.tensor(name)
            XCTAssertEqual(t.dtype, e.dtype, name)
            XCTAssertEqual(t.shape, e.shape, name)
            XCTAssertEqual(try t.bytes(), try e.bytes(), "\(name): values differ")
        }
        XCTAssertEqual(ckpt.dictionary["model.pos_embed"]?.dtype, .bfloat16)
        // A saved transposed view keeps its strides.
        let t = try XCTUnwrap(ckpt.dictionary["model.t_embedder.mlp.0.weight"])
        XCTAssertFalse(t.isContiguous)
        XCTAssertEqual(t.shape, [8, 4])
        XCTAssertEqual(Set(ckpt.skipped), ["step: int 1200", "name: str 'dit'"])
        XCTAssertEqual(ckpt.stripping("ema").map(\.0), ["final_layer.weight", "final_layer.bias"])
        XCTAssertEqual(try PyTorchCheckpoint.load(try fixtureURL("io_state_dict.pt")).count, order.count)
    }

    func testUnknownClassesAreNotRebuiltButTheirTensorsAreKept() throws {
        // DiT's train.py saves {"model": ..., "ema": ..., "opt": ..., "args": argparse.Namespace(...)}.
        let ckpt = try PyTorchCheckpoint.open(try fixtureURL("io_namespace.pt"))
        XCTAssertEqual(ckpt.tensors.map(\.name), ["model.w"])
        XCTAssertEqual(try ckpt.tensors[0].tensor.toArray(as: Float.self), [0, 1, 2, 3])
        XCTAssertEqual(ckpt.skipped, ["args: object of class argparse.Namespace"])
    }

    func testLegacyFormatLoadsLikeTheZipFormat() throws {
        // torch.save(..., _use_new_zipfile_serialization=False), the format of older checkpoints (EfficientNet-Lite0).
        let zipped = try PyTorchCheckpoint.open(try fixtureURL("io_state_dict.pt"))
        let legacy = try PyTorchCheckpoint.open(try fixtureURL("io_state_dict_legacy.pt"))
        XCTAssertEqual(legacy.tensors.map(\.name), zipped.tensors.map(\.name))
        XCTAssertEqual(legacy.skipped, zipped.skipped)
        for ((name, a), (_, b)) in zip(legacy.tensors, zipped.tensors) {
            XCTAssertEqual(a.dtype, b.dtype, name)
            XCTAssertEqual(a.shape, b.shape, name)
            XCTAssertEqual(a.strides, b.strides, name)
            XCTAssertEqual(try a.bytes(), try b.bytes(), name)
        }
        // Views of one storage share it, as in PyTorch.
        let d = legacy.dictionary
        let big = try XCTUnwrap(d["model.t_embedder.mlp.0.weight"]), part = try XCTUnwrap(d["model.slice"])
        try big.mul_(0)
        XCTAssertEqual(try part.abs().sum().item(), 0)
    }

    func testRealStateDictWithDefaultAndNewestPickleProtocols() throws {
        // nn.Module.state_dict() is an OrderedDict with a _metadata attribute; protocol 5 adds FRAME, MEMOIZE,
        // STACK_GLOBAL and SHORT_BINUNICODE.
        let expected = try SafeTensors.load(try fixtureURL("io_module_state.safetensors"))
        let order = expected.metadata["order"]!.split(separator: ",").map(String.init)
        XCTAssertTrue(order.contains("1.num_batches_tracked"))
        for file in ["io_module_state.pt", "io_module_state_p5.pt"] {
            let ckpt = try PyTorchCheckpoint.open(try fixtureURL(file))
            XCTAssertEqual(ckpt.tensors.map(\.name), order, file)
            XCTAssertEqual(ckpt.skipped, [], file)
            for (name, t) in ckpt.tensors {
                XCTAssertEqual(t.dtype, try expected.tensor(name).dtype, "\(file) \(name)")
                XCTAssertEqual(try t.bytes(), try expected.tensor(name).bytes(), "\(file) \(name)")
            }
        }
    }

    func testObjectsAreReportedNotRun() throws {
        let ckpt = try PyTorchCheckpoint.open(try fixtureURL("io_objects.pt"))
        // A whole pickled nn.Linear: not rebuilt (no code runs), its parameters found in its pickled state.
        XCTAssertEqual(ckpt.tensors.map(\.name), ["net._parameters.weight", "net._parameters.bias", "pair.1_2"])
        XCTAssertTrue(ckpt.skipped.contains("net: object of class torch.nn.modules.linear.Linear (not rebuilt; its tensors are kept)"))
        XCTAssertTrue(ckpt.skipped.contains("net.in_features: int 2"))
        XCTAssertTrue(ckpt.skipped.contains { $0.hasPrefix("best: object of class numpy") }, "\(ckpt.skipped)")
        XCTAssertTrue(ckpt.skipped.contains("dtype: global torch.float16"))
        XCTAssertTrue(ckpt.skipped.contains("size: tuple of 2 values, no tensors"))
    }

    /// Issue #18: a .pt holding an os.system call was listed as "object of class os.system" without a warning.
    /// Its pickle names globals no checkpoint needs (written by scripts/fixtures/unsafe_pickle.py): loading it for
    /// weights fails, naming them, and nothing is ever run.
    func testUnsafeGlobalsAreRefusedAndNeverRun() throws {
        try? FileManager.default.removeItem(atPath: "/tmp/paris-pwned")
        for file in ["io_unsafe.pt", "io_unsafe_legacy.pt"] {
            let url = try fixtureURL(file)
            assertFails(try PyTorchCheckpoint.load(url), "\(file): refusing to load", "2 globals",
                        "__builtin__.eval, os.system", "Python's torch.load would import and call them")
            assertFails(try PyTorchCheckpoint.open(url), "os.system")
            let read = try PyTorchCheckpoint.open(url, allowingUnsafeGlobals: true)
            XCTAssertEqual(read.unsafeGlobals, ["__builtin__.eval", "os.system"], file)
            XCTAssertEqual(read.tensors.map(\.name), ["weight"], file)
            XCTAssertEqual(try read.tensors[0].tensor.toArray(as: Float.self), [0, 1, 2, 3], file)
            XCTAssertTrue(read.skipped.contains("evil: object of class os.system"), "\(read.skipped)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/paris-pwned"), "the payload ran")
        // Every ordinary checkpoint (state dicts, a pickled nn.Linear, numpy scalars, dtypes, argparse.Namespace)
        // names only known-safe globals.
        for file in ["io_state_dict.pt", "io_state_dict_legacy.pt", "io_module_state.pt", "io_module_state_p5.pt",
                     "io_objects.pt", "io_namespace.pt"] {
            XCTAssertEqual(try PyTorchCheckpoint.open(try fixtureURL(file)).unsafeGlobals, [], file)
        }
    }

    func testCorruptLegacyFiles() throws {
        let good = [UInt8](try Data(contentsOf: try fixtureURL("io_state_dict_legacy.pt")))
        let dir = try temporaryFolder(self)
        for (i, cut) in [3, 40, good.count / 2, good.count - 1].enumerated() {
            let url = dir.appendingPathComponent("cut\(i).pt")
            try Data(good.prefix(cut)).write(to: url)
            assertFails(try PyTorchCheckpoint.load(url), "cut\(i).pt", "cannot load the torch.save file")
        }
        // A pickle that is not a torch.save file.
        let plain = dir.appendingPathComponent("plain.pkl")
        try Data([0x80, 0x02, 0x4B, 0x01, 0x2E]).write(to: plain)  // pickle.dumps(1, protocol=2)
        assertFails(try PyTorchCheckpoint.load(plain), "does not start with torch's magic number")
        // An unknown opcode.
        var broken = good
        broken[2] = 0xFF
        try Data(broken).write(to: plain)
        assertFails(try PyTorchCheckpoint.load(plain), "uses opcode 0xff")
    }

    func testBadCheckpoints() throws {
        assertFails(try PyTorchCheckpoint.load(URL(fileURLWithPath: "/nonexistent/x.pt")), "/nonexistent/x.pt: no such file")
        let dir = try temporaryFolder(self)
        let garbage = dir.appendingPathComponent("garbage.pt")
        try Data("hello, not a checkpoint".utf8).write(to: garbage)
        assertFails(try PyTorchCheckpoint.load(garbage), "garbage.pt", "not a torch.save file")
        let empty = dir.appendingPathComponent("empty.pt")
        try Data().write(to: empty)
        assertFails(try PyTorchCheckpoint.load(empty), "empty.pt", "not a torch.save file")
        let good = try Data(contentsOf: try fixtureURL("io_state_dict.pt"))
        let cut = dir.appendingPathComponent("cut.pt")
        try good.prefix(good.count / 2).write(to: cut)
        assertFails(try PyTorchCheckpoint.load(cut), "cut.pt", "cannot load the torch.save file")
        // A TorchScript archive is a zip too, but not a torch.save file.
        assertFails(try PyTorchCheckpoint.load(try fixtureURL("io_script.pt")), "TorchScript module")
        // And a safetensors file is neither.
        assertFails(try PyTorchCheckpoint.load(try fixtureURL("io_plain.safetensors")), "not a torch.save file")
    }

    func testTorchScriptForwardMatchesPython() throws {
        let io = try SafeTensors.load(try fixtureURL("io_script.safetensors"))
        let m = try ScriptModule(try fixtureURL("io_script.pt"))
        let out = try m.forward([try io.tensor("x"), try io.tensor("scale")])
        XCTAssertEqual(out.count, 2)
        try assertClose(out[0], try io.tensor("y"), rtol: 1e-6, atol: 1e-6, "y")
        try assertClose(out[1], try io.tensor("sum"), rtol: 1e-6, atol: 1e-6, "sum")
        // Wrong inputs give libtorch's message, not a crash.
        assertFails(try m.forward([try io.tensor("x")]), "forward")
        assertFails(try m.forward([try Tensor.zeros([2, 5]), try io.tensor("scale")]))
        assertFails(try m(try io.tensor("x")))
    }

    func testTorchScriptOnCUDA() throws {
        guard Runtime.cudaIsAvailable else { throw XCTSkip("no CUDA device") }
        let io = try SafeTensors.load(try fixtureURL("io_script.safetensors"))
        let m = try ScriptModule(try fixtureURL("io_script.pt"), device: .cuda(0))
        let out = try m.forward([try io.tensor("x").to(device: .cuda(0)), try io.tensor("scale").to(device: .cuda(0))])
        XCTAssertEqual(out[0].device, .cuda(0))
        try assertClose(out[0].to(device: .cpu), try io.tensor("y"), rtol: 1e-4, atol: 1e-5, "y on CUDA")
    }

    func testBadTorchScript() throws {
        assertFails(try ScriptModule(URL(fileURLWithPath: "/nonexistent/m.pt")), "/nonexistent/m.pt: no such file")
        assertFails(try ScriptModule(try fixtureURL("io_plain.safetensors")), "io_plain.safetensors",
                    "cannot load the TorchScript module")
        assertFails(try ScriptModule(try fixtureURL("io_state_dict.pt")), "io_state_dict.pt", "cannot load the TorchScript module")
    }
}
