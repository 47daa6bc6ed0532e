import Foundation
import ParisModels
import Torch

/// `paris encode`: turns a partition of pixel shards into a partition of latent shards, shard by shard and part by
/// part (each part's images → the autoencoder's posterior mean × scaling factor, float16), so memory holds one part.
///
/// The pixel partition is left as it is (its images are still what `paris eval` compares samples with, and what a
/// new autoencoder trains on); the latent partition is written beside it, whole or not at all (a staging folder
/// renamed at the end):
/// ```
/// <out>/manifest.json           the pixel partition's, with `latents` (the autoencoder's LatentSpace), the latents'
///                               `channels` and `image_size`, the latent shards' checksums and `pixel_partition`
///                               (the source's path: `paris eval` reads its images for the real side)
/// <out>/centroids.safetensors   copied (the clustering is the pixel partition's)
/// <out>/grid_<k>.png, grids.png copied (pixels, to look at)
/// <out>/shard_<k>/              latent shards: part-<i>.safetensors holds `latents` [n, L, S/f, S/f] float16
///                               instead of `images`; shard.json says `content: latents` and names the autoencoder
/// <out>/held_out/shard_<k>/     the same for the held-out shards, when the partition has them
/// <out>/autoencoder/            the autoencoder (config.json + diffusion_pytorch_model.safetensors), copied, so
///                               the latent partition carries the decoder its samples need
/// ```
/// The autoencoder must have been trained at the shards' resolution (its `sample_size`) and take their channels.
public enum LatentEncoding {
    /// The autoencoder's folder inside a latent partition.
    public static let autoencoderFolder = "autoencoder"
    public static let configName = "config.json"
    public static let weightsName = "diffusion_pytorch_model.safetensors"

    /// The identity of the autoencoder in `folder` (diffusers' layout): its config and the hash of its weights file.
    public static func space(of folder: URL) throws -> LatentSpace {
        let weights = folder.appendingPathComponent(weightsName)
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw DatasetImportError("\(folder.path): no \(weightsName); an autoencoder folder holds \(configName) and "
                + "\(weightsName) (train one with `paris train autoencoder`)")
        }
        let config: AutoencoderKLConfig
        do { config = try AutoencoderKLConfig.load(from: folder.appendingPathComponent(configName)) } catch {
            throw DatasetImportError("\(error)")
        }
        return LatentSpace(config: config, weights: String(try Checksum.sha256(file: weights).prefix(16)))
    }

    /// The autoencoder of a latent partition (`<partition>/autoencoder/`), checked against `expected` (the latent
    /// space the shards or the experts record): a missing folder or another autoencoder is an error.
    public static func autoencoder(partition: URL, expected: LatentSpace, device: Device = .cpu) throws -> AutoencoderKL {
        let folder = partition.appendingPathComponent(autoencoderFolder)
        let found = try space(of: folder)
        if let d = expected.difference(from: found) {
            throw DatasetImportError("\(folder.path) is not the autoencoder the latents were made with: \(d)")
        }
        do { return try AutoencoderKL.pretrained(directory: folder, device: device) } catch {
            throw DatasetImportError("\(error)")
        }
    }

    /// Encodes the partition `partition` into `output` with the autoencoder in `autoencoder`, `batchSize` images at
    /// a time. An existing `output` is replaced only with `overwrite`. Returns the new manifest.
    @discardableResult
    public static func encode(partition: URL, output: URL, autoencoder: URL, batchSize: Int = 64,
                              overwrite: Bool = false, device: Device = .cpu,
                              log: (String) -> Void = { _ in }) throws -> PartitionManifest {
        guard batchSize > 0 else { throw DatasetImportError("batch size must be positive, not \(batchSize)") }
        let fm = FileManager.default
        let out = output.standardizedFileURL
        guard out != partition.standardizedFileURL else {
            throw DatasetImportError("--out must differ from --partition (the pixel partition is kept)")
        }
        if fm.fileExists(atPath: out.path) && !overwrite {
            throw DatasetImportError("\(out.path) already exists; pass --force to replace it")
        }
        var manifest: PartitionManifest
        do { manifest = try PartitionManifest.load(from: partition) } catch { throw DatasetImportError("\(error)") }
        if let l = manifest.latents {
            throw DatasetImportError("\(partition.path) already holds latents (\(l.summary)); encode its pixel partition")
        }
        let space = try space(of: autoencoder)
        let vae: AutoencoderKL
        do { vae = try AutoencoderKL.pretrained(directory: autoencoder, device: device) } catch {
            throw DatasetImportError("\(error)")
        }
        guard manifest.imageSize == space.resolution else {
            throw DatasetImportError("the autoencoder \(autoencoder.path) was trained on \(space.resolution)-px images "
                + "(its sample_size), but the shards of \(partition.path) hold \(manifest.imageSize)-px images; "
                + "train an autoencoder on these shards, or partition again with --image-size \(space.resolution)")
        }
        guard manifest.channels == vae.config.inChannels, manifest.imageSize % space.downsamplingFactor == 0 else {
            throw DatasetImportError("the autoencoder takes \(vae.config.inChannels)-channel images with sides that are "
                + "multiples of \(space.downsamplingFactor), but the shards hold \(manifest.channels)×"
                + "\(manifest.imageSize)² images")
        }
        let staging = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).encoding")
        if fm.fileExists(atPath: staging.path) { try fm.removeItem(at: staging) }
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            for (i, c) in manifest.clusters.enumerated() {
                let info = try encodeShard(partition.appendingPathComponent(c.shard),
                                           to: staging.appendingPathComponent(c.shard), vae: vae, space: space,
                                           batchSize: batchSize, device: device)
                manifest.clusters[i].checksums = info.checksums
                log("shard \(c.index): \(info.count) latents \(info.contentSummary)")
            }
            if var held = manifest.heldOut {
                for (i, c) in held.enumerated() {
                    let from = partition.appendingPathComponent(HeldOut.folderName).appendingPathComponent(c.shard)
                    let info = try encodeShard(from, to: staging.appendingPathComponent(HeldOut.folderName)
                        .appendingPathComponent(c.shard), vae: vae, space: space, batchSize: batchSize, device: device)
                    held[i].checksums = info.checksums
                }
                manifest.heldOut = held
                log("held-out shards: \(held.reduce(0) { $0 + $1.size }) latents")
            }
            let names = try fm.contentsOfDirectory(atPath: partition.path)
            for name in names where name.hasSuffix(".png") || name == "centroids.safetensors" {
                try fm.copyItem(at: partition.appendingPathComponent(name), to: staging.appendingPathComponent(name))
            }
            let vaeCopy = staging.appendingPathComponent(autoencoderFolder)
            try fm.createDirectory(at: vaeCopy, withIntermediateDirectories: true)
            for name in [configName, weightsName] {
                try fm.copyItem(at: autoencoder.appendingPathComponent(name), to: vaeCopy.appendingPathComponent(name))
            }
            manifest.latents = space
            manifest.pixelPartition = partition.standardizedFileURL.path
            manifest.channels = space.latentChannels
            manifest.imageSize = space.latentSize
            try AtomicFile.write(try manifest.encoded(), to: staging.appendingPathComponent(PartitionManifest.fileName))
            if fm.fileExists(atPath: out.path) { try fm.removeItem(at: out) }
            try fm.moveItem(at: staging, to: out)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
        return manifest
    }

    /// One pixel shard → a latent shard with the same parts (same rows, captions and items).
    static func encodeShard(_ from: URL, to: URL, vae: AutoencoderKL, space: LatentSpace, batchSize: Int,
                            device: Device) throws -> ShardInfo {
        let reader = try ShardReader(folder: from)
        var info = reader.info
        guard info.kind == .pixels else {
            throw DatasetImportError("\(from.path) already holds latents (\(info.contentSummary))")
        }
        guard info.imageSize == space.resolution else {
            throw DatasetImportError("\(from.path) holds \(info.imageSize)-px images, but the autoencoder was trained on "
                + "\(space.resolution)-px images")
        }
        (info.channels, info.imageSize, info.content, info.latents) =
            (space.latentChannels, space.latentSize, .latents, space)
        let partSize = reader.parts.map(\.count).max() ?? ShardWriter.defaultPartSize
        let writer = try ShardWriter(folder: to, info: info, partSize: max(1, partSize), overwrite: true)
        for p in reader.parts.indices {
            var part = try reader.part(p)
            part.images = try latents(of: part.images, vae: vae, batchSize: batchSize, device: device)
            try writer.append(part)
        }
        return try writer.finish()
    }

    /// uint8 images [n, C, S, S] → float16 latents [n, L, S/f, S/f]: (mean − shift)·scale of the posterior.
    public static func latents(of images: Tensor, vae: AutoencoderKL, batchSize: Int, device: Device) throws -> Tensor {
        let n = images.size(0)
        guard n > 0 else {
            return try Tensor.zeros([0, vae.config.latentChannels, images.size(2) / vae.config.downsamplingFactor,
                                     images.size(3) / vae.config.downsamplingFactor], dtype: .float16)
        }
        var out: [Tensor] = []
        try withNoGrad {
            for start in stride(from: 0, to: n, by: batchSize) {
                let x = try (images.slice(0, start, min(n, start + batchSize)).to(device: device)
                    .to(dtype: .float32) / 127.5 - 1)                          // [b, C, S, S] in [-1, 1]
                let z = try vae.scaledLatents(try vae.encode(x).mode())       // [b, L, S/f, S/f]
                out.append(try z.to(dtype: .float16).to(device: .cpu))
            }
        }
        return try Tensor.cat(out, dim: 0).contiguous()
    }
}
