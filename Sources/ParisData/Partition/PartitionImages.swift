import Foundation
import ParisImage
import Torch

/// Decodes an image folder's images chunk by chunk into the partition's work folder, so memory holds one chunk,
/// never the dataset. Chunk i covers metadata entries [i·C, (i + 1)·C), with C = `chunkEntries(config)` (the
/// config's `chunk_size` rounded up to a multiple of `batch_size`, so the feature extractor sees the same batches
/// whatever the chunk size), and holds, for its n images that could be read:
///
/// - `images` [n, C, S, S] uint8: RGB over white (or ITU-R 601 gray), centre-cropped and resized to the training size;
/// - `entries` [n] int64: the images' rows in the folder (`ImageFolder`);
/// - `features` [n, F] float32: image features of the file-size RGB images, when a feature extractor is given;
/// - metadata `skipped`: a JSON list of "<file> (metadata.jsonl:<line>): <why>" for the images it skipped.
///
/// A chunk already written (by a run that was killed later) is kept, not decoded again.
enum PartitionImages {
    /// What the chunks hold, once all are written.
    struct Decoded {
        let chunks: OpenedChunks
        /// The folder row of each row (the images that could be read, in metadata order).
        let kept: [Int]
        /// Every skipped image, in metadata order.
        let skipped: [String]
    }

    static func chunkEntries(_ config: PartitionConfig) -> Int {
        let b = config.batchSize
        return (max(config.chunkSize, 1) + b - 1) / b * b
    }

    static func decode(_ folder: ImageFolder, config: PartitionConfig, features: PartitionEncoders.ImageFeatures?,
                       into store: RowChunks, log: (String) -> Void) throws -> Decoded {
        let total = folder.count, size = chunkEntries(config)
        let count = (total + size - 1) / size
        let missing = store.missing(of: count)
        if missing.count < count { log("images: \(count - missing.count) of \(count) chunks already decoded; resuming") }
        var nextLog = 0
        for i in missing {
            let range = (i * size)..<min(total, (i + 1) * size)
            try decodeChunk(i, range: range, folder: folder, config: config, features: features, into: store)
            if range.upperBound >= nextLog || range.upperBound == total {
                log("images\(features != nil ? " + features" : ""): \(range.upperBound)/\(total) "
                    + "(chunk \(i + 1) of \(count))")
                nextLog = range.upperBound + max(size, total / 10)
            }
        }
        let opened = try store.opened(count: count, rowsOf: "entries")
        var kept: [Int] = [], skipped: [String] = []
        kept.reserveCapacity(opened.rows)
        for i in 0..<count {
            let file = try opened.load(i)
            kept += try file.tensor("entries").toArray(as: Int64.self).map { Int($0) }
            if let text = file.metadata["skipped"], let list = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) {
                skipped += list
            }
        }
        if !skipped.isEmpty { log("skipped \(skipped.count) of \(total) images; first: \(skipped[0])") }
        return Decoded(chunks: opened, kept: kept, skipped: skipped)
    }

    /// Decodes the entries `range` (batch by batch; their metadata lines read again) and writes them as chunk i.
    static func decodeChunk(_ i: Int, range: Range<Int>, folder: ImageFolder, config: PartitionConfig,
                            features: PartitionEncoders.ImageFeatures?, into store: RowChunks) throws {
        let s = config.imageSize, c = config.channels
        let metadata = try folder.entries(range)
        var pixels: [UInt8] = []  // n × S × S × C, HWC per image
        pixels.reserveCapacity(range.count * s * s * c)
        var entries: [Int64] = [], skipped: [String] = [], featureBlocks: [Tensor] = []
        var start = range.lowerBound
        while start < range.upperBound {
            let batch = start..<min(range.upperBound, start + config.batchSize)
            var originals: [Image] = []
            for index in batch {
                let entry = metadata[index - range.lowerBound]
                let image: Image
                do {
                    image = try Image(contentsOf: folder.url(of: entry), alpha: .composite(over: .white))
                } catch {
                    let why = "\(entry.fileName) (\(ImageFolder.metadataName):\(entry.line)): \(error)"
                    guard config.skipBadImages else { throw PartitionError(why) }
                    skipped.append(why)
                    continue
                }
                pixels.append(contentsOf: try ContactSheet.prepare(image, size: s, channels: c).pixels)
                entries.append(Int64(index))
                if features != nil { originals.append(image.rgb(background: .white)) }
            }
            if let features, !originals.isEmpty {
                let f = try features.embed(originals)
                guard f.rank == 2, f.size(0) == originals.count else {
                    throw PartitionError("image feature extractor \(features.name) returned \(f.shape) for "
                        + "\(originals.count) images; expected [B, F]")
                }
                featureBlocks.append(try f.to(device: .cpu, dtype: .float32))
            }
            start = batch.upperBound
        }
        let n = entries.count
        var tensors: [String: Tensor] = [
            "images": try pixels.withUnsafeBytes { raw in
                try Tensor(bytes: raw, shape: [n, s, s, c], dtype: .uint8)
            }.permute([0, 3, 1, 2]).contiguous(),  // [n, C, S, S]
            "entries": try Tensor(entries),  // [n]
        ]
        if features != nil {
            tensors["features"] = featureBlocks.isEmpty ? try Tensor.zeros([0, 1]) : try Tensor.cat(featureBlocks)
        }
        let list = String(decoding: try JSONEncoder().encode(skipped), as: UTF8.self)
        try store.write(i, tensors, metadata: ["skipped": list, "first_entry": String(range.lowerBound)])
    }
}
