import Foundation
import Torch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where every importer puts its images: subfolders of at most `filesPerFolder` files (1,000 by default), so that
/// a dataset of a million images is a thousand folders of a thousand files, not one folder of a million (which
/// makes `ls`, `rm -r`, rsync and many file systems crawl). Row `i` of a group goes to the folder `i / 1000`,
/// zero-padded to five digits: `images/00012/<name>.png` for `i` in 12,000…12,999. `file_name` in metadata.jsonl
/// is that relative path, so `ImageFolder.read` needs nothing special (flat folders from older imports still read).
public struct BoundedFolders: Sendable, Equatable {
    /// The default cap, used by every importer.
    public static let defaultFilesPerFolder = 1000
    public static let standard = BoundedFolders()

    /// The most files one subfolder holds.
    public let filesPerFolder: Int

    public init(filesPerFolder: Int = BoundedFolders.defaultFilesPerFolder) {
        precondition(filesPerFolder > 0, "a folder holds at least one file")
        self.filesPerFolder = filesPerFolder
    }

    /// The subfolder of row `index`: `index / filesPerFolder`, zero-padded to five digits ("00012").
    public func folder(_ index: Int) -> String {
        let n = String(index / filesPerFolder)
        return String(repeating: "0", count: max(0, 5 - n.count)) + n
    }

    /// The relative path of row `index` named `name` under `prefix`: "<prefix>/<folder>/<name>".
    public func path(_ index: Int, under prefix: String, name: String) -> String {
        "\(prefix)/\(folder(index))/\(name)"
    }
}

/// `metadata.jsonl` written as a stream: lines go through a buffer into `.metadata.jsonl.partial` in the dataset
/// folder, so an import of a million images never holds all its lines in memory. `commit` flushes, syncs and
/// renames it to `metadata.jsonl` (atomic: a reader sees no file or the whole one); `DatasetFolder.finish` does that
/// before it writes the completion marker. Every importer writes its metadata this way.
public final class MetadataStream {
    public static let partialName = ".metadata.jsonl.partial"

    /// The partial file, `.metadata.jsonl.partial` in the dataset folder.
    public let url: URL
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false
    /// The number of lines appended.
    public private(set) var lines = 0

    /// Creates (or truncates) the partial file in `folder`.
    public init(folder: URL) throws {
        url = folder.appendingPathComponent(Self.partialName)
        fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw DatasetImportError("\(url.path): cannot create: \(String(cString: strerror(errno)))")
        }
        buffer.reserveCapacity(1 << 16)
    }

    deinit { if !closed { close(fd) } }

    /// Appends one line (it must end in "\n", as `DatasetFolder.metadataLine` does).
    public func append(_ line: String) throws {
        buffer.append(contentsOf: line.utf8)
        lines += 1
        if buffer.count >= 1 << 16 { try flush() }
    }

    func flush() throws {
        try buffer.withUnsafeBytes { try AtomicFile.writeAll($0, to: fd, path: url.path) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, syncs and closes the partial file and renames it to `metadata.jsonl` beside it.
    public func commit() throws {
        try flush()
        guard fsync(fd) == 0 else { throw DatasetImportError("\(url.path): fsync failed: \(String(cString: strerror(errno)))") }
        close(fd)
        closed = true
        let target = url.deletingLastPathComponent().appendingPathComponent("metadata.jsonl")
        guard rename(url.path, target.path) == 0 else {
            throw DatasetImportError("\(target.path): cannot rename \(url.lastPathComponent) into place: "
                + String(cString: strerror(errno)))
        }
    }
}
