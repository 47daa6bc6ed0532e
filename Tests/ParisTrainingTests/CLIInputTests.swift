import Foundation
import XCTest

/// Bad command-line inputs through the built `paris` binary (issue #18's probe): each must end with a clear
/// message and a non-zero status, never a crash or a silently wrong result.
final class CLIInputTests: XCTestCase {
    /// The built `paris` executable beside the test bundle.
    func parisBinary() throws -> URL {
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent()) }
        candidates.append(Bundle(for: Self.self).bundleURL.deletingLastPathComponent())
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for dir in candidates {
            let url = dir.appendingPathComponent("paris")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("the paris executable is not built next to the tests (\(candidates.map(\.path)))")
    }

    /// Runs `paris args…` and returns its exit status and its stdout and stderr together.
    func paris(_ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = try parisBinary()
        p.arguments = args
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("paris-cli-\(UUID().uuidString).txt")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let h = try FileHandle(forWritingTo: out)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        p.waitUntilExit()
        try h.close()
        XCTAssertEqual(p.terminationReason, .exit, "paris \(args) was killed by a signal")
        return (p.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    /// Tests/TorchTests/Fixtures/<name>.
    func torchFixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TorchTests/Fixtures/\(name)").path
    }

    /// Issue #18: `paris inspect` of a .pt holding an os.system call printed "object of class os.system" and exited 0.
    func testInspectWarnsAndFailsOnUnsafeGlobals() throws {
        for json in [false, true] {
            let r = try paris(["inspect", torchFixture("io_unsafe.pt")] + (json ? ["--json"] : []))
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("WARNING: "), r.output)
            XCTAssertTrue(r.output.contains("__builtin__.eval, os.system"), r.output)
            XCTAssertTrue(r.output.contains("weight"), r.output)  // the listing is still printed
        }
        let safe = try paris(["inspect", torchFixture("io_namespace.pt")])
        XCTAssertEqual(safe.status, 0, safe.output)
        XCTAssertFalse(safe.output.contains("WARNING"), safe.output)
    }
}
