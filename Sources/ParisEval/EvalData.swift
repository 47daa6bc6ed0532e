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
    /// file-name order, so two partitions of the same images (other clusters) give the same rows. Only the chosen
    /// rows are kept: the shards are read part by part (mapped), and a part none of whose rows is chosen is not read.
    ///
    /// A latent partition's shards give the latents; `pixels` (the pixel partition it was encoded from, with the
    /// same rows) gives the images, which is what samples are compared with. A latent partition without `pixels`
    /// is an error, and so is a pixel partition whose shards hold other items (checked row by row, a part of each
    /// at a time).
    public static func load(partition: URL, numClusters k: Int, limitPerCluster: Int? = nil,
                            seed: UInt64 = 0, pixels: URL? = nil) throws -> EvalData {
        var images: [Tensor] = [], text: [Tensor] = [], masks: [Tensor] = [], latents: [Tensor] = []
        var captions: [String] = [], fileNames: [String] = [], labels: [String?] = [], clusters: [Int] = []
        for c in 0..<k {
            let reader = try ShardReader(folder: partition.appendingPathComponent(Shard.folderName(cluster: c)),
                                         expectedCluster: c, verifyChecksums: false)
            let info = reader.info
            var rows = ShardLoader.permutation(count: info.count, seed: seed &+ UInt64(c), epoch: 0)
            if let limit = limitPerCluster { rows = Array(rows.prefix(limit)) }
            rows.sort()
            guard !rows.isEmpty else { continue }
            let shard = ShardRowWalk(reader)
            let chosen: ShardPart
            if info.kind == .latents {
                guard let pixels else {
                    throw EvalError("\(partition.path) holds latents (\(info.contentSummary)) and no pixel "
                        + "partition to compare samples with; encode it again with `paris encode`")
                }
                let real = ShardRowWalk(try ShardReader(
                    folder: pixels.appendingPathComponent(Shard.folderName(cluster: c)), expectedCluster: c,
                    verifyChecksums: false))
                guard try sameItems(shard, real, taking: rows) else {
                    throw EvalError("\(pixels.path) is not the pixel partition \(partition.path) was encoded from "
                        + "(shard \(c) holds other images)")
                }
                chosen = try shard.takenRows()!
                latents.append(chosen.images)  // [n, L, s, s] float16
                images.append(try real.takenRows()!.images)  // [n, C, S, S] uint8
            } else {
                for r in rows { try shard.take(r) }
                chosen = try shard.takenRows()!
                images.append(chosen.images)
            }
            // Each chosen row's caption tokens [n, T, D] float32 and mask [n, T].
            text.append(try chosen.textEmbeddings.indexSelect(dim: 0, index: chosen.captionIndex).to(dtype: .float32))
            masks.append(try chosen.textMask.indexSelect(dim: 0, index: chosen.captionIndex))
            for item in chosen.items {
                captions.append(item.text)
                fileNames.append(item.fileName)
                labels.append(item.label)
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

    /// Whether the shards of `a` and `b` hold the same items in the same order (compared row by row, one part of
    /// each held at a time); takes the rows `rows` (increasing) of both on the way.
    static func sameItems(_ a: ShardRowWalk, _ b: ShardRowWalk, taking rows: [Int]) throws -> Bool {
        guard a.reader.count == b.reader.count else { return false }
        var next = 0
        for r in 0..<a.reader.count {
            let (pa, ra) = try a.seek(r), (pb, rb) = try b.seek(r)
            guard pa.items[ra] == pb.items[rb] else { return false }
            if next < rows.count, rows[next] == r {
                try a.take(r)
                try b.take(r)
                next += 1
            }
        }
        return true
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
