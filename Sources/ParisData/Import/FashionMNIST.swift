import Foundation
import ParisImage
import Torch

/// Imports Fashion-MNIST (Zalando, MIT) from Debian's `dataset-fashion-mnist` into a Hugging Face style image folder:
/// `train/00000/00000.png`, `test/00000/00000.png` (8-bit gray, 28×28, at most 1,000 files a folder: `BoundedFolders`)
/// and one `metadata.jsonl` at the root with lines
/// `{"file_name": "train/00000/00000.png", "text": "a photo of a t-shirt", "label": 0, "class_name": "T-shirt/top",
/// "split": "train"}`.
/// A marker file, written last and atomically, says the dataset is complete.
public enum FashionMNIST {
    public static let name = "fashion-mnist"
    public static let debianPackage = "dataset-fashion-mnist"
    public static let systemDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")
    /// The marker written last; its presence means the dataset is complete.
    public static let markerName = ".paris-dataset.json"
    /// Written first; a folder holding it and no marker is a partial import of ours, rebuilt on the next run.
    public static let inProgressName = ".paris-import-in-progress"

    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    /// The caption of each class: "a photo of a …".
    public static let captions = [
        "a photo of a t-shirt", "a photo of trousers", "a photo of a pullover", "a photo of a dress",
        "a photo of a coat", "a photo of a sandal", "a photo of a shirt", "a photo of a sneaker",
        "a photo of a bag", "a photo of an ankle boot",
    ]

    public enum Split: String, CaseIterable, Sendable {
        case train, test
        /// The IDX file prefix: `train` or `t10k`.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
        public var imagesFile: String { "\(filePrefix)-images-idx3-ubyte.gz" }
        public var labelsFile: String { "\(filePrefix)-labels-idx1-ubyte.gz" }
    }

    public struct Options: Sendable {
        /// The folder with the four `*-ubyte.gz` files.
        public var source: URL
        public var output: URL
        public var splits: [Split]
        /// At most this many images of each split.
        public var limit: Int?
        /// Replace a different dataset (or a complete one made with other options) at `output`.
        public var force: Bool
        /// Install `dataset-fashion-mnist` with apt-get when `source` is the system folder and files are missing.
        public var install: Bool
        /// A progress line every this many images.
        public var progressEvery: Int

        public init(source: URL = FashionMNIST.systemDirectory, output: URL, splits: [Split] = Split.allCases,
                    limit: Int? = nil, force: Bool = false, install: Bool = true, progressEvery: Int = 5000) {
            self.source = source
            self.output = output
            self.splits = splits
            self.limit = limit
            self.force = force
            self.install = install
            self.progressEvery = progressEvery
        }
    }

    public enum Outcome: Equatable, Sendable {
        /// Images written this run.
        case imported(images: Int)
        /// A complete dataset made with the same options was already there and was left alone.
        case alreadyComplete(images: Int)
    }

    /// Imports the dataset. `log` receives what is run and progress lines.
    @discardableResult
    public static func importDataset(_ options: Options, log: (String) -> Void = { _ in }) throws -> Outcome {
        let fm = FileManager.default
        let out = options.output
        if let limit = options.limit, limit <= 0 { throw DatasetImportError("--limit must be positive, not \(limit)") }
        guard !options.splits.isEmpty else { throw DatasetImportError("no split to import") }
        let wanted = marker(options, images: nil)
        try DatasetFolder.refuseOverlap(sources: [options.source], output: out)

        // What is at the output path already?
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw DatasetImportError("\(out.path) exists and is not a folder") }
            let markerURL = out.appendingPathComponent(markerName)
            if let data = fm.contents(atPath: markerURL.path),
               let existing = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                let same = existing["dataset"] as? String == name
                    && existing["splits"] as? [String] == wanted["splits"] as? [String]
                    && (existing["limit"] as? Int) == options.limit
                if same && !options.force {
                    let n = existing["images"] as? Int ?? 0
                    log("\(out.path): complete \(name) dataset already there (\(n) images); left alone")
                    return .alreadyComplete(images: n)
                }
                if !same && !options.force {
                    let what = existing["dataset"] as? String == name
                        ? "a \(name) dataset made with other options" : "a different dataset"
                    throw DatasetImportError("\(out.path) holds \(what) (\(describe(existing))); "
                        + "pass --force to replace it, or choose another --out")
                }
            } else {
                let entries = try fm.contentsOfDirectory(atPath: out.path)
                let ours = fm.fileExists(atPath: out.appendingPathComponent(inProgressName).path)
                if !entries.isEmpty && !ours && !options.force {
                    throw DatasetImportError("\(out.path) is not empty and is not a dataset made by this importer; "
                        + "pass --force to replace it, or choose another --out")
                }
                if ours { log("\(out.path): partial import found (no completion marker); rebuilding") }
            }
            // Remove what we would write (a foreign folder's other files are left; --force only overwrote ours).
            for entry in [markerName, "metadata.jsonl", MetadataStream.partialName, "LICENSE.md", "README.md", "train",
                          "test"] {
                let u = out.appendingPathComponent(entry)
                if fm.fileExists(atPath: u.path) { try fm.removeItem(at: u) }
            }
        }
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        try AtomicFile.write(Array("started\n".utf8), to: out.appendingPathComponent(inProgressName))

        try ensureSource(options, log: log)

        let metadata = try MetadataStream(folder: out)
        var total = 0
        for split in options.splits {
            let imgName = options.source.appendingPathComponent(split.imagesFile)
            let lblName = options.source.appendingPathComponent(split.labelsFile)
            let images = try IDX.parseImages(try Gzip.decompress(try read(imgName), name: imgName.path), name: imgName.path)
            let labels = try IDX.parseLabels(try Gzip.decompress(try read(lblName), name: lblName.path),
                                             name: lblName.path, classes: classNames.count)
            guard images.count == labels.count else {
                throw DatasetImportError("\(split.rawValue): \(imgName.lastPathComponent) holds \(images.count) images "
                    + "but \(lblName.lastPathComponent) holds \(labels.count) labels")
            }
            let n = min(images.count, options.limit ?? images.count)
            let dir = out.appendingPathComponent(split.rawValue)
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            log("\(split.rawValue): writing \(n) of \(images.count) images to \(dir.path)")
            let digits = max(5, String(max(n - 1, 0)).count)
            for i in 0..<n {
                let image = try Image(width: images.cols, height: images.rows, channels: 1, pixels: Array(images.image(i)))
                let stem = String(repeating: "0", count: max(0, digits - String(i).count)) + String(i)
                let file = BoundedFolders.standard.path(i, under: split.rawValue, name: "\(stem).png")
                if i % BoundedFolders.standard.filesPerFolder == 0 {
                    try fm.createDirectory(at: out.appendingPathComponent(file).deletingLastPathComponent(),
                                           withIntermediateDirectories: true)
                }
                try Data(try image.pngData()).write(to: out.appendingPathComponent(file))
                let label = Int(labels[i])
                try metadata.append("{\"file_name\": \(json(file)), \"text\": \(json(captions[label])), \"label\": \(label), "
                    + "\"class_name\": \(json(classNames[label])), \"split\": \(json(split.rawValue))}\n")
                if (i + 1) % max(1, options.progressEvery) == 0 || i + 1 == n {
                    log("\(split.rawValue): \(i + 1)/\(n) images (\((i + 1) * 100 / n)%)")
                }
            }
            total += n
        }
        try metadata.commit()
        try AtomicFile.write(Array(licenseText.utf8), to: out.appendingPathComponent("LICENSE.md"))
        try AtomicFile.write(Array(readme(options, images: total).utf8), to: out.appendingPathComponent("README.md"))
        let m = try JSONSerialization.data(withJSONObject: marker(options, images: total), options: [.sortedKeys])
        try AtomicFile.write([UInt8](m) + [10], to: out.appendingPathComponent(markerName))
        try? fm.removeItem(at: out.appendingPathComponent(inProgressName))
        log("\(out.path): \(total) images, metadata.jsonl, LICENSE.md, README.md")
        return .imported(images: total)
    }

    /// Whether all four IDX files are in `directory`.
    public static func filesPresent(in directory: URL = systemDirectory, splits: [Split] = Split.allCases) -> Bool {
        splits.allSatisfy {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0.imagesFile).path)
                && FileManager.default.fileExists(atPath: directory.appendingPathComponent($0.labelsFile).path)
        }
    }

    /// Installs Debian's `dataset-fashion-mnist` (see `DebianPackages.install`).
    public static func installPackage(log: (String) -> Void = { _ in }) throws {
        try DebianPackages.install([debianPackage], purpose: "it provides \(systemDirectory.path)", log: log)
    }

    static func ensureSource(_ options: Options, log: (String) -> Void) throws {
        if filesPresent(in: options.source, splits: options.splits) { return }
        let isSystem = options.source.standardizedFileURL.path == systemDirectory.path
        guard isSystem && options.install else {
            let missing = options.splits.flatMap { [$0.imagesFile, $0.labelsFile] }
                .filter { !FileManager.default.fileExists(atPath: options.source.appendingPathComponent($0).path) }
            throw DatasetImportError("\(options.source.path): missing \(missing.joined(separator: ", "))")
        }
        log("\(systemDirectory.path) is missing the IDX files; installing \(debianPackage)")
        try installPackage(log: log)
        guard filesPresent(in: options.source, splits: options.splits) else {
            throw DatasetImportError("\(debianPackage) installed but \(systemDirectory.path) still lacks the IDX files")
        }
    }

    static func read(_ url: URL) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: url.path) else { throw DatasetImportError("\(url.path): cannot read") }
        return [UInt8](d)
    }

    static func marker(_ options: Options, images: Int?) -> [String: Any] {
        var m: [String: Any] = ["dataset": name, "splits": options.splits.map(\.rawValue), "format": "imagefolder"]
        if let limit = options.limit { m["limit"] = limit }
        if let images { m["images"] = images }
        return m
    }

    static func describe(_ m: [String: Any]) -> String {
        let splits = (m["splits"] as? [String])?.joined(separator: "+") ?? "?"
        let limit = (m["limit"] as? Int).map { ", limit \($0)" } ?? ""
        return "\(m["dataset"] as? String ?? "?"), splits \(splits)\(limit)"
    }

    static func json(_ s: String) -> String {
        var r = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            default: if ch.value < 0x20 { r += String(format: "\\u%04x", ch.value) } else { r.unicodeScalars.append(ch) }
            }
        }
        return r + "\""
    }

    static func readme(_ options: Options, images: Int) -> String {
        let captionTable = zip(classNames, captions).enumerated()
            .map { "| \($0.offset) | \($0.element.0) | \($0.element.1) |" }.joined(separator: "\n")
        return """
            # Fashion-MNIST (image folder)

            Made by `paris data import fashion-mnist` from Debian's `\(debianPackage)` \
            (\(systemDirectory.path)); \(images) images, splits: \(options.splits.map(\.rawValue).joined(separator: ", "))\
            \(options.limit.map { ", at most \($0) per split" } ?? "").

            Source: Zalando Research, https://github.com/zalandoresearch/fashion-mnist \
            (Xiao, Rasul, Vollgraf, 2017, arXiv:1708.07747). Licence: MIT, see LICENSE.md.

            Layout: `train/FFFFF/NNNNN.png`, `test/FFFFF/NNNNN.png` (28×28 8-bit gray, NNNNN = position in the IDX \
            file, FFFFF = NNNNN / 1000, so no folder holds more than 1,000 images) and \
            `metadata.jsonl` with `file_name` (relative to this folder), `text`, `label`, `class_name`, `split`.

            | label | class | caption |
            |---|---|---|
            \(captionTable)

            """
    }

    static let licenseText = """
        Fashion-MNIST
        Source: https://github.com/zalandoresearch/fashion-mnist (via the Debian package dataset-fashion-mnist,
        packaged by Mo Zhou, Copyright 2019-2020, also under the Expat/MIT licence below)

        The MIT License (MIT) Copyright © 2017 Zalando SE, https://tech.zalando.com

        Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated \
        documentation files (the “Software”), to deal in the Software without restriction, including without limitation \
        the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and \
        to permit persons to whom the Software is furnished to do so, subject to the following conditions:

        The above copyright notice and this permission notice shall be included in all copies or substantial portions of \
        the Software.

        THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO \
        THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE \
        AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF \
        CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER \
        DEALINGS IN THE SOFTWARE.

        """
}
