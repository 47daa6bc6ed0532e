import Foundation
import ParisTestSupport
import XCTest

@testable import ParisData

/// Issue #17: metadata.jsonl read as a stream (`LineFile`), with per row only an offset, a line number and a label
/// id (`ImageFolder`), lines read back on demand, and distinct captions found by hash with exact comparison
/// (`DistinctCaptions`).
final class ImageFolderTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-imagefolder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ text: String, name: String = "metadata.jsonl") throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// Every line with its offset, through blocks of `block` bytes.
    func lines(_ url: URL, block: Int) throws -> [(String, UInt64, Int)] {
        var out: [(String, UInt64, Int)] = []
        var file = LineFile(url: url)
        file.blockSize = block
        try file.forEachLine { bytes, offset, number in
            out.append((String(decoding: bytes, as: UTF8.self), offset, number))
            return true
        }
        return out
    }

    func testLinesSplitLikeSplitOnNewlineWhateverTheBlockSize() throws {
        let long = String(repeating: "x", count: 300)
        for text in ["a\nbc\n\n\(long)\r\nlast", "one\n", "", "\n\n", "no newline"] {
            let url = try write(text)
            let expected = text.utf8.split(separator: 10, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            for block in [1, 3, 16, 1 << 20] {
                let got = try lines(url, block: block)
                XCTAssertEqual(got.map(\.0), expected, "block \(block): \(text.debugDescription)")
                XCTAssertEqual(got.map(\.2), Array(1...expected.count))
                // Each offset is where its line starts, and the reader reads that line back, in order or not.
                let reader = try LineFile.Reader(LineFile(url: url), expected: try LineFile(url: url).stamp())
                for (line, offset, _) in got + got.reversed() {
                    XCTAssertEqual(String(decoding: try reader.line(at: offset), as: UTF8.self), line)
                }
            }
        }
        // Stopping early.
        var seen = 0
        try LineFile(url: try write("a\nb\nc\n")).forEachLine { _, _, _ in seen += 1; return seen < 2 }
        XCTAssertEqual(seen, 2)
        assertThrows({ try LineFile(url: self.dir.appendingPathComponent("none")).forEachLine { _, _, _ in true } },
                     contains: "none: cannot open: No such file or directory")
    }

    func testReaderReadsLinesLongerThanItsWindow() throws {
        let long = String(repeating: "é", count: 100_000)
        let url = try write("short\n\(long)\nend")
        let got = try lines(url, block: 1 << 10)
        XCTAssertEqual(got.map(\.0), ["short", long, "end"])
        let reader = try LineFile.Reader(LineFile(url: url), expected: nil)
        XCTAssertEqual(try reader.line(at: got[1].1).count, long.utf8.count)
        XCTAssertEqual(try reader.line(at: got[2].1), Array("end".utf8))
    }

    func testFolderKeepsRowsNotTheirTextsAndReadsEntriesBack() throws {
        var text = ""
        for i in 0..<50 {
            let split = i % 5 == 0 ? "test" : "train"
            let label = i % 3 == 0 ? #""label": \#(i % 4), "# : i % 3 == 1 ? #""label": "l\#(i % 2)", "# : ""
            text += #"{"file_name": "images/\#(i).png", "text": "caption \#(i % 7)", \#(label)"split": "\#(split)"}"# + "\n"
            if i % 10 == 0 { text += "  \r\n" }  // blank lines count for the line numbers only
        }
        _ = try write(text)
        let folder = try ImageFolder.read(dir, split: "train", limit: 30)
        XCTAssertEqual(folder.count, 30)
        XCTAssertEqual(folder.labels, ["l1", "3", "l0", "2", "1", "0"], "distinct labels, in order of first use")
        let entries = try folder.entries(0..<folder.count)
        let train = (0..<50).filter { $0 % 5 != 0 }.prefix(30)
        XCTAssertEqual(entries.map(\.fileName), train.map { "images/\($0).png" })
        XCTAssertEqual(entries.map(\.text), train.map { "caption \($0 % 7)" })
        XCTAssertEqual(entries.map(\.label), train.map { $0 % 3 == 0 ? String($0 % 4) : $0 % 3 == 1 ? "l\($0 % 2)" : nil })
        XCTAssertEqual(entries.map(\.line), train.map { $0 + 1 + ($0 + 9) / 10 })
        XCTAssertEqual((0..<folder.count).map(folder.label(ofRow:)), entries.map(\.label))
        XCTAssertEqual(try folder.entries([29, 3, 3, 0]), [entries[29], entries[3], entries[3], entries[0]])
        XCTAssertEqual(MemoryLayout.stride(ofValue: folder.offsets[0]) + MemoryLayout.stride(ofValue: folder.lines[0])
                       + MemoryLayout.stride(ofValue: folder.labelIDs[0]), 16, "16 bytes a row")
    }

    /// With every file name hashing alike, distinct names are still distinct (each hit compared exactly), and a real
    /// repeat names the line it repeats.
    func testHashCollisionsAreNotRepeats() throws {
        let names = (0..<20).map { #"{"file_name": "\#($0).png", "text": "t"}"# }
        _ = try write(names.joined(separator: "\n") + "\n")
        XCTAssertEqual(try ImageFolder.read(dir, split: nil, limit: nil, hash: { _ in 7 }).count, 20)
        _ = try write((names + [#"{"file_name": "13.png", "text": "again"}"#]).joined(separator: "\n"))
        assertThrows({ try ImageFolder.read(self.dir, split: nil, limit: nil, hash: { _ in 7 }) },
                     contains: "metadata.jsonl:21: file_name '13.png' repeats line 14")
        assertThrows({ try ImageFolder.read(self.dir) }, contains: "metadata.jsonl:21: file_name '13.png' repeats line 14")
    }

    func testAChangedMetadataFileIsRefusedWhenReadBack() throws {
        _ = try write(#"{"file_name": "a.png", "text": "t"}"# + "\n")
        let folder = try ImageFolder.read(dir)
        _ = try write(#"{"file_name": "a.png", "text": "t2"}"# + "\n" + #"{"file_name": "b.png", "text": "u"}"# + "\n")
        assertThrows({ try folder.entries([0]) }, contains: "metadata.jsonl changed after it was read")
    }

    /// The same distinct captions and caption indices as a dictionary gives, with collisions on every caption and no
    /// cache (every hit read back), and with the cache.
    func testDistinctCaptionsMatchADictionary() throws {
        let texts = (0..<200).map { "caption \(($0 * 7919) % 37)" } + ["café", "cafe\u{301}"]
        var expected: [String: Int] = [:], order: [String] = [], ids: [Int] = []
        for t in texts {
            if expected[t] == nil {
                expected[t] = order.count
                order.append(t)
            }
            ids.append(expected[t]!)
        }
        XCTAssertEqual(order.count, 38, "café in its two spellings is one caption, as for a Swift dictionary")
        for (cache, hash) in [(0, { (_: String) in 1 }), (1 << 20, { (_: String) in 1 }), (1 << 20, { $0.hashValue })] {
            var distinct = DistinctCaptions(cacheBytes: cache, hash: hash)
            var reads = 0
            for t in texts { try distinct.add(t) { reads += 1; return texts[$0] } }
            XCTAssertEqual(distinct.captionOf.map { Int($0) }, ids)
            XCTAssertEqual(try (0..<distinct.count).map { try distinct.text($0) { texts[$0] } }, order)
            if cache > 0 { XCTAssertEqual(reads, 0, "every caption was kept, none read back") }
        }
    }
}
