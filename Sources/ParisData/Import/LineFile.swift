import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A text file of lines (a `metadata.jsonl`) read without holding it whole: `forEachLine` streams it in blocks of
/// `blockSize` bytes, handing each line with its byte offset and its 1-based number, and `LineFile.Reader` reads the
/// line at a known offset again. So a reader of a million-line file holds one block, plus whatever it keeps per line
/// (an offset), never the file.
///
/// Lines are what `split(separator: "\n", omittingEmptySubsequences: false)` gives: a file ending in "\n" has an
/// empty last line, and an empty file has one empty line. The bytes are handed as they are ("\r" included).
struct LineFile {
    let url: URL
    /// The bytes read at a time (a longer line grows the buffer to hold it).
    var blockSize = 1 << 20

    /// An error naming the file and the OS's reason.
    func failure(_ what: String) -> DatasetImportError {
        DatasetImportError("\(url.path): \(what): \(String(cString: strerror(errno)))")
    }

    /// Calls `body(line, offset, number)` for every line in order: the line's bytes without its "\n", the byte
    /// offset of its first byte and its 1-based number. `body` returns false to stop early.
    func forEachLine(_ body: (UnsafeRawBufferPointer, UInt64, Int) throws -> Bool) throws {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: max(blockSize, 16))
        var start = 0, end = 0          // unread bytes: buffer[start..<end]
        var offset: UInt64 = 0          // file offset of buffer[start]
        var number = 0, atEnd = false
        while true {
            // Every complete line in the buffer.
            let stop: Bool = try buffer.withUnsafeBytes { raw in
                while start < end {
                    guard let nl = memchr(raw.baseAddress! + start, 10, end - start) else { break }
                    let length = raw.baseAddress!.distance(to: UnsafeRawPointer(nl)) - start
                    number += 1
                    if try !body(UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)]), offset, number) {
                        return true
                    }
                    start += length + 1
                    offset += UInt64(length + 1)
                }
                return false
            }
            if stop { return }
            if atEnd {
                // The last line: what follows the last "\n" (empty when the file ends in one).
                number += 1
                _ = try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<end]), offset, number) }
                return
            }
            // Keep the partial line at the front, grow for a line longer than the buffer, and read more.
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
                }
                end -= start
                start = 0
            }
            if end == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
            let n = buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress! + end, raw.count - end) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("read failed")
            }
            if n == 0 { atEnd = true } else { end += n }
        }
    }

    /// The number of the first line before line `before` for which `matches` holds, or nil. This is the exact
    /// check behind a set of hashes of what was seen: a hash seen twice is a repeat only if an earlier line matches.
    func firstLine(before: Int, where matches: (UnsafeRawBufferPointer) -> Bool) throws -> Int? {
        var found: Int? = nil
        try forEachLine { bytes, _, number in
            guard number < before else { return false }
            if matches(bytes) {
                found = number
                return false
            }
            return true
        }
        return found
    }

    /// The file's size and modification time now, to tell whether it changed since it was read.
    func stamp() throws -> Stamp {
        var s = stat()
        guard stat(url.path, &s) == 0 else { throw failure("cannot stat") }
        return Stamp(s)
    }

    /// A file's size and modification time (nanoseconds).
    struct Stamp: Equatable, Sendable {
        let size: Int64
        let modified: Int64

        init(_ s: stat) {
            size = Int64(s.st_size)
            #if canImport(Darwin)
            modified = Int64(s.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(s.st_mtimespec.tv_nsec)
            #else
            modified = Int64(s.st_mtim.tv_sec) * 1_000_000_000 + Int64(s.st_mtim.tv_nsec)
            #endif
        }
    }

    /// Reads lines at known offsets from an open file, through a window of the file's bytes: lines read in file
    /// order come from one read of up to 64 KiB, and a line far from the last one costs one small read.
    final class Reader {
        let file: LineFile
        private let fd: Int32
        private var window: [UInt8] = []
        private var windowStart: UInt64 = 0

        /// Opens the file; throws when it is not `expected` any more (another size or modification time).
        init(_ file: LineFile, expected: Stamp?) throws {
            self.file = file
            fd = open(file.url.path, O_RDONLY)
            guard fd >= 0 else { throw file.failure("cannot open") }
            var s = stat()
            if let expected, fstat(fd, &s) == 0, Stamp(s) != expected {
                close(fd)
                throw DatasetImportError("\(file.url.path) changed after it was read (now \(s.st_size) bytes, "
                    + "\(expected.size) before); run the command again to read it anew")
            }
        }

        deinit { close(fd) }

        /// The line that starts at byte `offset`, without its "\n".
        func line(at offset: UInt64) throws -> [UInt8] {
            if let line = fromWindow(offset) { return line }
            // Near the window (lines read in order): a large read; elsewhere a small one.
            let near = offset >= windowStart && offset <= windowStart + UInt64(window.count) + (1 << 16)
            var size = near ? 1 << 16 : 1 << 12
            while true {
                try fill(from: offset, size: size)
                if let nl = window.firstIndex(of: 10) { return Array(window[..<nl]) }
                if window.count < size { return window }  // the end of the file: a last line without "\n"
                size *= 2
            }
        }

        /// The line at `offset` when the window holds all of it.
        private func fromWindow(_ offset: UInt64) -> [UInt8]? {
            guard offset >= windowStart, offset < windowStart + UInt64(window.count) else { return nil }
            let from = Int(offset - windowStart)
            guard let nl = window[from...].firstIndex(of: 10) else { return nil }
            return Array(window[from..<nl])
        }

        /// Reads up to `size` bytes at `offset` into the window.
        private func fill(from offset: UInt64, size: Int) throws {
            window = [UInt8](repeating: 0, count: size)
            var got = 0
            while got < size {
                let n = window.withUnsafeMutableBytes { raw in
                    pread(fd, raw.baseAddress! + got, size - got, off_t(offset) + off_t(got))
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw file.failure("read failed")
                }
                if n == 0 { break }
                got += n
            }
            window.removeLast(size - got)
            windowStart = offset
        }
    }
}
