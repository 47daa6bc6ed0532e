import Foundation

/// Imports WebDataset shards (uncompressed `.tar` files) into a dataset folder. Members are grouped into samples by
/// key (the member path up to the first "." of its file name); a sample's image is its `.png`, `.jpg` or `.jpeg`
/// member, its caption the `.txt` member or the "text"/"caption" field of its `.json` member (a `.cls` member
/// becomes `label`). Images are written as PNG under `images/<shard>/<folder>/<key>.png`: sample `i` of a shard in
/// folder `i / 1000` (`BoundedFolders`), so a shard of 10,000 samples fills ten folders of 1,000.
public enum WebDatasetImport {
    public static let name = "webdataset"
    static let imageExtensions = ["png", "jpg", "jpeg"]

    /// The shards to read, where to write, and how strict to be.
    public struct Options: Sendable {
        /// Tar files, or folders whose `*.tar` files are all read (in name order).
        public var sources: [URL]
        public var output: URL
        public var skipMissingCaptions: Bool
        public var strict: Bool
        public var force: Bool
        public var progressEvery: Int

        public init(sources: [URL], output: URL, skipMissingCaptions: Bool = false, strict: Bool = false,
                    force: Bool = false, progressEvery: Int = 1000) {
            self.sources = sources
            self.output = output
            self.skipMissingCaptions = skipMissingCaptions
            self.strict = strict
            self.force = force
            self.progressEvery = progressEvery
        }
    }

    /// The shard files of `sources`: tar files as given, folders expanded to their `*.tar` files.
    public static func shards(_ sources: [URL]) throws -> [URL] {
        let fm = FileManager.default
        var out: [URL] = []
        for s in sources {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: s.path, isDirectory: &isDir) else { throw DatasetImportError("\(s.path): no such file or folder") }
            if isDir.boolValue {
                let tars = try fm.contentsOfDirectory(atPath: s.path).filter { $0.hasSuffix(".tar") }.sorted()
                guard !tars.isEmpty else { throw DatasetImportError("\(s.path): no .tar shards in this folder") }
                out += tars.map { s.appendingPathComponent($0) }
            } else {
                out.append(s)
            }
        }
        guard !out.isEmpty else { throw DatasetImportError("no WebDataset shard given (--source)") }
        return out
    }

    @discardableResult
    public static func importDataset(_ options: Options, log: (String) -> Void = { _ in }) throws -> ImportSummary {
        let shardURLs = try shards(options.sources)
        let stems = shardURLs.map { $0.deletingPathExtension().lastPathComponent }
        if let dup = Dictionary(grouping: stems, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw DatasetImportError("two shards are named \(dup).tar; their images would collide under images/\(dup)/")
        }
        // Every shard is planned (and checked) before anything is written, then planned again and written, one
        // shard at a time: memory holds one shard's samples, never the dataset's.
        var total = 0
        var skipped: [String] = []
        for (url, stem) in zip(shardURLs, stems) {
            let archive = try TarArchive(contentsOf: url)
            let (s, k) = try plan(archive, shard: stem, options: options)
            log("\(url.lastPathComponent): \(archive.members.count) members, \(s.count) samples")
            total += s.count
            skipped += k
        }
        let settings: [String: Any] = ["sources": shardURLs.map(\.path), "skip_missing_captions": options.skipMissingCaptions,
                                       "strict": options.strict]
        let state = try DatasetFolder.prepare(options.output, sources: options.sources, dataset: name,
                                              settings: settings, force: options.force,
                                              entries: ["images"], log: log)
        if case .complete(let n) = state { return ImportSummary(images: n, alreadyComplete: true) }
        let writer = try SampleWriter(to: options.output, total: total, strict: options.strict,
                                      progressEvery: options.progressEvery)
        for (url, stem) in zip(shardURLs, stems) {
            try writer.write(try plan(try TarArchive(contentsOf: url), shard: stem, options: options).0, log: log)
        }
        skipped += writer.skipped
        guard writer.images > 0 else { throw DatasetImportError("no usable sample in the shards (\(SampleWriter.summary(skipped)))") }
        log(SampleWriter.summary(skipped))
        try DatasetFolder.finish(options.output, dataset: name, settings: settings, images: writer.images,
                                 metadata: writer.metadata, license: SampleWriter.license,
                                 readme: SampleWriter.readme(title: "WebDataset import", command: "paris data import webdataset",
                                                             sources: shardURLs.map(\.path), images: writer.images,
                                                             skipped: skipped))
        return ImportSummary(images: writer.images, skipped: skipped)
    }

    /// Groups one shard's members into samples; samples without an image, or with an unsupported one, are skipped.
    static func plan(_ archive: TarArchive, shard: String, options: Options) throws -> ([CaptionedSample], [String]) {
        var groups: [String: [String: TarMember]] = [:]
        var order: [String] = []
        for m in archive.members where m.kind == .file {
            let slash = m.name.lastIndex(of: "/").map { m.name.index(after: $0) } ?? m.name.startIndex
            guard let dot = m.name[slash...].firstIndex(of: ".") else { continue }
            let key = String(m.name[..<dot]), ext = String(m.name[m.name.index(after: dot)...]).lowercased()
            if groups[key] == nil { order.append(key) }
            if groups[key]?[ext] != nil {
                throw DatasetImportError("\(archive.name): duplicate member '\(m.name)' (key \(key) has two .\(ext) files)")
            }
            groups[key, default: [:]][ext] = m
        }
        var samples: [CaptionedSample] = []
        var skipped: [String] = []
        for key in order {
            let g = groups[key]!
            let origin = "\(archive.name): key \(key)"
            guard let ext = imageExtensions.first(where: { g[$0] != nil }), let image = g[ext] else {
                let others = g.keys.sorted().joined(separator: ", ")
                let reason = "no .png/.jpg/.jpeg image (has \(others)); unsupported or missing image"
                if options.strict { throw DatasetImportError("\(origin): \(reason) (--strict)") }
                skipped.append("\(origin): \(reason)")
                continue
            }
            var extra: [(String, Any)] = [("shard", shard), ("key", key)]
            var text: String? = g["txt"].map { String(decoding: archive.contents(of: $0), as: UTF8.self) }
            if let json = g["json"] {
                let bytes = Data(archive.contents(of: json))
                guard let fields = try? JSONDecoder().decode([String: JSONScalar].self, from: bytes) else {
                    throw DatasetImportError("\(origin): \(json.name) is not a JSON object")
                }
                if text == nil { text = (fields["text"]?.value ?? fields["caption"]?.value) as? String }
                for k in fields.keys.sorted() where !["text", "caption", "shard", "key"].contains(k) {
                    if let v = fields[k]!.value { extra.append((k, v)) }
                }
            }
            if let cls = g["cls"], let label = Int(String(decoding: archive.contents(of: cls), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)), !extra.contains(where: { $0.0 == "label" }) {
                extra.append(("label", label))
            }
            guard let caption = text?.trimmingCharacters(in: .whitespacesAndNewlines), !caption.isEmpty else {
                if options.skipMissingCaptions { skipped.append("\(origin): no caption"); continue }
                throw DatasetImportError("\(origin): no caption (.txt, or .json with \"text\" or \"caption\"); "
                    + "pass --skip-missing-captions to skip such samples")
            }
            let memberName = "\(archive.name):\(image.name)"
            let output = BoundedFolders.standard.path(samples.count, under: "images/\(shard)", name: "\(key).png")
            samples.append(CaptionedSample(origin: origin, output: output, text: caption,
                                           extra: extra, load: { (archive.contents(of: image), memberName) }))
        }
        return (samples, skipped)
    }
}
