import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemWrite = Glibc.write
#else
private let systemWrite = Darwin.write
#endif

/// Atomic file replacement: the content goes to a temporary file in the target's folder (same file system), is
/// flushed to disk, then renamed over the target, so a reader sees the old file or the new one, never a partial one.
/// On any error the temporary file is removed and the target is untouched.
public enum AtomicFile {
    /// A sink for the bytes of the file being written.
    public final class Writer {
        fileprivate let fd: Int32
        fileprivate let path: String
        fileprivate init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        public func write(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try write($0) }
        }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            try AtomicFile.writeAll(bytes, to: fd, path: path)
        }
    }

    /// Writes all of `bytes` to the open file `fd`, retrying short writes and EINTR; `path` names the file in the
    /// error. (Also used by writers that stream a file of their own, such as the importers' metadata.)
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw TorchError("\(path): write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Writes `url` atomically with the bytes that `body` gives the writer.
    public static func write(to url: URL, _ body: (Writer) throws -> Void) throws {
        let dir = url.deletingLastPathComponent().path
        let target = url.path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw TorchError("\(target): the folder \(dir) does not exist")
        }
        var template = Array("\(dir)/.\(url.lastPathComponent).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw TorchError("\(target): cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))")
        }
        let tmp = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var renamed = false
        defer {
            if !renamed { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            try body(Writer(fd: fd, path: target))
            // mkstemp makes the file 0600; give it the usual permissions (0666 less the umask).
            let mask = umask(0)
            umask(mask)
            fchmod(fd, 0o666 & ~mask)
            guard fsync(fd) == 0 else { throw TorchError("\(target): fsync failed: \(String(cString: strerror(errno)))") }
        }
        guard rename(tmp, target) == 0 else {
            throw TorchError("\(target): cannot rename the temporary file into place: \(String(cString: strerror(errno)))")
        }
        renamed = true
    }

    /// Writes `bytes` to `url` atomically.
    public static func write(_ bytes: [UInt8], to url: URL) throws {
        try write(to: url) { try $0.write(bytes) }
    }
}
