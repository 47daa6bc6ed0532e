import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import Torch
import XCTest

/// The `paris serve` binary as a process (the CLI path, with the real MiniLM prompt encoder from the package
/// cache): it binds 127.0.0.1, answers an AUTOMATIC1111 txt2img with images, and stops cleanly on SIGINT.
final class ServeProcessTests: XCTestCase {
    func testTheBinaryAnswersTxt2ImgWithImagesAndStopsOnSIGINT() async throws {
        let paris = try parisBinary(self)
        let root = try TinyRun.temporaryFolder(self)
        let run = try TinyRun.withCheckpoints(root.appendingPathComponent("run"))
        let log = root.appendingPathComponent("serve.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = paris
        process.arguments = ["serve", "--run", run.root.path, "--port", "0", "--device", "cpu"]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // The first line names the bound address; MiniLM may be installed from PyPI first.
        var url: String? = nil
        let deadline = Date().addingTimeInterval(300)
        while url == nil && Date() < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
                url = String(text[range])
            } else if !process.isRunning {
                if text.contains("PyPI") || text.contains("pip") { throw XCTSkip("MiniLM cannot be installed: \(text)") }
                XCTFail("paris serve exited: \(text)")
                return
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let base = try XCTUnwrap(url, "paris serve did not say where it listens")
        var request = URLRequest(url: URL(string: base + "/sdapi/v1/txt2img")!)
        request.httpMethod = "POST"
        let prompt = "an emoji of a cat" + String(repeating: " with a hat", count: 10)  // > 32 MiniLM tokens
        request.httpBody = Data(#"{"prompt": "\#(prompt)", "steps": 2, "seed": 4, "batch_size": 2}"#.utf8)
        request.timeoutInterval = 120
        let (data, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200, String(decoding: data, as: UTF8.self))
        let body = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let images = (body["images"] as? [String] ?? []).compactMap { Data(base64Encoded: $0) }
        XCTAssertEqual(images.count, 2)
        XCTAssertTrue(images.allSatisfy { $0.starts(with: [0x89, 0x50, 0x4E, 0x47]) }, "not PNGs")
        // The tiny run's experts read 32 tokens: the real MiniLM tokenizer counts more for this prompt, and `info`
        // says that it was truncated.
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((body["info"] as? String ?? "").utf8))
                                     as? [String: Any])
        let notes = info["notes"] as? [String] ?? []
        XCTAssertTrue(notes.contains { $0.contains("tokens, more than the 32 the experts read") }, "\(notes)")
        kill(process.processIdentifier, SIGINT)
        let stopBy = Date().addingTimeInterval(30)
        while process.isRunning && Date() < stopBy { try await Task.sleep(nanoseconds: 50_000_000) }
        XCTAssertFalse(process.isRunning, "paris serve did not stop on SIGINT")
        if !process.isRunning { XCTAssertEqual(process.terminationStatus, 0) }
        try handle.close()
    }

    func testABadPortIsRefusedBeforeLoading() throws {
        let (status, output) = try runProcess(try parisBinary(self), ["serve", "--run", "/nonexistent", "--port", "70000"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("--port must be within 0…65535"), output)
    }
}
