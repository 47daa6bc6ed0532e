import Foundation
import ParisImage
import Torch

/// Decodes an image folder's images in batches: image features from the file-size RGB images (when asked), and
/// every image at the training resolution as one uint8 tensor [N, C, S, S].
enum PartitionImages {
    struct Loaded {
        /// The entries whose image was read, in metadata order (row i of `images` and `features`).
        let entries: [ImageFolder.Entry]
        /// [N, C, S, S] uint8 on the CPU.
        let images: Tensor
        /// [N, F] float32 on the CPU, when a feature extractor was given.
        let features: Tensor?
        /// "<file> (metadata.jsonl:<line>): <why>" for each skipped image.
        let skipped: [String]
    }

    static func load(_ folder: ImageFolder, config: PartitionConfig, features: PartitionEncoders.ImageFeatures?,
                     log: (String) -> Void) throws -> Loaded {
        let s = config.imageSize, c = config.channels, total = folder.entries.count
        var kept: [ImageFolder.Entry] = []
        var skipped: [String] = []
        var pixels: [UInt8] = []  // N × S × S × C, HWC per image
        pixels.reserveCapacity(total * s * s * c)
        var featureBlocks: [Tensor] = []
        var start = 0, nextLog = 0
        while start < total {
            let batch = folder.entries[start..<min(total, start + config.batchSize)]
            var originals: [Image] = []
            for entry in batch {
                let url = folder.url(of: entry)
                let image: Image
                do {
                    image = try Image(contentsOf: url, alpha: .composite(over: .white))
                } catch {
                    let why = "\(entry.fileName) (\(ImageFolder.metadataName):\(entry.line)): \(error)"
                    guard config.skipBadImages else { throw PartitionError(why) }
                    skipped.append(why)
                    continue
                }
                let small = try ContactSheet.prepare(image, size: s, channels: c)
                pixels.append(contentsOf: small.pixels)
                kept.append(entry)
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
            start += batch.count
            if start >= nextLog || start == total {
                log("images\(features != nil ? " + features" : ""): \(start)/\(total)"
                    + (skipped.isEmpty ? "" : " (\(skipped.count) skipped)"))
                nextLog = start + max(config.batchSize, total / 10)
            }
        }
        if !skipped.isEmpty {
            log("skipped \(skipped.count) of \(total) images; first: \(skipped[0])")
        }
        let n = kept.count
        let images = try pixels.withUnsafeBytes { raw in
            try Tensor(bytes: raw, shape: [n, s, s, c], dtype: .uint8)
        }.permute([0, 3, 1, 2]).contiguous()  // [N, C, S, S]
        let feats = featureBlocks.isEmpty ? nil : try Tensor.cat(featureBlocks)
        return Loaded(entries: kept, images: images, features: feats, skipped: skipped)
    }
}
