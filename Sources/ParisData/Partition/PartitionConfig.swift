import Foundation
import ParisModels

/// How `Partitioner.run` splits a dataset into K shards. Codable with snake_case keys; missing keys take the
/// defaults of `init`. Named presets: `emoji`, `fashion-mnist`, `tiny` (see `preset(named:)`).
public struct PartitionConfig: Codable, Sendable, Equatable {
    /// How images are assigned to clusters.
    public enum Method: String, Codable, Sendable, CaseIterable {
        /// Hierarchical k-means on features (the method of DDM and Paris).
        case kmeans
        /// Balanced random shards (the baseline).
        case random
        /// One cluster per known label, or greedily balanced groups of labels (an oracle to compare with).
        case label
    }

    /// What the k-means clusters: image-encoder features, MiniLM sentence embeddings of the captions, or both
    /// (each L2-normalised, then concatenated, so each counts equally).
    public enum Features: String, Codable, Sendable, CaseIterable {
        case image, text, both
    }

    /// K, the number of clusters (= experts).
    public var numClusters: Int
    public var method: Method
    public var features: Features
    public var metric: KMeans.Metric
    /// Fine k-means clusters; nil: `HierarchicalKMeans.defaultFineClusters` (min(1024, N/4)).
    public var fineClusters: Int?
    public var maxIterations: Int
    public var seed: UInt64
    /// The training resolution: images are centre-cropped to a square and resized to image_size × image_size.
    public var imageSize: Int
    /// 3: RGB (alpha composited over white), 1: gray (ITU-R 601 luma, as PIL's "L").
    public var channels: Int
    /// Caption tokens T stored per caption (padded or cut).
    public var textLength: Int
    /// Only metadata lines whose "split" is this (lines without "split" are always kept); nil keeps all.
    public var split: String?
    /// At most this many images (the first ones in metadata.jsonl order, after the split filter).
    public var limit: Int?
    /// Missing or undecodable image files are skipped and reported (true) or stop the run (false).
    public var skipBadImages: Bool
    /// Images per encoder call.
    public var batchSize: Int
    /// Images set aside before clustering, in `held_out/shard_<k>/` (never in an expert's shard), each assigned to the
    /// cluster it would join (nearest centroid, label group, or a random shard). They are chosen by a fixed seed,
    /// not `seed`, so every partition of the same images holds out the same ones (shared evaluation data).
    public var heldOut: Int
    /// Images per chunk of the partition's work (decoded images and features on disk; rounded up to a multiple of
    /// batch_size). Memory holds about one chunk; a killed partition resumes at the first unfinished chunk.
    public var chunkSize: Int
    /// k-means is fitted on at most this many training images (a seeded sample), and every image is then assigned
    /// to the nearest centroids chunk by chunk. With no more training images than this, the fit is over all of them.
    public var kmeansSample: Int

    public init(numClusters: Int, method: Method = .kmeans, features: Features = .image,
                metric: KMeans.Metric = .cosine, fineClusters: Int? = nil, maxIterations: Int = 100, seed: UInt64 = 0,
                imageSize: Int = 32, channels: Int = 3, textLength: Int = 16, split: String? = nil,
                limit: Int? = nil, skipBadImages: Bool = true, batchSize: Int = 64, heldOut: Int = 0,
                chunkSize: Int = 4096, kmeansSample: Int = 100_000) {
        self.numClusters = numClusters
        self.method = method
        self.features = features
        self.metric = metric
        self.fineClusters = fineClusters
        self.maxIterations = maxIterations
        self.seed = seed
        self.imageSize = imageSize
        self.channels = channels
        self.textLength = textLength
        self.split = split
        self.limit = limit
        self.skipBadImages = skipBadImages
        self.batchSize = batchSize
        self.heldOut = heldOut
        self.chunkSize = chunkSize
        self.kmeansSample = kmeansSample
    }

    enum CodingKeys: String, CodingKey {
        case numClusters = "num_clusters", method, features, metric, fineClusters = "fine_clusters"
        case maxIterations = "max_iterations", seed, imageSize = "image_size", channels, textLength = "text_length"
        case split, limit, skipBadImages = "skip_bad_images", batchSize = "batch_size"
        case heldOut = "held_out", chunkSize = "chunk_size", kmeansSample = "kmeans_sample"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PartitionConfig(numClusters: try c.decode(Int.self, forKey: .numClusters))
        self = d
        method = try c.decodeIfPresent(Method.self, forKey: .method) ?? d.method
        features = try c.decodeIfPresent(Features.self, forKey: .features) ?? d.features
        metric = try c.decodeIfPresent(KMeans.Metric.self, forKey: .metric) ?? d.metric
        fineClusters = try c.decodeIfPresent(Int.self, forKey: .fineClusters)
        maxIterations = try c.decodeIfPresent(Int.self, forKey: .maxIterations) ?? d.maxIterations
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? d.imageSize
        channels = try c.decodeIfPresent(Int.self, forKey: .channels) ?? d.channels
        textLength = try c.decodeIfPresent(Int.self, forKey: .textLength) ?? d.textLength
        split = try c.decodeIfPresent(String.self, forKey: .split)
        limit = try c.decodeIfPresent(Int.self, forKey: .limit)
        skipBadImages = try c.decodeIfPresent(Bool.self, forKey: .skipBadImages) ?? d.skipBadImages
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        heldOut = try c.decodeIfPresent(Int.self, forKey: .heldOut) ?? d.heldOut
        chunkSize = try c.decodeIfPresent(Int.self, forKey: .chunkSize) ?? d.chunkSize
        kmeansSample = try c.decodeIfPresent(Int.self, forKey: .kmeansSample) ?? d.kmeansSample
    }

    /// Emoji (twemoji/openmoji/noto, 72 px RGBA): 8 experts at 32 px RGB, both features.
    public static let emoji = PartitionConfig(numClusters: 8, features: .both, imageSize: 32, channels: 3,
                                              textLength: 16, split: nil)
    /// Fashion-MNIST (28 px gray, 10 classes): 4 experts at 28 px, image features, the train split.
    public static let fashionMNIST = PartitionConfig(numClusters: 4, features: .image, imageSize: 28, channels: 1,
                                                     textLength: 16, split: "train")
    /// A few images for tests and demos: 2 experts at 16 px.
    public static let tiny = PartitionConfig(numClusters: 2, features: .image, imageSize: 16, channels: 3,
                                             textLength: 8, split: nil, batchSize: 16)

    public static let presets: [String: PartitionConfig] = [
        "emoji": emoji, "fashion-mnist": fashionMNIST, "tiny": tiny,
    ]

    /// A preset by name.
    public static func preset(named name: String) throws -> PartitionConfig {
        guard let p = presets[name] else {
            throw PartitionError("unknown partition preset '\(name)'; known: \(presets.keys.sorted().joined(separator: ", "))")
        }
        return p
    }

    /// Checks the values that do not depend on the data.
    public func validate() throws {
        guard numClusters >= 1 else {
            throw PartitionError("num_clusters (K) must be at least 1, not \(numClusters)")
        }
        guard numClusters <= RouterConfig.maxExperts else {
            throw PartitionError("num_clusters (K) must be ≤ \(RouterConfig.maxExperts) (RouterConfig.maxExperts: "
                + "one expert per cluster), not \(numClusters)")
        }
        guard [1, 3].contains(channels) else { throw PartitionError("channels must be 1 or 3, not \(channels)") }
        guard imageSize >= 1 else { throw PartitionError("image_size must be positive, not \(imageSize)") }
        guard textLength >= 1 else { throw PartitionError("text_length must be positive, not \(textLength)") }
        guard batchSize >= 1 else { throw PartitionError("batch_size must be positive, not \(batchSize)") }
        guard maxIterations >= 1 else { throw PartitionError("max_iterations must be positive, not \(maxIterations)") }
        if let limit, limit < 1 { throw PartitionError("limit must be positive, not \(limit)") }
        if let f = fineClusters, f < 1 { throw PartitionError("fine_clusters must be positive, not \(f)") }
        guard heldOut >= 0 else { throw PartitionError("held_out must be ≥ 0, not \(heldOut)") }
        guard chunkSize >= 1 else { throw PartitionError("chunk_size must be positive, not \(chunkSize)") }
        guard kmeansSample >= numClusters else {
            throw PartitionError("kmeans_sample must be at least num_clusters (\(numClusters)), not \(kmeansSample)")
        }
    }
}
