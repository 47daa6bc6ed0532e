import Foundation

/// An image folder dataset as the importers write it (the Hugging Face "imagefolder" layout): image files under a
/// root and one `metadata.jsonl` there with a JSON object per line:
/// `{"file_name": "train/00000.png", "text": "a photo of a t-shirt", "label": 0, "split": "train", ...}`.
///
/// `file_name` and `text` are required; `label` (a number or string) is optional and used for purity/NMI and the
/// label split; `split` is optional. Reading checks every line: malformed JSON, a missing key, a `file_name` that
/// is absolute or leaves the folder (`..`), and a repeated `file_name` are errors naming `metadata.jsonl:<line>`.
/// Whether the image files exist is checked when they are decoded (`Partitioner`).
///
/// Memory stays flat in the number of rows: `read` streams metadata.jsonl once in blocks (`LineFile`) and keeps, per
/// row, the byte offset of its line, its line number and its label's id (16 bytes; the distinct labels are kept
/// once each), never the file names or captions. `entries(_:)` and `Reader` read the lines of the rows wanted again.
/// Repeated file names are found through a set of 64-bit hashes, with an exact comparison (a scan of the lines
/// before) whenever a hash is seen twice, so a hash collision is never taken for a repeat.
public struct ImageFolder: Sendable {
    public static let metadataName = "metadata.jsonl"

    /// One metadata line.
    public struct Entry: Sendable, Equatable {
        /// Relative to the root, as written in metadata.jsonl.
        public let fileName: String
        public let text: String
        public let label: String?
        /// 1-based line in metadata.jsonl.
        public let line: Int
    }

    public let root: URL
    /// The rows kept (after `split` and `limit`), in file order.
    public var count: Int { offsets.count }
    /// The distinct labels, in order of first appearance; a row's label is one of them.
    public let labels: [String]
    /// Byte offset of each row's line in metadata.jsonl.
    let offsets: [UInt64]
    /// The 1-based line number of each row.
    let lines: [UInt32]
    /// Each row's label, an index into `labels`, or -1 for none.
    let labelIDs: [Int32]
    /// metadata.jsonl's size and modification time when it was read: a reader refuses a file that changed since.
    let stamp: LineFile.Stamp

    /// metadata.jsonl.
    public var metadataURL: URL { root.appendingPathComponent(Self.metadataName) }

    /// The label of row `row` (nil when its line has none).
    public func label(ofRow row: Int) -> String? {
        let id = labelIDs[row]
        return id < 0 ? nil : labels[Int(id)]
    }

    /// The entries of `rows` (any order), read again from metadata.jsonl.
    public func entries<Rows: Sequence<Int>>(_ rows: Rows) throws -> [Entry] {
        let reader = try Reader(self)
        return try rows.map { try reader.entry($0) }
    }

    /// The file of an entry.
    public func url(of entry: Entry) -> URL { root.appendingPathComponent(entry.fileName) }

    /// Reads rows' entries from an open metadata.jsonl; rows read in file order cost about one read per 64 KiB.
    public final class Reader {
        let folder: ImageFolder
        let lines: LineFile.Reader

        /// Opens metadata.jsonl; an error when it changed since `folder` was read.
        public init(_ folder: ImageFolder) throws {
            self.folder = folder
            do {
                lines = try LineFile.Reader(LineFile(url: folder.metadataURL), expected: folder.stamp)
            } catch let error as DatasetImportError { throw PartitionError(error.message) }
        }

        /// Row `row`'s entry.
        public func entry(_ row: Int) throws -> Entry {
            let number = Int(folder.lines[row]), place = "\(folder.metadataURL.path):\(number)"
            let object: [String: Any]
            do {
                object = try ImageFolder.object(try lines.line(at: folder.offsets[row]), place: place)
            } catch let error as DatasetImportError { throw PartitionError(error.message) }
            guard let fileName = object["file_name"] as? String, let text = object["text"] as? String else {
                throw PartitionError("\(place): no longer the line that was read (metadata.jsonl changed?); run again")
            }
            return Entry(fileName: fileName, text: text, label: folder.label(ofRow: row), line: number)
        }
    }

    /// Reads `<root>/metadata.jsonl`. `split`: keep only lines whose "split" equals it (lines without one are kept);
    /// `limit`: at most this many entries, the first ones in file order.
    public static func read(_ root: URL, split: String? = nil, limit: Int? = nil) throws -> ImageFolder {
        try read(root, split: split, limit: limit, hash: { var h = Hasher(); h.combine($0); return h.finalize() })
    }

    /// `read` with the file names' hash given (tests pass a poor one to make collisions).
    static func read(_ root: URL, split: String?, limit: Int?, hash: (String) -> Int) throws -> ImageFolder {
        let url = root.appendingPathComponent(metadataName)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw PartitionError("\(root.path): no such dataset folder")
        }
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue,
              FileManager.default.isReadableFile(atPath: url.path) else {
            throw PartitionError("\(url.path): missing; a dataset folder needs a metadata.jsonl "
                + "(make one with `paris data import`)")
        }
        let file = LineFile(url: url)
        let stamp = try file.stamp()
        var offsets: [UInt64] = [], lines: [UInt32] = [], labelIDs: [Int32] = []
        var labels: [String] = [], labelID: [String: Int32] = [:]
        var seen = Set<Int>()
        do {
            try file.forEachLine { bytes, offset, number in
                let place = "\(url.path):\(number)"
                guard let object = try parse(bytes, place: place) else { return true }
                guard let fileName = object["file_name"] as? String else {
                    throw PartitionError("\(place): no \"file_name\" string")
                }
                guard object["text"] is String else { throw PartitionError("\(place): no \"text\" string") }
                try checkRelative(fileName, place: place)
                if !seen.insert(hash(fileName)).inserted, let first = try file.firstLine(before: number, where: {
                    (try? parse($0, place: ""))?["file_name"] as? String == fileName
                }) {
                    throw PartitionError("\(place): file_name '\(fileName)' repeats line \(first)")
                }
                if let wanted = split, let s = object["split"] as? String, s != wanted { return true }
                if let limit, offsets.count >= limit { return true }
                guard number <= UInt32.max else { throw PartitionError("\(place): more lines than a partition reads") }
                var id: Int32 = -1
                if let label = labelString(object["label"]) {
                    if let known = labelID[label] {
                        id = known
                    } else {
                        id = Int32(labels.count)
                        labelID[label] = id
                        labels.append(label)
                    }
                }
                offsets.append(offset)
                lines.append(UInt32(number))
                labelIDs.append(id)
                return true
            }
        } catch let error as DatasetImportError { throw PartitionError(error.message) }
        return ImageFolder(root: root, labels: labels, offsets: offsets, lines: lines, labelIDs: labelIDs, stamp: stamp)
    }

    /// The JSON object of a line, nil for a blank one ("\r" bytes dropped; only spaces and tabs left is blank).
    static func parse(_ bytes: UnsafeRawBufferPointer, place: String) throws -> [String: Any]? {
        if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { return nil }
        return try object(bytes, place: place)
    }

    /// The JSON object of a line ("\r" bytes dropped); an error naming `place` when it is not one.
    static func object<Bytes: Sequence<UInt8>>(_ bytes: Bytes, place: String) throws -> [String: Any] {
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(bytes.filter { $0 != 13 })) as? [String: Any] else {
                throw PartitionError("not a JSON object")
            }
            return o
        } catch {
            throw PartitionError("\(place): not a valid JSON object (\(error))")
        }
    }

    /// Refuses an empty, absolute or escaping path (`..` components, a leading `/` or `~`, a backslash).
    static func checkRelative(_ name: String, place: String) throws {
        guard !name.isEmpty else { throw PartitionError("\(place): file_name is empty") }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        if name.hasPrefix("/") || name.hasPrefix("~") || name.contains("\\") || name.contains("\0")
            || parts.contains("..") {
            throw PartitionError("\(place): file_name '\(name)' leaves the dataset folder; "
                + "it must be a relative path without '..'")
        }
    }

    /// A label as a string: integers without a fraction, strings as they are, null as nil.
    static func labelString(_ value: Any?) -> String? {
        switch value {
        case let s as String: return s
        case let i as Int: return String(i)
        case let d as Double where d == d.rounded() && abs(d) < 1e15: return String(Int(d))
        case let d as Double: return String(d)
        case let n as NSNumber:
            let d = n.doubleValue
            if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
            return n.stringValue
        default: return nil
        }
    }
}
