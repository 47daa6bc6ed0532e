import Foundation
import ParisTools
import Torch
import XCTest

/// `paris inspect`'s summary and `paris doctor`'s report. The checkpoints are TorchTests' fixtures (written by
/// scripts/fixtures/io.py), read in place.
final class ToolsTests: XCTestCase {
    /// Tests/TorchTests/Fixtures/<name>.
    func fixtureURL(_ name: String) throws -> URL {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TorchTests/Fixtures/\(name)")
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("missing fixture \(url.path): run scripts/make_fixtures.sh")
            throw TorchError("missing fixture \(name)")
        }
        return url
    }

    func temporaryFolder(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("paris-tools-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func assertFails(_ body: @autoclosure () throws -> Any, _ expected: String..., file: StaticString = #filePath,
                             line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for s in expected {
                XCTAssertTrue("\(error)".contains(s), "message: \(error)\nexpected: \(s)", file: file, line: line)
            }
        }
    }

    func testSummaryForInspect() throws {
        let st = try CheckpointSummary.read(try fixtureURL("io_dtypes.safetensors"))
        XCTAssertEqual(st.format, .safetensors)
        XCTAssertEqual(st.tensors.count, 14)
        XCTAssertEqual(st.parameterCount, 83)
        XCTAssertEqual(st.metadata["source"], "paris io fixture")
        XCTAssertEqual(st.tensors.first { $0.name == "bf16" }, .init(name: "bf16", dtype: "bfloat16", shape: [2, 5], count: 10))
        let text = st.render()
        XCTAssertTrue(text.contains("format: safetensors"), text)
        XCTAssertTrue(text.contains("total: 83 parameters in 14 tensors"), text)
        XCTAssertTrue(text.contains("source: paris io fixture"), text)
        XCTAssertTrue(try st.json().contains("\"parameter_count\" : 83"))

        let pt = try CheckpointSummary.read(try fixtureURL("io_state_dict.pt"))
        XCTAssertEqual(pt.format, .torchSave)
        XCTAssertEqual(pt.tensors.first?.name, "model.x_embedder.proj.weight")
        XCTAssertEqual(pt.parameterCount, 224)
        XCTAssertTrue(pt.render().contains("step: int 1200"))
        XCTAssertEqual(CheckpointSummary.grouped(4_694_073), "4,694,073")

        assertFails(try CheckpointSummary.read(URL(fileURLWithPath: "/nonexistent/c.safetensors")), "no such file")
        assertFails(try CheckpointSummary.read(try fixtureURL("io_dtypes.json")), "not a checkpoint Paris can read")
        let dir = try temporaryFolder(self)
        let bad = dir.appendingPathComponent("bad.safetensors")
        try Data([4, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0x7D]).write(to: bad)
        assertFails(try CheckpointSummary.read(bad), "bad.safetensors", "header length is 4 bytes but only 2 bytes follow")
    }

    /// Issue #18: `paris inspect` listed a .pt holding an os.system call as "object of class os.system" and exited 0.
    func testSummaryWarnsLoudlyAboutUnsafeGlobals() throws {
        let unsafe = try CheckpointSummary.read(try fixtureURL("io_unsafe.pt"))
        XCTAssertFalse(unsafe.isSafe)
        XCTAssertEqual(unsafe.unsafeGlobals, ["__builtin__.eval", "os.system"])
        XCTAssertEqual(unsafe.tensors.map(\.name), ["weight"])
        let text = unsafe.render()
        XCTAssertTrue(text.hasPrefix("WARNING: "), text)
        XCTAssertTrue(text.hasSuffix(try XCTUnwrap(unsafe.warning)), text)
        XCTAssertTrue(text.contains("not known-safe torch/collections/numpy reconstructors: __builtin__.eval, os.system"), text)
        XCTAssertTrue(try unsafe.json().contains("\"unsafe_globals\" : [\n    \"__builtin__.eval\",\n    \"os.system\""))
        for file in ["io_state_dict.pt", "io_objects.pt", "io_namespace.pt", "io_dtypes.safetensors"] {
            let safe = try CheckpointSummary.read(try fixtureURL(file))
            XCTAssertTrue(safe.isSafe, file)
            XCTAssertNil(safe.warning, file)
            XCTAssertFalse(safe.render().contains("WARNING"), file)
        }
    }

    func testDoctorReportsThisLibtorch() throws {
        let report = RuntimeReport.collect()
        XCTAssertTrue(report.torchVersion.hasPrefix("2.11"), report.torchVersion)
        XCTAssertEqual(report.threads, Runtime.threads)
        XCTAssertEqual(report.cudaAvailable, Runtime.cudaIsAvailable)
        XCTAssertTrue(report.lines.contains { $0.hasPrefix("libtorch        2.11") }, "\(report.lines)")
        XCTAssertTrue(try report.json().contains("\"torch_version\""))
    }
}
