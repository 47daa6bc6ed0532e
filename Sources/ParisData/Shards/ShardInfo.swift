import Foundation
import ParisModels
import Torch

/// What a shard's tensors are: 8-bit images, or an autoencoder's latents.
public enum ShardContent: String, Codable, Sendable, Equatable {
    /// `images` [n, C, S, S] uint8 (as imported and resized).
    case pixels
    /// `latents` [n, L, s, s] float16: the autoencoder's posterior mean × its scaling factor.
    case latents
}

/// `shard.json`: what one cluster's shard holds. Written last, so its presence means the shard is complete.
///
/// Two layouts are read. `paris-shard-v2` (what every writer makes now) is a folder of fixed-size parts, listed in
/// `parts` in row order, each `part-<i>.safetensors` + `part-<i>.jsonl` (see `ShardPart`); `paris-shard-v1` is the
/// single-file shard of earlier versions (`images.safetensors`, `text.safetensors`, `items.jsonl`), read as one part.
/// In both, `checksums` holds the sha256 of every data file by name, so a part is verified on its own.
///
/// `content` says what the parts hold: pixels (uint8 `images`, what `paris partition` writes; also when the key is
/// absent, as in every shard written before latents) or latents (float16 `latents`, written by `paris encode`, with
/// `latents` naming the autoencoder: `LatentSpace`). For a latent shard `channels` and `image_size` are the latents'
/// (L and S/f), and the autoencoder's `resolution` is the images' size S.
public struct ShardInfo: Codable, Sendable, Equatable {
    public static let currentFormat = "paris-shard-v2"
    /// The single-file layout, still read.
    public static let singleFileFormat = "paris-shard-v1"
    public static let formats = [currentFormat, singleFileFormat]

    /// One part of a v2 shard, in row order.
    public struct Part: Codable, Sendable, Equatable {
        /// The files' stem: `part-00003` names `part-00003.safetensors` and `part-00003.jsonl`.
        public var name: String
        /// Images in the part.
        public var count: Int
        /// Distinct captions in the part (rows of its text table).
        public var captions: Int
        public init(name: String, count: Int, captions: Int) {
            self.name = name
            self.count = count
            self.captions = captions
        }
    }

    public var format: String
    /// This shard's cluster index k, in 0..<numClusters.
    public var cluster: Int
    public var numClusters: Int
    /// Number of images N.
    public var count: Int
    public var channels: Int
    public var imageSize: Int
    /// Number of caption rows U (each part stores its distinct captions once; v2 counts them per part).
    public var captionCount: Int
    /// The text encoder that made the caption token embeddings, e.g. `all-MiniLM-L6-v2`.
    public var textEncoder: String
    /// Tokens per caption T (padded) and embedding width D.
    public var textLength: Int
    public var textDim: Int
    /// The dataset folder's name and the partition method that assigned these images to cluster k.
    public var dataset: String
    public var partitionMethod: String
    /// sha256 of each data file in the folder, by file name.
    public var checksums: [String: String]
    /// The parts of a v2 shard, in row order (nil for v1).
    public var parts: [Part]?
    /// Pixels or latents (nil: pixels, a shard written before latent shards existed).
    public var content: ShardContent?
    /// The autoencoder that made a latent shard's latents (nil for pixels).
    public var latents: LatentSpace?

    /// What the parts hold.
    public var kind: ShardContent { content ?? .pixels }
    /// The dtype of the parts' image (or latent) tensor: uint8 pixels, float16 latents.
    public var dataType: DType { kind == .latents ? .float16 : .uint8 }
    /// "3×32×32 pixels", "4×16×16 latents of autoencoder 3f2a… (…)": for messages.
    public var contentSummary: String {
        "\(channels)×\(imageSize)×\(imageSize) " + (latents.map { "latents of \($0.summary)" } ?? "pixels")
    }

    public init(cluster: Int, numClusters: Int, count: Int, channels: Int, imageSize: Int, captionCount: Int,
                textEncoder: String, textLength: Int, textDim: Int, dataset: String, partitionMethod: String,
                checksums: [String: String] = [:], parts: [Part]? = nil, latents: LatentSpace? = nil) {
        self.format = Self.currentFormat
        self.cluster = cluster
        self.numClusters = numClusters
        self.count = count
        self.channels = channels
        self.imageSize = imageSize
        self.captionCount = captionCount
        self.textEncoder = textEncoder
        self.textLength = textLength
        self.textDim = textDim
        self.dataset = dataset
        self.partitionMethod = partitionMethod
        self.checksums = checksums
        self.parts = parts
        self.content = latents == nil ? .pixels : .latents
        self.latents = latents
    }

    /// The data files of this shard, in row order (the files `checksums` covers).
    public var dataFiles: [String] {
        guard let parts else { return Shard.singleFileNames }
        return parts.flatMap { [ShardPart.tensorsName($0.name), ShardPart.itemsName($0.name)] }
    }

    /// Checks the format, the cluster index and that the parts add up (`parts` is nil for a v1 shard and for a shard
    /// held in memory that was never written); `origin` prefixes the message.
    public func validate(origin: String) throws {
        func fail(_ why: String) -> DatasetImportError { DatasetImportError("\(origin): \(why)") }
        guard Self.formats.contains(format) else {
            throw fail("format '\(format)', expected one of \(Self.formats.joined(separator: ", "))")
        }
        guard numClusters > 0, (0..<numClusters).contains(cluster) else {
            throw fail("cluster \(cluster) is not in 0..<\(numClusters)")
        }
        guard count >= 0, channels > 0, imageSize > 0, textLength > 0, textDim > 0 else {
            throw fail("count \(count), channels \(channels), image size \(imageSize), text \(textLength)×\(textDim): "
                + "sizes must be positive")
        }
        switch (kind, latents) {
        case (.pixels, nil): break
        case (.latents, let space?):
            guard space.latentChannels == channels, space.latentSize == imageSize else {
                throw fail("latents \(channels)×\(imageSize)×\(imageSize), but the autoencoder (\(space.summary)) makes "
                    + "\(space.latentChannels)×\(space.latentSize)×\(space.latentSize)")
            }
        case (.pixels, _?): throw fail("a pixel shard names an autoencoder ('latents'); set content to latents")
        case (.latents, nil): throw fail("a latent shard must name its autoencoder ('latents')")
        }
        if let parts {
            guard format == Self.currentFormat else { throw fail("a \(format) shard has no parts, but it lists some") }
            let n = parts.reduce(0) { $0 + $1.count }, u = parts.reduce(0) { $0 + $1.captions }
            guard n == count, u == captionCount else {
                throw fail("the parts hold \(n) images and \(u) captions, but the shard says \(count) and \(captionCount)")
            }
            if let bad = parts.first(where: { $0.count <= 0 || $0.captions <= 0 || !ShardPart.isValidName($0.name) }) {
                throw fail("part '\(bad.name)' (\(bad.count) images, \(bad.captions) captions) is not a valid part")
            }
        }
    }
}
