import Foundation
import ParisData
import XCTest

/// Builds ustar archives for the tests (with pax headers for long names).
enum TarBuilder {
    static func header(_ name: String, size: Int, type: UInt8 = UInt8(ascii: "0")) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int) { for (i, b) in s.utf8.enumerated() { h[at + i] = b } }
        put(String(name.prefix(100)), 0)
        put("0000644", 100); put("0000000", 108); put("0000000", 116)
        put(String(format: "%011o", size), 124)
        put("00000000000", 136)
        h[156] = type
        put("ustar", 257); h[262] = 0; put("00", 263)
        put("        ", 148)
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), 148); h[154] = 0; h[155] = 32
        return h
    }

    static func padded(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0, count: (512 - b.count % 512) % 512) }

    /// An archive of `members` (name, content); names over 100 bytes get a pax header. `end`: the two zero blocks.
    static func archive(_ members: [(String, [UInt8])], end: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        for (name, data) in members {
            if name.utf8.count > 100 {
                var record = " path=\(name)\n"
                var len = record.utf8.count
                len += String(len + String(len).count).count
                record = "\(len)" + record
                out += header("PaxHeader/x", size: record.utf8.count, type: UInt8(ascii: "x")) + padded(Array(record.utf8))
            }
            out += header(name, size: data.count) + padded(data)
        }
        return end ? out + [UInt8](repeating: 0, count: 1024) : out
    }
}

final class TarTests: XCTestCase {
    func testReadsMembersAndPaxNames() throws {
        let long = String(repeating: "d/", count: 60) + "sample.txt"
        let bytes = TarBuilder.archive([("a/1.txt", Array("hello".utf8)), (long, Array("x".utf8)), ("empty", [])])
        let tar = try TarArchive(data: Data(bytes), name: "t.tar")
        XCTAssertEqual(tar.members.map(\.name), ["a/1.txt", long, "empty"])
        XCTAssertEqual(tar.members.map(\.kind), [.file, .file, .file])
        XCTAssertEqual(String(decoding: tar.contents(of: tar.members[0]), as: UTF8.self), "hello")
        XCTAssertEqual(tar.contents(of: tar.members[1]), Array("x".utf8))
        XCTAssertEqual(tar.contents(of: tar.members[2]), [])
    }

    /// A real archive written by Python's tarfile (pax format) reads the same.
    func testReadsPythonTarfileArchive() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tar-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import io, tarfile, sys
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
                for name, data in [("k1.txt", b"a cat"), ("k1.png", b"\\x89PNG"), ("dir/" + "n" * 150 + ".txt", b"long")]:
                    info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir.appendingPathComponent("py.tar").path]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let tar = try TarArchive(contentsOf: dir.appendingPathComponent("py.tar"))
        XCTAssertEqual(tar.members.map(\.name), ["k1.txt", "k1.png", "dir/" + String(repeating: "n", count: 150) + ".txt"])
        XCTAssertEqual(tar.contents(of: tar.members[0]), Array("a cat".utf8))
    }

    func testTruncatedArchivesAreClearErrors() throws {
        let full = TarBuilder.archive([("a.txt", [UInt8](repeating: 65, count: 1000)), ("b.txt", Array("b".utf8))])
        // Cut inside a member's data, inside a header, and before the end-of-archive blocks.
        assertThrows({ try TarArchive(data: Data(full.prefix(900)), name: "cut.tar") },
                     contains: "cut.tar: truncated tar archive: member 'a.txt' at byte 0 needs 1000 bytes")
        assertThrows({ try TarArchive(data: Data(full.prefix(1536 + 100)), name: "cut.tar") },
                     contains: "cut.tar: truncated tar archive: 100 bytes of a 512-byte header")
        let noEnd = TarBuilder.archive([("a.txt", Array("a".utf8))], end: false)
        assertThrows({ try TarArchive(data: Data(noEnd), name: "noend.tar") },
                     contains: "noend.tar: truncated tar archive: no end-of-archive block")
        assertThrows({ try TarArchive(data: Data(), name: "empty.tar") }, contains: "empty.tar: truncated")
    }

    func testCorruptHeadersAreClearErrors() {
        var bad = TarBuilder.archive([("a.txt", Array("a".utf8))])
        bad[10] ^= 0x55
        assertThrows({ try TarArchive(data: Data(bad), name: "bad.tar") }, contains: "bad.tar: corrupt tar header at byte 0")
        let text = Array(String(repeating: "not a tar file ", count: 100).utf8)
        assertThrows({ try TarArchive(data: Data(text), name: "text.tar") }, contains: "text.tar: corrupt tar header")
    }

    /// Inputs the tar fuzz target (fuzz/, docs/reliability.md) turned into arithmetic traps: each is now an error.
    func testMalformedPaxRecordsAndHugeSizesAreErrorsNotTraps() {
        func pax(_ record: String) -> [UInt8] {
            TarBuilder.header("PaxHeader/x", size: record.utf8.count, type: UInt8(ascii: "x"))
                + TarBuilder.padded(Array(record.utf8)) + TarBuilder.archive([("a.txt", [])])
        }
        // A record whose length is shorter than its own "<len> " prefix (was: "Range requires lowerBound <=
        // upperBound"), and a length that overflows when added to the offset of the record (was: arithmetic overflow).
        for record in ["1 x", "2 x", "6 a=b\n9223372036854775807 x"] {
            assertThrows({ try TarArchive(data: Data(pax(record)), name: "pax.tar") },
                         contains: "pax.tar: malformed pax extended header")
        }
        // A GNU base-256 size just under Int.max: the offset plus the size overflowed.
        var huge = TarBuilder.header("big.bin", size: 0)
        let field: [UInt8] = [0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff]
        huge.replaceSubrange(124..<136, with: field)
        huge.replaceSubrange(148..<156, with: [UInt8](repeating: 32, count: 8))
        let sum = huge.reduce(0) { $0 + Int($1) }
        huge.replaceSubrange(148..<156, with: Array(String(format: "%06o", sum).utf8) + [0, 32])
        assertThrows({ try TarArchive(data: Data(huge + [UInt8](repeating: 0, count: 1024)), name: "big.tar") },
                     contains: "big.tar: truncated tar archive: member 'big.bin' at byte 0 needs 9223372036854775551 bytes")
    }

    func testPathTraversalIsRefused() {
        for (name, message) in [("../evil.png", "climbs out with '..'"), ("a/../../evil.png", "climbs out"),
                                ("/etc/passwd", "absolute path")] {
            let bytes = TarBuilder.archive([("ok.txt", []), (name, Array("x".utf8))])
            assertThrows({ try TarArchive(data: Data(bytes), name: "t.tar") }, contains: message)
            assertThrows({ try TarArchive(data: Data(bytes), name: "t.tar") }, contains: "path traversal")
        }
    }
}
