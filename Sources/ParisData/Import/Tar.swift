import Foundation

/// One member of a tar archive.
public struct TarMember: Equatable, Sendable {
    /// What the member is.
    public enum Kind: Equatable, Sendable {
        case file
        case directory
        /// A link, device, FIFO or other non-file entry (its type flag).
        case other(UInt8)
    }

    /// The path inside the archive (pax `path` and GNU long names applied), checked to stay inside it.
    public let name: String
    public let kind: Kind
    /// The byte range of the member's content in the archive.
    public let range: Range<Int>
}

/// A minimal reader of ustar, pax and GNU tar archives (uncompressed), as WebDataset shards are written.
/// Errors name the archive, the member and what is wrong: a truncated archive, a bad header checksum, a malformed
/// size, or a member name that is absolute or climbs out with "..".
public struct TarArchive {
    public let name: String
    public let data: Data
    public let members: [TarMember]

    /// Reads the archive at `url` (memory-mapped).
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw DatasetImportError("\(url.path): cannot read the tar archive")
        }
        try self.init(data: data, name: url.path)
    }

    /// Parses archive bytes; `name` is used in error messages.
    public init(data: Data, name: String) throws {
        self.name = name
        self.data = data
        var members: [TarMember] = []
        var offset = 0
        var paxPath: String? = nil, gnuLongName: String? = nil
        var ended = false
        let base = data.startIndex
        func bytes(_ r: Range<Int>) -> [UInt8] { [UInt8](data[(base + r.lowerBound)..<(base + r.upperBound)]) }
        let total = data.count
        while offset < total {
            guard offset + 512 <= total else {
                throw DatasetImportError("\(name): truncated tar archive: \(total - offset) bytes of a 512-byte "
                    + "header at byte \(offset)")
            }
            let h = ArraySlice(bytes(offset..<(offset + 512)))
            if h.allSatisfy({ $0 == 0 }) { ended = true; break }
            let stored = try Self.octal(h, 148, 8, field: "checksum", name: name, at: offset)
            var sum = 0
            for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard stored == sum else {
                throw DatasetImportError("\(name): corrupt tar header at byte \(offset) (checksum \(stored), computed "
                    + "\(sum)); not a tar archive, or damaged")
            }
            let size = try Self.octal(h, 124, 12, field: "size", name: name, at: offset)
            let type = h[h.startIndex + 156]
            let start = offset + 512
            // `size > total - start`, not `start + size > total`: a base-256 size near Int.max must not overflow.
            guard size <= total - start else {
                throw DatasetImportError("\(name): truncated tar archive: member '\(Self.string(h, 0, 100))' at byte "
                    + "\(offset) needs \(size) bytes, \(total - start) are left")
            }
            let content = start..<(start + size)
            offset = start + (size + 511) / 512 * 512
            switch type {
            case UInt8(ascii: "x"):
                paxPath = try Self.paxRecords(bytes(content), name: name)["path"]
                continue
            case UInt8(ascii: "g"): continue
            case UInt8(ascii: "L"):
                gnuLongName = String(decoding: bytes(content).prefix { $0 != 0 }, as: UTF8.self)
                continue
            default: break
            }
            var path = Self.string(h, 0, 100)
            let prefix = Self.string(h, 345, 155)
            let magic = Self.string(h, 257, 6)
            if magic == "ustar" && !prefix.isEmpty { path = prefix + "/" + path }
            if let long = gnuLongName { path = long }
            if let pax = paxPath { path = pax }
            paxPath = nil
            gnuLongName = nil
            try Self.checkMemberName(path, archive: name)
            let kind: TarMember.Kind = switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): .file
            case UInt8(ascii: "5"): .directory
            default: .other(type)
            }
            members.append(TarMember(name: path, kind: kind, range: content))
        }
        guard ended else {
            throw DatasetImportError("\(name): truncated tar archive: no end-of-archive block after \(members.count) members")
        }
        self.members = members
    }

    /// The content of a member.
    public func contents(of member: TarMember) -> [UInt8] {
        [UInt8](data[(data.startIndex + member.range.lowerBound)..<(data.startIndex + member.range.upperBound)])
    }

    /// Rejects empty, absolute and ".."-climbing member names.
    static func checkMemberName(_ path: String, archive: String) throws {
        guard !path.isEmpty else { throw DatasetImportError("\(archive): a tar member has an empty name") }
        guard !path.hasPrefix("/") else {
            throw DatasetImportError("\(archive): member '\(path)' has an absolute path (path traversal); refused")
        }
        if path.split(separator: "/").contains("..") {
            throw DatasetImportError("\(archive): member '\(path)' climbs out with '..' (path traversal); refused")
        }
    }

    static func string(_ h: ArraySlice<UInt8>, _ at: Int, _ len: Int) -> String {
        let s = h.startIndex + at
        return String(decoding: h[s..<(s + len)].prefix { $0 != 0 }, as: UTF8.self)
    }

    /// An octal number field (NUL/space padded), or GNU base-256 when the high bit of the first byte is set.
    static func octal(_ h: ArraySlice<UInt8>, _ at: Int, _ len: Int, field: String, name: String, at offset: Int) throws -> Int {
        let s = h.startIndex + at
        let f = h[s..<(s + len)]
        if let first = f.first, first & 0x80 != 0 {
            var v = Int(first & 0x7f)
            for b in f.dropFirst() {
                guard v < (Int.max >> 8) else { throw DatasetImportError("\(name): tar \(field) too large at byte \(offset)") }
                v = v << 8 | Int(b)
            }
            return v
        }
        let text = String(decoding: f.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        guard let v = text.isEmpty ? 0 : Int(text, radix: 8), v >= 0 else {
            throw DatasetImportError("\(name): corrupt tar header at byte \(offset): \(field) field '\(text)' is not octal")
        }
        return v
    }

    /// Pax records "<len> <key>=<value>\n", where `len` counts the whole record, its own digits and the newline.
    static func paxRecords(_ b: [UInt8], name: String) throws -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < b.count {
            // The record must hold at least its length, the space and the newline, and end inside the header
            // (`len <= b.count - i`, which cannot overflow as `i + len` could).
            guard let sp = b[i...].firstIndex(of: 32), let len = Int(String(decoding: b[i..<sp], as: UTF8.self)),
                  len > sp - i + 1, len <= b.count - i else {
                throw DatasetImportError("\(name): malformed pax extended header")
            }
            let record = b[(sp + 1)..<(i + len - 1)]
            if let eq = record.firstIndex(of: UInt8(ascii: "=")) {
                out[String(decoding: record[..<eq], as: UTF8.self)] = String(decoding: record[(eq + 1)...], as: UTF8.self)
            }
            i += len
        }
        return out
    }
}
