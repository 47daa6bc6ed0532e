import Foundation
import ParisImage

/// One image–caption pair found by an importer of user data, before its image is read.
struct CaptionedSample {
    /// Where it came from, for messages: "metadata.jsonl line 3 (cats/a.jpg)" or "shard-0.tar: key 000001".
    let origin: String
    /// The output path inside the dataset folder, ending in .png.
    let output: String
    let text: String
    /// Extra metadata kept in metadata.jsonl (strings, integers, floats, booleans).
    let extra: [(String, Any)]
    /// The encoded image bytes and the name to use in decode errors.
    let load: () throws -> (bytes: [UInt8], name: String)
}

/// Decodes and writes samples as PNGs into a dataset folder, a batch at a time, their lines going out to
/// metadata.jsonl as a stream (`MetadataStream`), so an import holds one batch, never the dataset: an unreadable,
/// corrupt, truncated or unsupported image is a counted skip with its reason, or with `strict` an error.
final class SampleWriter {
    let out: URL
    let strict: Bool
    let progressEvery: Int
    /// The samples the import will hand over in all (for the progress lines).
    let total: Int
    /// The metadata lines written so far; `DatasetFolder.finish` commits it.
    let metadata: MetadataStream
    /// Images written, samples handed over, and the skipped ones with their reasons.
    private(set) var images = 0, done = 0
    private(set) var skipped: [String] = []

    init(to out: URL, total: Int, strict: Bool, progressEvery: Int) throws {
        self.out = out
        self.total = total
        self.strict = strict
        self.progressEvery = progressEvery
        metadata = try MetadataStream(folder: out)
    }

    /// Writes the next samples.
    func write(_ samples: [CaptionedSample], log: (String) -> Void) throws {
        let fm = FileManager.default
        for s in samples {
            do {
                let (bytes, name) = try s.load()
                let image = try Image(decoding: bytes, name: name)
                let url = out.appendingPathComponent(s.output)
                try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try image.writePNG(to: url)
                try metadata.append(DatasetFolder.metadataLine(file: s.output, text: s.text, extra: s.extra))
                images += 1
            } catch let error as ImageError {
                if strict { throw DatasetImportError("\(s.origin): \(error.message) (--strict)") }
                skipped.append("\(s.origin): \(error.message)")
            } catch let error as DatasetImportError {
                if strict { throw DatasetImportError("\(error.message) (--strict)") }
                skipped.append("\(s.origin): \(error.message)")
            }
            done += 1
            if done % max(1, progressEvery) == 0 || done == total {
                log("\(done)/\(total) images (\(done * 100 / max(total, 1))%), \(skipped.count) skipped")
            }
        }
    }

    /// "skipped N: first reasons".
    static func summary(_ skipped: [String]) -> String {
        guard !skipped.isEmpty else { return "skipped 0 images" }
        return "skipped \(skipped.count): " + skipped.prefix(5).joined(separator: "; ") + (skipped.count > 5 ? "; … (all in README.md)" : "")
    }

    /// A README for a user dataset import.
    static func readme(title: String, command: String, sources: [String], images: Int, skipped: [String]) -> String {
        """
        # \(title) (image folder)

        Made by `\(command)` from:
        \(sources.map { "- `\($0)`" }.joined(separator: "\n"))

        \(images) images as PNG under `images/`, in subfolders of at most 1,000 files, and `metadata.jsonl` with \
        `file_name` (the relative path), `text` and the source's \
        other string/number fields.

        ## Skipped (\(skipped.count))

        \(skipped.isEmpty ? "None." : skipped.map { "- \($0)" }.joined(separator: "\n"))

        """
    }

    static let license = """
        # Licence

        These images and captions were imported from the user's own data; their licence is that of the source.
        Record it here.

        """
}
