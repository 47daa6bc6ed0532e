import Foundation

/// An image folder dataset as the importers write it (the Hugging Face "imagefolder" layout): image files under a
/// root and one `metadata.jsonl` there with a JSON object per line:
/// `{"file_name": "train/00000.png", "text": "a photo of a t-shirt", "label": 0, "split": "train", ...}`.
///
/// `file_name` and `text` are required; `label` (a number or string) is optional and used for purity/NMI and the
/// label split; `split` is optional. Reading checks every line: malformed JSON, a missing key, a `file_name` that
/// is absolute or leaves the folder (`..`), and a repeated `file_name` are errors naming `metadata.jsonl:<line>`.
/// Whether the image files exist is checked when they are decoded (`Partitioner`).
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
    public let entries: [Entry]

    /// Reads `<root>/metadata.jsonl`. `split`: keep only lines whose "split" equals it (lines without one are kept);
    /// `limit`: at most this many entries, the first ones in file order.
    public static func read(_ root: URL, split: String? = nil, limit: Int? = nil) throws -> ImageFolder {
        let url = root.appendingPathComponent(metadataName)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw PartitionError("\(root.path): no such dataset folder")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PartitionError("\(url.path): missing; a dataset folder needs a metadata.jsonl "
                + "(make one with `paris data import`)")
        }
        var entries: [Entry] = []
        var seen: [String: Int] = [:], interned: [String: String] = [:]
        var lineNumber = 0
        for raw in data.split(separator: 10, omittingEmptySubsequences: false) {
            lineNumber += 1
            let trimmed = raw.filter { $0 != 13 }
            if trimmed.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
            let place = "\(url.path):\(lineNumber)"
            let object: [String: Any]
            do {
                guard let o = try JSONSerialization.jsonObject(with: Data(trimmed)) as? [String: Any] else {
                    throw PartitionError("not a JSON object")
                }
                object = o
            } catch {
                throw PartitionError("\(place): not a valid JSON object (\(error))")
            }
            guard let fileName = object["file_name"] as? String else {
                throw PartitionError("\(place): no \"file_name\" string")
            }
            guard let text = object["text"] as? String else { throw PartitionError("\(place): no \"text\" string") }
            try checkRelative(fileName, place: place)
            if let first = seen[fileName] {
                throw PartitionError("\(place): file_name '\(fileName)' repeats line \(first)")
            }
            seen[fileName] = lineNumber
            if let wanted = split, let s = object["split"] as? String, s != wanted { continue }
            if let limit, entries.count >= limit { continue }
            // One copy of each distinct caption and label (datasets repeat them: a million images may hold a few
            // hundred captions), so the entries' memory is mostly their file names.
            let caption = interned[text] ?? { interned[text] = text; return text }()
            let label = labelString(object["label"]).map { l in interned[l] ?? { interned[l] = l; return l }() }
            entries.append(Entry(fileName: fileName, text: caption, label: label, line: lineNumber))
        }
        return ImageFolder(root: root, entries: entries)
    }

    /// The file of an entry.
    public func url(of entry: Entry) -> URL { root.appendingPathComponent(entry.fileName) }

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
