import Foundation
import ParisImage
@testable import ParisData
import XCTest

final class FolderImportTests: XCTestCase {
    private var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("folder-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func png(_ seed: Int, channels: Int = 3) throws -> [UInt8] {
        let px = (0..<(8 * 6 * channels)).map { UInt8(truncatingIfNeeded: $0 * 13 + seed * 31) }
        return try Image(width: 8, height: 6, channels: channels, pixels: px).pngData()
    }

    /// A source folder with `files` and metadata.jsonl `lines`.
    private func source(_ files: [String: [UInt8]], _ lines: [String]) throws -> URL {
        let src = tmp.appendingPathComponent("src")
        for (name, bytes) in files {
            let url = src.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        try FileManager.default.createDirectory(at: src, withIntermediateDirectories: true)
        try Data(lines.joined(separator: "\n").utf8).write(to: src.appendingPathComponent("metadata.jsonl"))
        return src
    }

    private func options(_ src: URL, skip: Bool = false, strict: Bool = false) -> ImageFolderImport.Options {
        ImageFolderImport.Options(source: src, output: tmp.appendingPathComponent("out"), skipMissingCaptions: skip,
                                  strict: strict)
    }

    private func rows(_ out: URL) throws -> [[String: Any]] {
        try String(contentsOf: out.appendingPathComponent("metadata.jsonl"), encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testImportsImagesKeepsFieldsAndReruns() throws {
        let a = try png(1), b = try png(2, channels: 4)
        let src = try source(["cats/a.png": a, "b.png": b], [
            #"{"file_name": "cats/a.png", "text": "a cat", "label": 3, "source": "me", "score": 0.5, "ok": true, "tags": [1]}"#,
            "",
            #"{"file_name": "./b.png", "text": "a dog"}"#,
        ])
        let summary = try ImageFolderImport.importDataset(options(src))
        XCTAssertEqual(summary, ImportSummary(images: 2))
        let out = tmp.appendingPathComponent("out")
        let meta = try rows(out)
        XCTAssertEqual(meta.map { $0["file_name"] as? String }, ["images/00000/cats/a.png", "images/00000/b.png"])
        XCTAssertEqual(meta[0]["text"] as? String, "a cat")
        XCTAssertEqual(meta[0]["label"] as? Int, 3)
        XCTAssertEqual(meta[0]["source"] as? String, "me")
        XCTAssertEqual(meta[0]["score"] as? Double, 0.5)
        XCTAssertEqual(meta[0]["ok"] as? Bool, true)
        XCTAssertNil(meta[0]["tags"])
        XCTAssertEqual(try Image(contentsOf: out.appendingPathComponent("images/00000/cats/a.png")), try Image(decoding: a))
        XCTAssertEqual(try Image(contentsOf: out.appendingPathComponent("images/00000/b.png")).channels, 4)
        XCTAssertEqual(try ImageFolderImport.importDataset(options(src)), ImportSummary(images: 2, alreadyComplete: true))
    }

    /// The metadata is streamed and its samples handed over in batches, in order; an output collision is looked for
    /// within an output folder (only there can two outputs meet), and a repeat anywhere names its first line.
    func testPlanStreamsBatchesAndChecksAcrossThem() throws {
        var lines = (0..<2005).map { #"{"file_name": "x/\#($0).png", "text": "t"}"# }
        lines.insert(#"{"file_name": "x/0.jpg", "text": "same stem, another output folder"}"#, at: 1000)
        let src = try source([:], lines)
        let metadata = LineFile(url: src.appendingPathComponent("metadata.jsonl"))
        var batches: [[String]] = []
        let planned = try ImageFolderImport.plan(metadata, source: src, options: options(src), batchSize: 300) {
            batches.append($0.map(\.output))
        }
        XCTAssertEqual(planned.samples, 2006)
        XCTAssertEqual(batches.map(\.count), [300, 300, 300, 300, 300, 300, 206])
        let outputs = batches.flatMap { $0 }
        XCTAssertEqual(outputs[999], "images/00000/x/999.png")
        XCTAssertEqual(outputs[1000], "images/00001/x/0.png")
        XCTAssertEqual(outputs[2005], "images/00002/x/2004.png")
        _ = try source([:], lines + [#"{"file_name": "x/1999.jpg", "text": "t"}"#])
        assertThrows({ try ImageFolderImport.plan(metadata, source: src, options: self.options(src)) { _ in } },
                     contains: "line 2007: 'x/1999.jpg' and the file on line 2001 both become images/00002/x/1999.png")
        _ = try source([:], lines + [#"{"file_name": "./x/7.png", "text": "t"}"#])
        assertThrows({ try ImageFolderImport.plan(metadata, source: src, options: self.options(src)) { _ in } },
                     contains: "line 2007: duplicate file_name './x/7.png' (also on line 8)")
    }

    func testPathTraversalIsAnError() throws {
        let outside = tmp.appendingPathComponent("secret.png")
        try Data(try png(1)).write(to: outside)
        for (file, message) in [("../secret.png", "climbs out with '..' (path traversal)"),
                                ("a/../../secret.png", "path traversal"),
                                (outside.path, "is an absolute path (path traversal)"),
                                ("link.png", "symlink leading outside the folder")] {
            try? FileManager.default.removeItem(at: tmp.appendingPathComponent("src"))
            let src = try source([:], [#"{"file_name": "\#(file)", "text": "x"}"#])
            try FileManager.default.createSymbolicLink(at: src.appendingPathComponent("link.png"), withDestinationURL: outside)
            assertThrows({ try ImageFolderImport.importDataset(self.options(src)) }, contains: "line 1: file_name")
            assertThrows({ try ImageFolderImport.importDataset(self.options(src)) }, contains: message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("out").path), "nothing written")
    }

    func testDuplicatesAndBadLinesAreErrors() throws {
        let img = try png(1)
        let dup = try source(["a.png": img], [#"{"file_name": "a.png", "text": "x"}"#, #"{"file_name": "./a.png", "text": "y"}"#])
        assertThrows({ try ImageFolderImport.importDataset(self.options(dup)) },
                     contains: "line 2: duplicate file_name './a.png' (also on line 1)")
        try FileManager.default.removeItem(at: dup)
        let clash = try source(["a.png": img, "a.jpg": img],
                               [#"{"file_name": "a.png", "text": "x"}"#, #"{"file_name": "a.jpg", "text": "y"}"#])
        assertThrows({ try ImageFolderImport.importDataset(self.options(clash)) }, contains: "both become images/00000/a.png")
        try FileManager.default.removeItem(at: clash)
        let notJSON = try source(["a.png": img], ["{file_name: a.png}"])
        assertThrows({ try ImageFolderImport.importDataset(self.options(notJSON)) }, contains: "line 1: not a JSON object")
        try FileManager.default.removeItem(at: notJSON)
        let noName = try source(["a.png": img], [#"{"text": "x"}"#])
        assertThrows({ try ImageFolderImport.importDataset(self.options(noName)) }, contains: "line 1: no file_name")
        assertThrows({ try ImageFolderImport.importDataset(self.options(self.tmp.appendingPathComponent("nope"))) },
                     contains: "nope: no such folder")
    }

    func testMissingCaptionIsAnErrorOrACountedSkip() throws {
        let src = try source(["a.png": try png(1), "b.png": try png(2)],
                             [#"{"file_name": "a.png", "text": "x"}"#, #"{"file_name": "b.png", "label": 1}"#])
        assertThrows({ try ImageFolderImport.importDataset(self.options(src)) },
                     contains: "metadata.jsonl line 2 (b.png): no text caption")
        let summary = try ImageFolderImport.importDataset(options(src, skip: true))
        XCTAssertEqual(summary.images, 1)
        XCTAssertEqual(summary.skipped, ["metadata.jsonl line 2 (b.png): no text caption"])
        let readme = try String(contentsOf: tmp.appendingPathComponent("out/README.md"), encoding: .utf8)
        XCTAssert(readme.contains("## Skipped (1)") && readme.contains("no text caption"))
    }

    func testBadImagesAreCountedSkipsOrStrictErrors() throws {
        let good = try png(1)
        let gif = Array("GIF89a".utf8) + [UInt8](repeating: 0, count: 40)
        let src = try source(["good.png": good, "corrupt.png": Array(good.prefix(8)) + [UInt8](repeating: 7, count: 60),
                              "truncated.png": Array(good.prefix(good.count / 2)), "anim.gif": gif, "empty.jpg": []], [
            #"{"file_name": "good.png", "text": "g"}"#, #"{"file_name": "corrupt.png", "text": "c"}"#,
            #"{"file_name": "truncated.png", "text": "t"}"#, #"{"file_name": "anim.gif", "text": "a"}"#,
            #"{"file_name": "empty.jpg", "text": "e"}"#, #"{"file_name": "missing.png", "text": "m"}"#,
        ])
        var log: [String] = []
        let summary = try ImageFolderImport.importDataset(options(src)) { log.append($0) }
        XCTAssertEqual(summary.images, 1)
        XCTAssertEqual(summary.skipped.count, 5)
        let all = summary.skipped.joined(separator: "\n")
        for needle in ["corrupt.png): ", "cannot decode PNG", "truncated.png", "GIF images are not supported",
                       "empty.jpg: empty file", "missing.png: no such file"] {
            XCTAssert(all.contains(needle), "skips lack '\(needle)':\n\(all)")
        }
        XCTAssert(log.contains { $0.hasPrefix("skipped 5: ") })
        var strict = options(src, strict: true)
        strict.output = tmp.appendingPathComponent("strict")
        assertThrows({ try ImageFolderImport.importDataset(strict) }, contains: "line 2 (corrupt.png): ")
        assertThrows({ try ImageFolderImport.importDataset(strict) }, contains: "(--strict)")
    }

    /// `--source` and `--out` overlapping in either direction (the same folder, output inside the source, source
    /// inside the output), spelled with a trailing slash, `..` or a symlink, is refused with or without `force`,
    /// with an error that does not suggest --force, and every file of the source is left byte-identical.
    func testOverlappingSourceAndOutputAreRefusedAndTheSourceIsIntact() throws {
        let fm = FileManager.default
        // D/ holds a README and D/images/ the image folder (its own metadata.jsonl and images).
        let d = tmp.appendingPathComponent("D")
        let images = d.appendingPathComponent("images")
        try fm.createDirectory(at: images.appendingPathComponent("cats"), withIntermediateDirectories: true)
        try Data(try png(1)).write(to: images.appendingPathComponent("cats/a.png"))
        try Data(try png(2)).write(to: images.appendingPathComponent("b.png"))
        try Data((#"{"file_name": "cats/a.png", "text": "a cat"}"# + "\n" + #"{"file_name": "b.png", "text": "a dog"}"#)
            .utf8).write(to: images.appendingPathComponent("metadata.jsonl"))
        try Data("# my images\n".utf8).write(to: images.appendingPathComponent("README.md"))
        try Data("# the parent\n".utf8).write(to: d.appendingPathComponent("README.md"))
        let link = tmp.appendingPathComponent("link")
        try fm.createSymbolicLink(at: link, withDestinationURL: images)
        let before = fileTree(d)
        XCTAssertEqual(before.count, 5)

        let cases: [(source: String, out: String)] = [
            (images.path, images.path),                         // the same folder
            (images.path, images.path + "/"),                   // trailing slash
            (images.path, d.path + "/images/../images"),        // ".."
            (images.path, link.path),                           // through a symlink
            (link.path + "/", images.path),
            (images.path, images.path + "/out"),                // output inside the source
            (images.path, link.path + "/cats"),
            (images.path, d.path),                              // source inside the output
            (link.path, d.path + "/"),
            (link.path + "/cats/..", d.path),
        ]
        for (s, o) in cases {
            for force in [false, true] {
                let opts = ImageFolderImport.Options(source: URL(fileURLWithPath: s), output: URL(fileURLWithPath: o),
                                                     force: force)
                do {
                    try ImageFolderImport.importDataset(opts)
                    XCTFail("--source \(s) --out \(o) force \(force): not refused")
                } catch {
                    let message = "\(error)"
                    XCTAssertTrue(message.contains("overlap"), "\(s) → \(o): \(message)")
                    XCTAssertFalse(message.contains("--force"), "the error must not suggest --force: \(message)")
                }
                XCTAssertEqual(fileTree(d), before, "--source \(s) --out \(o) force \(force) changed the source")
            }
        }
        XCTAssertFalse(fm.fileExists(atPath: images.appendingPathComponent("out").path))
        XCTAssertFalse(fm.fileExists(atPath: images.appendingPathComponent(DatasetFolder.inProgressName).path))
        // A sibling output is fine.
        let ok = try ImageFolderImport.importDataset(.init(source: link, output: d.appendingPathComponent("imported")))
        XCTAssertEqual(ok.images, 2)
    }

    /// The command the issue found deleting the source: `paris data import folder --source S --out S --force`.
    func testCLIRefusesToImportAFolderOntoItself() throws {
        let paris = try parisBinary(self)
        let src = try source(["a.png": try png(1)], [#"{"file_name": "a.png", "text": "x"}"#])
        try Data("# readme\n".utf8).write(to: src.appendingPathComponent("README.md"))
        let before = fileTree(src)
        for args in [["--force"], []] {
            let (status, output) = try runProcess(paris, ["data", "import", "folder", "--source", src.path,
                                                          "--out", src.path + "/"] + args)
            XCTAssertNotEqual(status, 0, output)
            XCTAssertTrue(output.contains("overlap"), output)
            XCTAssertFalse(output.contains("--force"), output)
            XCTAssertEqual(fileTree(src), before, "paris data import \(args) changed the source")
        }
    }
}
