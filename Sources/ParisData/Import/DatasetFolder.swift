import Foundation
import Torch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The safe-rerun protocol of an imported image folder, shared by the importers (the same one FashionMNIST uses):
/// an in-progress marker written first, `metadata.jsonl`, `LICENSE.md` and `README.md`, then the completion marker
/// `.paris-dataset.json` written last and atomically. A complete folder made with the same settings is left alone, a
/// partial one of ours is rebuilt, and anything else is replaced only with `force`. An output that overlaps a
/// source (the same folder, one inside the other) is refused before anything is touched, `force` or not.
public enum DatasetFolder {
    public static let markerName = ".paris-dataset.json"
    public static let inProgressName = ".paris-import-in-progress"

    /// What `prepare` found.
    public enum State: Equatable, Sendable {
        /// The folder is ready to be written.
        case ready
        /// A complete dataset with the same settings is there (its image count); leave it alone.
        case complete(images: Int)
        /// A partial import with the same settings (`resumable` only): `entries` were kept, for the importer to keep
        /// what it finds complete there and write the rest.
        case resuming
    }

    /// The in-progress marker of a resumable import: the dataset and its settings, so a rerun can tell whether a
    /// partial folder was being written with the same settings.
    public static func inProgressMarker(dataset: String, settings: [String: Any]) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: ["dataset": dataset, "settings": settings],
                                                options: [.sortedKeys])) ?? Data()
        return [UInt8](data) + [10]
    }

    /// Readies `out` for writing the dataset `dataset` made with `settings` (JSON values). `entries` are the names the
    /// importer writes at the top of the folder; those are removed before a rebuild. `sources` are the files and
    /// folders the import reads: `out` must not overlap any of them (`refuseOverlap`). With `resumable`, the
    /// in-progress marker records the settings, and a partial import made with the same ones keeps its `entries`
    /// (`.resuming`): for an importer that can tell a complete file of its own from a partial one (shapes), so that a
    /// killed import of a million images is neither deleted file by file (which takes longer than writing them) nor
    /// written again.
    public static func prepare(_ out: URL, sources: [URL], dataset: String, settings: [String: Any], force: Bool,
                               entries: [String], resumable: Bool = false, log: (String) -> Void) throws -> State {
        let progressMarker = resumable ? inProgressMarker(dataset: dataset, settings: settings) : Array("started\n".utf8)
        var resuming = false
        try refuseOverlap(sources: sources, output: out)
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw DatasetImportError("\(out.path) exists and is not a folder") }
            let markerURL = out.appendingPathComponent(markerName)
            if let data = fm.contents(atPath: markerURL.path),
               let existing = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                let sameDataset = existing["dataset"] as? String == dataset
                let same = sameDataset && canonical(existing["settings"] ?? [:]) == canonical(settings)
                if same && !force {
                    let n = existing["images"] as? Int ?? 0
                    log("\(out.path): complete \(dataset) dataset already there (\(n) images); left alone")
                    return .complete(images: n)
                }
                if !same && !force {
                    let what = sameDataset ? "a \(dataset) dataset made with other options"
                        : "a different dataset (\(existing["dataset"] as? String ?? "?"))"
                    throw DatasetImportError("\(out.path) holds \(what); pass --force to replace it, or choose another --out")
                }
            } else {
                let present = try fm.contentsOfDirectory(atPath: out.path)
                let ours = fm.fileExists(atPath: out.appendingPathComponent(inProgressName).path)
                if !present.isEmpty && !ours && !force {
                    throw DatasetImportError("\(out.path) is not empty and is not a dataset made by this importer; "
                        + "pass --force to replace it, or choose another --out")
                }
                let inProgress = fm.contents(atPath: out.appendingPathComponent(inProgressName).path)
                if ours && resumable && !force && inProgress.map([UInt8].init) == progressMarker {
                    resuming = true
                    log("\(out.path): partial import with the same settings found (no completion marker); resuming, "
                        + "keeping the files already written")
                } else if ours {
                    log("\(out.path): partial import found (no completion marker); rebuilding")
                }
            }
            for entry in [markerName, "metadata.jsonl", MetadataStream.partialName, "LICENSE.md", "README.md"]
                + (resuming ? [] : entries) {
                let u = out.appendingPathComponent(entry)
                if fm.fileExists(atPath: u.path) { try fm.removeItem(at: u) }
            }
        }
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        try AtomicFile.write(progressMarker, to: out.appendingPathComponent(inProgressName))
        return resuming ? .resuming : .ready
    }

    /// Throws unless `output` and every source are apart: not the same folder, the output not inside a source, no
    /// source inside the output. Writing (and, on a rebuild, deleting) the output would otherwise destroy the
    /// source, so this holds with `force` too, and the error does not offer --force. Paths are compared as real
    /// paths (`realPath`: links, `..`, `.` and trailing slashes resolved), and the folders' identities (device and
    /// inode) are compared as well, which also catches a bind mount or a hard-linked path the strings miss.
    public static func refuseOverlap(sources: [URL], output: URL) throws {
        let out = realPath(output)
        for source in sources {
            let src = realPath(source)
            let how: String
            if out == src || sameFile(out, src) {
                how = "they are the same folder (\(src))"
            } else if isInside(out, src) {
                how = "the output \(out) is inside the source \(src)"
            } else if isInside(src, out) {
                how = "the source \(src) is inside the output \(out)"
            } else {
                continue
            }
            throw DatasetImportError("--source \(source.path) and --out \(output.path) overlap: \(how). Importing "
                + "writes into the output and clears it on a rebuild, which would destroy the source; choose an "
                + "--out outside the source (for example a sibling folder)")
        }
    }

    /// The absolute path of `url` with every link, `.`, `..` and repeated or trailing slash resolved, as the
    /// kernel would. For a path that does not exist yet, its deepest existing ancestor is resolved by realpath(3)
    /// and the rest is appended, with `.` and `..` taken lexically: exact there, since nothing in the rest exists
    /// (so nothing in it is a link).
    public static func realPath(_ url: URL) -> String {
        var path = url.path
        if !path.hasPrefix("/") { path = FileManager.default.currentDirectoryPath + "/" + path }
        if let r = realpath(path, nil) {
            defer { free(r) }
            return String(cString: r)
        }
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var rest: [String] = []
        var base = "/"
        while let last = parts.popLast() {
            rest.insert(last, at: 0)
            let prefix = "/" + parts.joined(separator: "/")
            if let r = realpath(prefix, nil) {
                base = String(cString: r)
                free(r)
                break
            }
        }
        var out = base.split(separator: "/").map(String.init)
        for part in rest {
            switch part {
            case ".": continue
            case "..": _ = out.popLast()
            default: out.append(part)
            }
        }
        return "/" + out.joined(separator: "/")
    }

    /// `inner` is strictly inside `outer`: by path, or because one of `inner`'s existing ancestors is `outer`'s
    /// very folder (same device and inode).
    static func isInside(_ inner: String, _ outer: String) -> Bool {
        if outer == "/" ? inner != "/" : inner.hasPrefix(outer + "/") { return true }
        var ancestor = inner
        while ancestor != "/" {
            ancestor = (ancestor as NSString).deletingLastPathComponent
            if ancestor.isEmpty { break }
            if sameFile(ancestor, outer) { return true }
        }
        return false
    }

    /// Both paths exist and are the same file or folder (device and inode).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Commits `metadata` (the streamed metadata.jsonl, renamed into place), writes LICENSE.md and README.md and, last,
    /// the completion marker; removes the in-progress marker.
    public static func finish(_ out: URL, dataset: String, settings: [String: Any], images: Int,
                              metadata: MetadataStream, license: String, readme: String) throws {
        try metadata.commit()
        try AtomicFile.write(Array(license.utf8), to: out.appendingPathComponent("LICENSE.md"))
        try AtomicFile.write(Array(readme.utf8), to: out.appendingPathComponent("README.md"))
        let marker: [String: Any] = ["dataset": dataset, "settings": settings, "images": images, "format": "imagefolder"]
        let m = try JSONSerialization.data(withJSONObject: marker, options: [.sortedKeys])
        try AtomicFile.write([UInt8](m) + [10], to: out.appendingPathComponent(markerName))
        try? FileManager.default.removeItem(at: out.appendingPathComponent(inProgressName))
    }

    static func canonical(_ value: Any) -> Data? {
        try? JSONSerialization.data(withJSONObject: ["v": value], options: [.sortedKeys])
    }

    /// `s` as a JSON string literal.
    public static func json(_ s: String) -> String { FashionMNIST.json(s) }

    /// One metadata.jsonl line: `file_name` and `text` first, then `extra` in key order (strings, ints, doubles, bools).
    public static func metadataLine(file: String, text: String, extra: [(String, Any)]) -> String {
        var parts = ["\"file_name\": \(json(file))", "\"text\": \(json(text))"]
        for (k, v) in extra {
            let value: String
            switch v {
            case let s as String: value = json(s)
            case let b as Bool: value = b ? "true" : "false"
            case let i as Int: value = String(i)
            case let d as Double: value = String(d)
            default: value = json("\(v)")
            }
            parts.append("\(json(k)): \(value)")
        }
        return "{" + parts.joined(separator: ", ") + "}\n"
    }

    /// A Markdown table of `counts`, largest first.
    static func table(_ header: String, _ counts: [String: Int]) -> String {
        "| \(header) | images |\n|---|---|\n" + counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
            .map { "| \($0.key) | \($0.value) |" }.joined(separator: "\n")
    }
}

/// What an import did: images written (or found), and every input left out with its reason.
public struct ImportSummary: Equatable, Sendable {
    public var images: Int
    /// One line per skipped input: "<what>: <reason>".
    public var skipped: [String]
    /// A complete dataset with the same settings was already there and was left alone.
    public var alreadyComplete: Bool

    public init(images: Int, skipped: [String] = [], alreadyComplete: Bool = false) {
        self.images = images
        self.skipped = skipped
        self.alreadyComplete = alreadyComplete
    }
}
