import Foundation
import ParisModels
import Torch

/// `partition/manifest.json`: what a partition is, how it was made, and how good it is. Written last, so its
/// presence means the partition is complete. JSON keys are snake_case.
public struct PartitionManifest: Codable, Sendable, Equatable {
    public static let fileName = "manifest.json"
    public static let currentFormat = "paris-partition-v1"

    /// One cluster (= one expert's shard).
    public struct Cluster: Codable, Sendable, Equatable {
        public var index: Int
        /// Images in the shard.
        public var size: Int
        /// The shard folder, relative to the partition folder (`shard_<k>`).
        public var shard: String
        /// Images per known label (empty when the dataset has no labels).
        public var labels: [String: Int]
        /// sha256 of the shard's data files, copied from its shard.json.
        public var checksums: [String: String]

        enum CodingKeys: String, CodingKey { case index, size, shard, labels, checksums }
    }

    /// Agreement with the dataset's labels, and the same for a random split with the same cluster sizes.
    public struct Metrics: Codable, Sendable, Equatable {
        public var purity: Double
        public var nmi: Double
        public var randomPurity: Double
        public var randomNMI: Double

        enum CodingKeys: String, CodingKey {
            case purity, nmi, randomPurity = "random_purity", randomNMI = "random_nmi"
        }
    }

    /// How the k-means went (absent for the random and label methods).
    public struct Clustering: Codable, Sendable, Equatable {
        public var fineClusters: Int?
        public var fineIterations: Int?
        public var coarseIterations: Int
        public var converged: Bool
        /// Empty clusters re-seeded at far points, both stages together.
        public var reseeded: Int
        public var inertia: Double
        /// The training images the k-means was fitted on, when fewer than all of them (`kmeans_sample`); the others
        /// were assigned to the nearest centroids afterwards. nil: fitted on every training image.
        public var sample: Int?

        public init(fineClusters: Int?, fineIterations: Int?, coarseIterations: Int, converged: Bool, reseeded: Int,
                    inertia: Double, sample: Int? = nil) {
            (self.fineClusters, self.fineIterations, self.coarseIterations) = (fineClusters, fineIterations, coarseIterations)
            (self.converged, self.reseeded, self.inertia, self.sample) = (converged, reseeded, inertia, sample)
        }

        enum CodingKeys: String, CodingKey {
            case fineClusters = "fine_clusters", fineIterations = "fine_iterations"
            case coarseIterations = "coarse_iterations", converged, reseeded, inertia, sample
        }
    }

    public var format: String
    public var numClusters: Int
    public var method: PartitionConfig.Method
    /// The features clustered (nil for the random and label methods).
    public var features: PartitionConfig.Features?
    public var seed: UInt64
    /// The dataset folder as given, and its metadata.jsonl entries used / skipped.
    public var dataset: String
    public var numImages: Int
    public var numSkipped: Int
    /// Up to 20 skip reasons, each naming the file and its metadata line.
    public var skipped: [String]
    public var imageSize: Int
    public var channels: Int
    public var textLength: Int
    public var textDim: Int
    public var imageModel: String?
    public var textModel: String?
    public var captionEncoder: String
    /// The full configuration the partition was made with.
    public var config: PartitionConfig
    public var clustering: Clustering?
    public var clusters: [Cluster]
    /// The held-out images of each cluster (`held_out/shard_<k>/`), nil when none were held out.
    public var heldOut: [Cluster]?
    /// nil when some image has no label (or once a cluster was added).
    public var metrics: Metrics?
    /// Clusters added after partitioning (`paris run add-expert`), in order; nil when none.
    public var additions: [PartitionAddition.Addition]? = nil
    /// A latent partition (`paris encode`): the autoencoder whose latents the shards hold; `image_size` and `channels`
    /// are then the latents' (nil: the shards hold pixels).
    public var latents: LatentSpace? = nil
    /// A latent partition: the pixel partition it was encoded from (absolute path), whose images `paris eval`
    /// compares samples with; its rows are this partition's, in the same order.
    public var pixelPartition: String? = nil

    enum CodingKeys: String, CodingKey {
        case format, numClusters = "num_clusters", method, features, seed, dataset, numImages = "num_images"
        case numSkipped = "num_skipped", skipped, imageSize = "image_size", channels, textLength = "text_length"
        case textDim = "text_dim", imageModel = "image_model", textModel = "text_model"
        case captionEncoder = "caption_encoder", config, clustering, clusters, heldOut = "held_out", metrics
        case additions, latents, pixelPartition = "pixel_partition"
    }

    /// Cluster sizes in index order.
    public var sizes: [Int] { clusters.map(\.size) }

    /// Reads `<partition>/manifest.json`.
    public static func load(from partition: URL) throws -> PartitionManifest {
        let url = partition.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PartitionError("\(url.path): missing; run `paris partition` first (or it did not finish)")
        }
        let m: PartitionManifest
        do { m = try JSONDecoder().decode(PartitionManifest.self, from: data) } catch {
            throw PartitionError("\(url.path): malformed partition manifest (\(error))")
        }
        guard m.format == currentFormat else {
            throw PartitionError("\(url.path): format '\(m.format)', expected '\(currentFormat)'")
        }
        guard m.clusters.count == m.numClusters else {
            throw PartitionError("\(url.path): \(m.clusters.count) clusters listed for num_clusters \(m.numClusters)")
        }
        return m
    }

    /// The JSON bytes (pretty, sorted keys).
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(self)) + [10]
    }

    /// A short table of the clusters and the scores, for logs and the CLI.
    public var summary: String {
        var lines = ["\(numClusters) clusters of \(numImages) images (\(method.rawValue)"
            + (features.map { ", \($0.rawValue) features" } ?? "") + ")"]
        for c in clusters {
            let top = c.labels.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(3)
                .map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            lines.append("  cluster \(c.index): \(c.size) images" + (top.isEmpty ? "" : "  (\(top))"))
        }
        if let held = heldOut {
            lines.append("  held out (held_out/): \(held.map(\.size)) images per cluster")
        }
        if let m = metrics {
            lines.append(String(format: "  purity %.3f (random %.3f), NMI %.3f (random %.3f)",
                                m.purity, m.randomPurity, m.nmi, m.randomNMI))
        }
        return lines.joined(separator: "\n")
    }
}
