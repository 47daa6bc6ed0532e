import Foundation
import ParisImage

/// Imports a user's image folder with a `metadata.jsonl` (Hugging Face imagefolder layout) into a checked dataset
/// folder: every line is validated (a `file_name` inside the folder, a `text` caption, no duplicates), every image is
/// decoded and written as PNG under `images/<folder>/<its relative path>.png` (line `i` in folder `i / 1000`,
/// `BoundedFolders`, so a flat source of a million files becomes a thousand folders), and extra string/number fields
/// (like `label`) are kept.
public enum ImageFolderImport {
    public static let name = "folder"

    /// The folder to read, where to write, and how strict to be.
    public struct Options: Sendable {
        public var source: URL
        public var output: URL
        /// Skip (and count) lines without a caption instead of failing.
        public var skipMissingCaptions: Bool
        /// Fail on an unreadable or corrupt image instead of skipping it.
        public var strict: Bool
        public var force: Bool
        public var progressEvery: Int

        public init(source: URL, output: URL, skipMissingCaptions: Bool = false, strict: Bool = false,
                    force: Bool = false, progressEvery: Int = 1000) {
            self.source = source
            self.output = output
            self.skipMissingCaptions = skipMissingCaptions
            self.strict = strict
            self.force = force
            self.progressEvery = progressEvery
        }
    }

    /// Validates the whole metadata.jsonl first (errors name the line), then converts the images. Both passes stream
    /// the source's metadata.jsonl, a batch of `batchSize` samples at a time, so memory stays flat in its length.
    @discardableResult
    public static func importDataset(_ options: Options, log: (String) -> Void = { _ in }) throws -> ImportSummary {
        let fm = FileManager.default
        let source = options.source.standardizedFileURL
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: source.path, isDirectory: &isDir), isDir.boolValue else {
            throw DatasetImportError("\(source.path): no such folder")
        }
        let metaURL = source.appendingPathComponent("metadata.jsonl")
        guard fm.fileExists(atPath: metaURL.path, isDirectory: &isDir), !isDir.boolValue,
              fm.isReadableFile(atPath: metaURL.path) else {
            throw DatasetImportError("\(metaURL.path): missing; an image folder needs a metadata.jsonl with "
                + "file_name and text on each line")
        }
        let metadata = LineFile(url: metaURL)
        let planned = try plan(metadata, source: source, options: options) { _ in }
        let settings: [String: Any] = ["source": source.path, "skip_missing_captions": options.skipMissingCaptions,
                                       "strict": options.strict]
        let state = try DatasetFolder.prepare(options.output, sources: [source], dataset: name, settings: settings,
                                              force: options.force,
                                              entries: ["images"], log: log)
        if case .complete(let n) = state { return ImportSummary(images: n, alreadyComplete: true) }
        log("\(source.path): \(planned.samples) images to convert")
        let writer = try SampleWriter(to: options.output, total: planned.samples, strict: options.strict,
                                      progressEvery: options.progressEvery)
        let again = try plan(metadata, source: source, options: options) { try writer.write($0, log: log) }
        guard again.samples == planned.samples else {
            throw DatasetImportError("\(metaURL.path) changed during the import (\(planned.samples) samples, then "
                + "\(again.samples)); run it again")
        }
        let skipped = planned.skipped + writer.skipped
        guard writer.images > 0 else { throw DatasetImportError("\(source.path): no usable image (\(SampleWriter.summary(skipped)))") }
        log(SampleWriter.summary(skipped))
        try DatasetFolder.finish(options.output, dataset: name, settings: settings, images: writer.images,
                                 metadata: writer.metadata, license: SampleWriter.license,
                                 readme: SampleWriter.readme(title: source.lastPathComponent,
                                                             command: "paris data import folder",
                                                             sources: [source.path], images: writer.images,
                                                             skipped: skipped))
        return ImportSummary(images: writer.images, skipped: skipped)
    }

    /// Parses and checks every line of `metadata` in one streamed pass, handing the samples to `batch` in order, at
    /// most `batchSize` at a time; returns how many there were and the lines skipped. A repeated file name is found
    /// through a set of hashes, confirmed by comparing with the earlier lines exactly (`LineFile.firstLine`); two lines whose
    /// outputs collide share an output folder (`BoundedFolders`), so the outputs are compared within a folder.
    static func plan(_ metadata: LineFile, source: URL, options: Options, batchSize: Int = 1000,
                     _ batch: ([CaptionedSample]) throws -> Void) throws -> (samples: Int, skipped: [String]) {
        let fm = FileManager.default
        let root = source.resolvingSymlinksInPath().path
        var samples: [CaptionedSample] = [], count = 0
        var skipped: [String] = []
        var seen = Set<Int>(), outputs: [String: Int] = [:], outputsFolder = ""
        try metadata.forEachLine { bytes, _, n in
            let where_ = "metadata.jsonl line \(n)"
            let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { return true }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw DatasetImportError("\(source.path)/\(where_): not a JSON object")
            }
            guard let file = obj["file_name"] as? String, !file.isEmpty else {
                throw DatasetImportError("\(source.path)/\(where_): no file_name")
            }
            let rel = try checkedPath(file, root: root, source: source, where_: where_)
            if !seen.insert(rel.hashValue).inserted, let first = try metadata.firstLine(before: n, where: { bytes in
                let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
                return (obj?["file_name"] as? String).map(normalised) == rel
            }) {
                throw DatasetImportError("\(source.path)/\(where_): duplicate file_name '\(file)' (also on line \(first))")
            }
            guard let text = obj["text"] as? String, !text.trimmingCharacters(in: .whitespaces).isEmpty else {
                if options.skipMissingCaptions { skipped.append("\(where_) (\(file)): no text caption"); return true }
                throw DatasetImportError("\(source.path)/\(where_) (\(file)): no text caption; every line needs "
                    + "\"text\" (or pass --skip-missing-captions to skip such lines)")
            }
            let folder = BoundedFolders.standard.folder(count)
            if folder != outputsFolder { (outputs, outputsFolder) = ([:], folder) }
            let output = BoundedFolders.standard.path(count, under: "images",
                                                      name: (rel as NSString).deletingPathExtension + ".png")
            if let other = outputs[output] {
                throw DatasetImportError("\(source.path)/\(where_): '\(file)' and the file on line \(other) both become "
                    + "\(output); rename one")
            }
            outputs[output] = n
            let url = source.appendingPathComponent(rel)
            samples.append(CaptionedSample(origin: "\(where_) (\(file))", output: output, text: text,
                                           extra: extraFields(line), load: {
                guard let d = fm.contents(atPath: url.path) else {
                    throw ImageError("\(url.path): \(fm.fileExists(atPath: url.path) ? "cannot read the file" : "no such file")")
                }
                return ([UInt8](d), url.path)
            }))
            count += 1
            if samples.count >= batchSize {
                try batch(samples)
                samples.removeAll(keepingCapacity: true)
            }
            return true
        }
        if !samples.isEmpty { try batch(samples) }
        return (count, skipped)
    }

    /// `file` without "." components: the relative path `checkedPath` returns for a path it accepts.
    static func normalised(_ file: String) -> String {
        file.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }

    /// The normalised relative path of `file`; absolute paths, "..", and symlinks leading outside `root` are errors.
    static func checkedPath(_ file: String, root: String, source: URL, where_: String) throws -> String {
        guard !file.hasPrefix("/") else {
            throw DatasetImportError("\(source.path)/\(where_): file_name '\(file)' is an absolute path (path traversal); "
                + "file names are relative to the folder")
        }
        guard !file.split(separator: "/").contains("..") else {
            throw DatasetImportError("\(source.path)/\(where_): file_name '\(file)' climbs out with '..' (path traversal)")
        }
        let rel = normalised(file)
        // A file that does not exist (not even as a dangling link) is reported later as a missing image.
        guard (try? FileManager.default.attributesOfItem(atPath: source.appendingPathComponent(rel).path)) != nil else {
            return rel
        }
        let resolved = source.appendingPathComponent(rel).resolvingSymlinksInPath().path
        guard resolved.hasPrefix(root + "/") else {
            throw DatasetImportError("\(source.path)/\(where_): file_name '\(file)' is a symlink leading outside the "
                + "folder (to \(resolved)); refused (path traversal)")
        }
        return rel
    }

    /// The fields other than file_name and text that are strings, integers, floats or booleans, sorted by key.
    static func extraFields(_ line: String) -> [(String, Any)] {
        guard let fields = try? JSONDecoder().decode([String: JSONScalar].self, from: Data(line.utf8)) else { return [] }
        return fields.keys.sorted().filter { $0 != "file_name" && $0 != "text" }.compactMap { key in
            fields[key]!.value.map { (key, $0) }
        }
    }
}

/// A JSON value kept as metadata: a string, boolean, integer or float (arrays, objects and null are not kept).
struct JSONScalar: Decodable {
    let value: Any?

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { value = b
        } else if let i = try? c.decode(Int.self) { value = i
        } else if let d = try? c.decode(Double.self) { value = d
        } else if let s = try? c.decode(String.self) { value = s
        } else { value = nil }
    }
}
