import Foundation
import ParisImage
import ParisData
import XCTest

final class WebDatasetImportTests: XCTestCase {
    private var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("wds-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func png(_ seed: Int) throws -> [UInt8] {
        try Image(width: 5, height: 4, channels: 3, pixels: (0..<60).map { UInt8(truncatingIfNeeded: $0 * 7 + seed) }).pngData()
    }

    private func shard(_ name: String, _ members: [(String, [UInt8])]) throws -> URL {
        let url = tmp.appendingPathComponent(name)
        try Data(TarBuilder.archive(members)).write(to: url)
        return url
    }

    func testImportsSamplesFromShards() throws {
        let dir = tmp.appendingPathComponent("shards")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(TarBuilder.archive([
            ("000000.png", try png(1)), ("000000.txt", Array("a red square\n".utf8)),
            ("sub/000001.jpg.json", []),  // ignored name pieces stay in the key's extension
            ("000002.png", try png(2)), ("000002.json", Array(#"{"caption": "a blue one", "width": 5}"#.utf8)),
            ("000002.cls", Array("7".utf8)),
        ])).write(to: dir.appendingPathComponent("shard-000.tar"))
        try Data(TarBuilder.archive([("x.png", try png(3)), ("x.json", Array(#"{"text": "third"}"#.utf8))]))
            .write(to: dir.appendingPathComponent("shard-001.tar"))
        let out = tmp.appendingPathComponent("out")
        let summary = try WebDatasetImport.importDataset(.init(sources: [dir], output: out, skipMissingCaptions: true))
        XCTAssertEqual(summary.images, 3)
        XCTAssertEqual(summary.skipped.count, 1)
        XCTAssert(summary.skipped[0].contains("key sub/000001: no .png/.jpg/.jpeg image"), summary.skipped[0])
        let rows = try String(contentsOf: out.appendingPathComponent("metadata.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(rows.map { $0["file_name"] as? String },
                       ["images/shard-000/00000/000000.png", "images/shard-000/00000/000002.png", "images/shard-001/00000/x.png"])
        XCTAssertEqual(rows.map { $0["text"] as? String }, ["a red square", "a blue one", "third"])
        XCTAssertEqual(rows[1]["label"] as? Int, 7)
        XCTAssertEqual(rows[1]["width"] as? Int, 5)
        XCTAssertEqual(try Image(contentsOf: out.appendingPathComponent("images/shard-000/00000/000002.png")),
                       try Image(decoding: try png(2)))
    }

    func testMissingCaptionUnsupportedAndCorruptImages() throws {
        let noCaption = try shard("a.tar", [("k.png", try png(1))])
        assertThrows({ try WebDatasetImport.importDataset(.init(sources: [noCaption], output: self.tmp.appendingPathComponent("o1"))) },
                     contains: "a.tar: key k: no caption")
        let mixed = try shard("b.tar", [
            ("ok.png", try png(1)), ("ok.txt", Array("fine".utf8)),
            ("w.webp", Array("RIFF....WEBP".utf8)), ("w.txt", Array("webp".utf8)),
            ("bad.jpg", [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]), ("bad.txt", Array("corrupt".utf8)),
        ])
        let summary = try WebDatasetImport.importDataset(.init(sources: [mixed], output: tmp.appendingPathComponent("o2")))
        XCTAssertEqual(summary.images, 1)
        let all = summary.skipped.joined(separator: "\n")
        XCTAssert(all.contains("key w: no .png/.jpg/.jpeg image (has txt, webp)"), all)
        XCTAssert(all.contains("b.tar:bad.jpg: cannot decode JPEG"), all)
        assertThrows({ try WebDatasetImport.importDataset(.init(sources: [mixed], output: self.tmp.appendingPathComponent("o3"),
                                                                 strict: true)) }, contains: "(--strict)")
    }

    func testTruncatedAndTraversingShardsAreErrors() throws {
        let full = TarBuilder.archive([("k.png", try png(1)), ("k.txt", Array("x".utf8))])
        let cut = tmp.appendingPathComponent("cut.tar")
        try Data(full.prefix(600)).write(to: cut)
        assertThrows({ try WebDatasetImport.importDataset(.init(sources: [cut], output: self.tmp.appendingPathComponent("o"))) },
                     contains: "cut.tar: truncated tar archive")
        let evil = try shard("evil.tar", [("../k.png", try png(1)), ("../k.txt", Array("x".utf8))])
        assertThrows({ try WebDatasetImport.importDataset(.init(sources: [evil], output: self.tmp.appendingPathComponent("o"))) },
                     contains: "evil.tar: member '../k.png' climbs out with '..' (path traversal)")
        let dup = try shard("dup.tar", [("k.png", try png(1)), ("k.png", try png(2))])
        assertThrows({ try WebDatasetImport.importDataset(.init(sources: [dup], output: self.tmp.appendingPathComponent("o"))) },
                     contains: "dup.tar: duplicate member 'k.png'")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("o").path))
        assertThrows({ try WebDatasetImport.importDataset(.init(sources: [self.tmp], output: self.tmp.appendingPathComponent("o"))) },
                     contains: "cut.tar: truncated")  // the folder's shards are read in name order: cut, dup, evil
    }

    /// A shard folder (or a shard file) overlapping `--out` in either direction is refused with or without force,
    /// without suggesting --force, and the shards and the folder's other files are left byte-identical.
    func testOverlappingSourceAndOutputAreRefusedAndTheShardsAreIntact() throws {
        let fm = FileManager.default
        let d = tmp.appendingPathComponent("D")
        let shards = d.appendingPathComponent("shards")
        try fm.createDirectory(at: shards, withIntermediateDirectories: true)
        try Data(TarBuilder.archive([("k.png", try png(1)), ("k.txt", Array("a square".utf8))]))
            .write(to: shards.appendingPathComponent("s0.tar"))
        try Data("# shards\n".utf8).write(to: shards.appendingPathComponent("README.md"))
        try Data(#"{"file_name": "x.png", "text": "mine"}"#.utf8).write(to: shards.appendingPathComponent("metadata.jsonl"))
        try fm.createDirectory(at: shards.appendingPathComponent("images"), withIntermediateDirectories: true)
        try Data(try png(5)).write(to: shards.appendingPathComponent("images/x.png"))
        try Data("# parent\n".utf8).write(to: d.appendingPathComponent("README.md"))
        let link = tmp.appendingPathComponent("link")
        try fm.createSymbolicLink(at: link, withDestinationURL: shards)
        let before = fileTree(d)
        XCTAssertEqual(before.count, 5)
        let cases: [(sources: [String], out: String)] = [
            ([shards.path], shards.path), ([shards.path], shards.path + "/"), ([link.path], shards.path),
            ([shards.path], link.path + "/images"), ([shards.path], d.path), ([link.path + "/"], d.path),
            ([shards.path + "/s0.tar"], shards.path), ([link.path + "/s0.tar"], d.path + "/x/.."),
            ([tmp.path + "/elsewhere.tar", shards.path], d.path),
        ]
        try Data(TarBuilder.archive([("e.png", try png(2)), ("e.txt", Array("e".utf8))]))
            .write(to: tmp.appendingPathComponent("elsewhere.tar"))
        for (sources, out) in cases {
            for force in [false, true] {
                let opts = WebDatasetImport.Options(sources: sources.map { URL(fileURLWithPath: $0) },
                                                    output: URL(fileURLWithPath: out), force: force)
                do {
                    try WebDatasetImport.importDataset(opts)
                    XCTFail("--source \(sources) --out \(out) force \(force): not refused")
                } catch {
                    let message = "\(error)"
                    XCTAssertTrue(message.contains("overlap"), "\(sources) → \(out): \(message)")
                    XCTAssertFalse(message.contains("--force"), "the error must not suggest --force: \(message)")
                }
                XCTAssertEqual(fileTree(d), before, "--source \(sources) --out \(out) force \(force) changed the source")
            }
        }
        XCTAssertEqual(try WebDatasetImport.importDataset(.init(sources: [link], output: tmp.appendingPathComponent("o")))
            .images, 1)
    }
}
