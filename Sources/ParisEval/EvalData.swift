import Foundation
import ParisRun
import ParisData
import ParisEnsemble
import ParisModels
import Torch

/// The evaluation's data: images of every cluster with their captions (encoded, from the shards), labels and
/// true cluster, split once by a seeded permutation into a held-out part (reference set, router and expert
/// checks) and a training part (the classifier's).
///
/// The shards are the partition's (`<run>/partition/shard_<k>/`) unless another partition folder with the same
/// layout is given (e.g. the test split assigned to the same clusters); with the run's own shards the held-out
/// images were also seen by the experts, which the report says.
public struct EvalData {
    /// uint8 [N, C, S, S]: the real images (a latent partition's pixel partition's).
    public let images: Tensor
    /// A latent partition's latents [N, L, s, s] float16, row for row with `images`; nil for pixels.
    public var latents: Tensor? = nil
    /// [N, L, D] float32 and [N, L] bool: each image's caption tokens.
    public let text: Tensor, textMask: Tensor
    public let captions: [String]
    /// Each image's file in the dataset folder (the rows' canonical order).
    public let fileNames: [String]
    /// The dataset's class of each image (nil when the dataset has none).
    public let labels: [String?]
    /// The cluster (shard) of each image.
    public let clusters: [Int]
    public let numClusters: Int
    /// Where the images came from, for the report.
    public let source: String

    public var count: Int { clusters.count }

    /// Loads every shard of `partition` (K of them), at most `limitPerCluster` images each (a seeded choice), in
    /// file-name order, so two partitions of the same images (other clusters) give the same rows.
    ///
    /// A latent partition's shards give the latents; `pixels` (the pixel partition it was encoded from, with the
    /// same rows) gives the images, which is what samples are compared with. A latent partition without `pixels`
    /// is an error.
    public static func load(partition: URL, numClusters k: Int, limitPerCluster: Int? = nil,
                            seed: UInt64 = 0, pixels: URL? = nil) throws -> EvalData {
        var images: [Tensor] = [], text: [Tensor] = [], masks: [Tensor] = [], latents: [Tensor] = []
        var captions: [String] = [], fileNames: [String] = [], labels: [String?] = [], clusters: [Int] = []
        for c in 0..<k {
            let shard = try Shard.load(from: partition.appendingPathComponent(Shard.folderName(cluster: c)),
                                       expectedCluster: c, verifyChecksums: false)
            var rows = ShardLoader.permutation(count: shard.info.count, seed: seed &+ UInt64(c), epoch: 0)
            if let limit = limitPerCluster { rows = Array(rows.prefix(limit)) }
            rows.sort()
            guard !rows.isEmpty else { continue }
            let index = try Tensor(rows.map { Int64($0) })
            if shard.info.kind == .latents {
                guard let pixels else {
                    throw EvalError("\(partition.path) holds latents (\(shard.info.contentSummary)) and no pixel "
                        + "partition to compare samples with; encode it again with `paris encode`")
                }
                let real = try Shard.load(from: pixels.appendingPathComponent(Shard.folderName(cluster: c)),
                                          expectedCluster: c, verifyChecksums: false)
                guard real.items == shard.items else {
                    throw EvalError("\(pixels.path) is not the pixel partition \(partition.path) was encoded from "
                        + "(shard \(c) holds other images)")
                }
                latents.append(try shard.images.indexSelect(dim: 0, index: index))
                images.append(try real.images.indexSelect(dim: 0, index: index))
            } else {
                images.append(try shard.images.indexSelect(dim: 0, index: index))
            }
            let captionRows = try shard.captionIndex.indexSelect(dim: 0, index: index)
            text.append(try shard.textEmbeddings.indexSelect(dim: 0, index: captionRows).to(dtype: .float32))
            masks.append(try shard.textMask.indexSelect(dim: 0, index: captionRows))
            for r in rows {
                captions.append(shard.items[r].text)
                fileNames.append(shard.items[r].fileName)
                labels.append(shard.items[r].label)
                clusters.append(c)
            }
        }
        guard !clusters.isEmpty else { throw EvalError("\(partition.path): the shards hold no images") }
        var loaded = EvalData(images: try Tensor.cat(images), text: try Tensor.cat(text),
                              textMask: try Tensor.cat(masks), captions: captions, fileNames: fileNames,
                              labels: labels, clusters: clusters, numClusters: k, source: partition.path)
        loaded.latents = latents.isEmpty ? nil : try Tensor.cat(latents)
        return try loaded.subset(fileNames.indices.sorted { fileNames[$0] < fileNames[$1] })
    }

    /// The rows `rows` of everything.
    public func subset(_ rows: [Int]) throws -> EvalData {
        let index = try Tensor(rows.map { Int64($0) })
        var out = EvalData(images: try images.indexSelect(dim: 0, index: index),
                        text: try text.indexSelect(dim: 0, index: index),
                        textMask: try textMask.indexSelect(dim: 0, index: index),
                        captions: rows.map { captions[$0] }, fileNames: rows.map { fileNames[$0] },
                        labels: rows.map { labels[$0] },
                        clusters: rows.map { clusters[$0] }, numClusters: numClusters, source: source)
        out.latents = try latents?.indexSelect(dim: 0, index: index)
        return out
    }

    /// A seeded split: `heldOut` rows in a seeded random order (so any prefix is a random sample of the clusters),
    /// and the rest.
    public func split(heldOut: Int, seed: UInt64) throws -> (heldOut: EvalData, rest: EvalData) {
        let order = ShardLoader.permutation(count: count, seed: seed, epoch: 0)
        let held = Array(order.prefix(min(heldOut, count)))
        let chosen = Set(held)
        let rest = (0..<count).filter { !chosen.contains($0) }
        return (try subset(held), try subset(rest.isEmpty ? held : rest))
    }

    /// What the models see: the images as float [N, C, S, S] in [−1, 1], or a latent partition's latents as float32.
    public func modelImages() throws -> Tensor { try ShardPart.modelInput(latents ?? images) }

    /// The text condition of the rows in `range`.
    public func condition(_ range: Range<Int>) throws -> TextCondition {
        try TextCondition(tokens: text.slice(0, range.lowerBound, range.upperBound),
                          mask: textMask.slice(0, range.lowerBound, range.upperBound))
    }

    /// The distinct labels in sorted order (numerically when all are integers), or nil when any image has none.
    public func classNames() -> [String]? {
        guard labels.allSatisfy({ $0 != nil }) else { return nil }
        let set = Set(labels.map { $0! })
        if set.allSatisfy({ Int($0) != nil }) { return set.sorted { Int($0)! < Int($1)! } }
        return set.sorted()
    }
}
