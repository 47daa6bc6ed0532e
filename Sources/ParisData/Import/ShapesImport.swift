import Foundation
import ParisImage
import Torch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes the synthetic shapes dataset (`SyntheticShapes`) as an image folder, for the scale benchmark (a million
/// images on a 2-core machine): `images/<folder>/<index>.png` (`BoundedFolders`) and `metadata.jsonl` lines
/// `{"file_name", "text", "label": <shape>, "shape", "size", "colour", "background"}`. It streams: images are drawn,
/// encoded and written a block at a time by `workers` threads, and metadata.jsonl goes out line by line
/// (`MetadataStream`), so memory stays flat whatever `count` is. It follows the `DatasetFolder` safe-rerun protocol:
/// a complete folder with the same settings is left alone; a killed import (no completion marker) made with the
/// same settings is resumed on the next run: every image already written is kept as it is (images are written to a
/// temporary name and renamed, so one that exists is whole; `isCompletePNG` checks it ends in PNG's IEND chunk all
/// the same, in case a power cut left it empty), the others are drawn (the same bytes a fresh import writes, since
/// every image is a pure function of (seed, index)), and metadata.jsonl is written anew; one made with other settings
/// is deleted and rebuilt.
public enum ShapesImport {
    public static let name = "shapes"
    /// The image sides accepted, in pixels.
    public static let sizes = 8...256

    /// What to write and where; see `paris data import shapes`.
    public struct Options: Sendable {
        public var output: URL
        public var count: Int
        /// The side of the square images in pixels.
        public var size: Int
        public var seed: UInt64
        public var force: Bool
        /// The most images in one folder (tests make it small).
        public var filesPerFolder: Int
        /// Threads that draw and write images.
        public var workers: Int
        /// A progress line every this many images (default: every 10 %).
        public var progressEvery: Int?

        public init(output: URL, count: Int, size: Int = 32, seed: UInt64 = 0, force: Bool = false,
                    filesPerFolder: Int = BoundedFolders.defaultFilesPerFolder,
                    workers: Int = ProcessInfo.processInfo.activeProcessorCount, progressEvery: Int? = nil) {
            self.output = output
            self.count = count
            self.size = size
            self.seed = seed
            self.force = force
            self.filesPerFolder = filesPerFolder
            self.workers = workers
            self.progressEvery = progressEvery
        }
    }

    /// Writes the dataset; `log` receives progress lines (with the rate) and the summary.
    @discardableResult
    public static func importDataset(_ options: Options, log: (String) -> Void = { _ in }) throws -> ImportSummary {
        guard options.count > 0 else { throw DatasetImportError("--count must be positive, not \(options.count)") }
        guard sizes.contains(options.size) else {
            throw DatasetImportError("--size must be between \(sizes.lowerBound) and \(sizes.upperBound) pixels, "
                + "not \(options.size)")
        }
        guard options.filesPerFolder > 0 else {
            throw DatasetImportError("files per folder must be positive, not \(options.filesPerFolder)")
        }
        let out = options.output
        let settings = self.settings(options)
        let state = try DatasetFolder.prepare(out, sources: [], dataset: name, settings: settings, force: options.force,
                                              entries: ["images"], resumable: true, log: log)
        if case .complete(let n) = state { return ImportSummary(images: n, alreadyComplete: true) }
        let resuming = state == .resuming

        let layout = BoundedFolders(filesPerFolder: options.filesPerFolder)
        let metadata = try MetadataStream(folder: out)
        let every = max(1, options.progressEvery ?? (options.count + 9) / 10)
        // Blocks of at most 1,024 images (and no more than a progress step, so small imports log every 10 % too).
        let block = min(1024, every), workers = max(1, options.workers)
        var perShape: [String: Int] = [:], kept = 0
        let start = Date()
        log("drawing \(options.count) shapes at \(options.size)×\(options.size) (seed \(options.seed)) into "
            + "\(out.path) with \(workers) thread(s)")
        var next = every
        for first in stride(from: 0, to: options.count, by: block) {
            let n = min(block, options.count - first)
            for folder in Set((first..<(first + n)).map(layout.folder)).sorted() {
                try FileManager.default.createDirectory(at: out.appendingPathComponent("images/\(folder)"),
                                                        withIntermediateDirectories: true)
            }
            let lines = try drawBlock(first: first, count: n, options: options, layout: layout, workers: workers,
                                      keepWritten: resuming)
            for (line, shape, wasThere) in lines {
                try metadata.append(line)
                perShape[shape, default: 0] += 1
                if wasThere { kept += 1 }
            }
            let done = first + n
            if done >= next || done == options.count {
                let seconds = Date().timeIntervalSince(start)
                log("\(done)/\(options.count) images (\(done * 100 / options.count)%), "
                    + String(format: "%.1f s, %.0f images/s", seconds, Double(done) / max(seconds, 1e-9)))
                while next <= done { next += every }
            }
        }
        if resuming { log("resumed: \(kept) of \(options.count) images were already written and kept") }
        // The images were written without a per-file fsync; one sync makes them durable before the marker says so.
        sync()
        try DatasetFolder.finish(out, dataset: name, settings: settings, images: options.count, metadata: metadata,
                                 license: ShapesDatasetCard.license,
                                 readme: ShapesDatasetCard.readme(options, perShape: perShape))
        log("\(out.path): \(options.count) images, metadata.jsonl, LICENSE.md, README.md")
        return ImportSummary(images: options.count)
    }

    /// The settings recorded in the markers: a rerun with the same ones leaves a complete folder alone and resumes a
    /// partial one. (The seed as a string: JSON numbers do not hold every UInt64.)
    public static func settings(_ options: Options) -> [String: Any] {
        ["count": options.count, "size": options.size, "seed": String(options.seed),
         "files_per_folder": options.filesPerFolder]
    }

    /// Draws, encodes and writes images `first..<first + count` on `workers` threads; returns their metadata lines,
    /// shapes and whether each was already there, in index order. With `keepWritten`, an image whose file is
    /// already complete is left as it is (not drawn, not written).
    static func drawBlock(first: Int, count: Int, options: Options, layout: BoundedFolders, workers: Int,
                          keepWritten: Bool = false) throws -> [(String, String, Bool)] {
        let results = BlockResults(count: count, workers: workers)
        let out = options.output
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            do {
                for k in stride(from: w, to: count, by: workers) {
                    let index = first + k
                    let spec = SyntheticShapes.spec(seed: options.seed, index: index, side: options.size)
                    let file = layout.path(index, under: "images", name: "\(index).png")
                    let path = out.appendingPathComponent(file).path
                    let wasThere = keepWritten && isCompletePNG(path)
                    if !wasThere { try writeFile(try SyntheticShapes.render(spec, side: options.size).pngData(), to: path) }
                    results.lines[k] = (DatasetFolder.metadataLine(file: file, text: spec.caption, extra: [
                        ("label", spec.shape.rawValue), ("shape", spec.shape.rawValue), ("size", spec.size.rawValue),
                        ("colour", spec.colour.name), ("background", spec.background.name),
                    ]), spec.shape.rawValue, wasThere)
                }
            } catch { results.errors[w] = error }
        }
        if let error = results.errors.compactMap({ $0 }).first { throw error }
        return Array(results.lines)
    }

    /// One slot per image of a block and one per worker: each thread writes only its own slots.
    final class BlockResults: @unchecked Sendable {
        let lines: UnsafeMutableBufferPointer<(String, String, Bool)>
        let errors: UnsafeMutableBufferPointer<Error?>

        init(count: Int, workers: Int) {
            lines = .allocate(capacity: count)
            lines.initialize(repeating: ("", "", false))
            errors = .allocate(capacity: workers)
            errors.initialize(repeating: nil)
        }

        deinit {
            lines.deinitialize().deallocate()
            errors.deinitialize().deallocate()
        }
    }

    /// Writes `bytes` to `path` through a temporary file beside it (`.<name>.partial`, renamed into place), without
    /// fsync: a file under its final name is always whole, so a resumed import can keep it. The temporary name is
    /// the image's own, so one a kill left behind is overwritten when that image is drawn again. An error (a full
    /// disk: "No space left on device") names `path` and leaves nothing under it.
    static func writeFile(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DatasetImportError("\(path): cannot create: \(String(cString: strerror(errno)))") }
        do {
            try bytes.withUnsafeBytes { try AtomicFile.writeAll($0, to: fd, path: path) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard close(fd) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw DatasetImportError("\(path): write failed: \(why)")
        }
        guard rename(temporary, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw DatasetImportError("\(path): cannot rename the temporary file into place: \(why)")
        }
    }

    /// Whether `path` holds a whole PNG: the signature first and the IEND chunk last.
    static func isCompletePNG(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var s = stat()
        guard fstat(fd, &s) == 0, s.st_size >= 8 + 12 else { return false }
        var head = [UInt8](repeating: 0, count: 8), tail = [UInt8](repeating: 0, count: 12)
        guard pread(fd, &head, 8, 0) == 8, pread(fd, &tail, 12, off_t(s.st_size) - 12) == 12 else { return false }
        return head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            && tail == [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]
    }
}

/// The README.md and LICENSE.md of a shapes dataset.
enum ShapesDatasetCard {
    static func readme(_ options: ShapesImport.Options, perShape: [String: Int]) -> String {
        let colours = SyntheticShapes.palette.map { "\($0.name) (\($0.rgb.r), \($0.rgb.g), \($0.rgb.b))" }
        return """
            # Synthetic shapes (image folder)

            Made by `paris data import shapes --count \(options.count) --size \(options.size) --seed \(options.seed)`: \
            \(options.count) procedurally drawn \(options.size)×\(options.size) RGB images, each a pure function of \
            (seed, index), so the same command gives the same bytes.

            Each image shows one shape (\(SyntheticShapes.Shape.allCases.map(\.rawValue).joined(separator: ", "))), \
            small or large, in one palette colour on a background of another, its centre jittered. Caption: \
            "a <size> <colour> <shape> on a <background> background" (\(SyntheticShapes.distinctCaptions) distinct \
            captions); `label` is the shape. Palette: \(colours.joined(separator: ", ")).

            Layout: `images/FFFFF/N.png` (image N in folder N / \(options.filesPerFolder), five digits, so no folder \
            holds more than \(options.filesPerFolder) files) and `metadata.jsonl` with `file_name`, `text`, `label`, \
            `shape`, `size`, `colour`, `background`.

            \(DatasetFolder.table("shape", perShape))

            """
    }

    static let license = """
        # Licence

        These images and captions were generated by `paris data import shapes` and contain no third-party material.
        They are dedicated to the public domain (CC0 1.0, https://creativecommons.org/publicdomain/zero/1.0/).

        """
}
