import Foundation
import ParisRun
import ParisData
import Torch

/// The data a diffusion job reads: one shard (an expert) or all of them concatenated (the monolith).
public enum TrainingData {
    /// Loads cluster k's shard from `folder` (checksums verified), refusing a shard of another cluster or of a
    /// partition with a different K.
    public static func loadShard(_ folder: URL, cluster k: Int, numClusters: Int) throws -> Shard {
        guard FileManager.default.fileExists(atPath: folder.path) else {
            throw RunError("shard \(k) is missing: \(folder.path) does not exist; partition the data first "
                + "(`paris partition --data D --out <run>/partition --k \(numClusters)`)")
        }
        let shard: Shard
        do { shard = try Shard.load(from: folder, expectedCluster: k) } catch { throw RunError("shard \(k): \(error)") }
        guard shard.info.numClusters == numClusters else {
            throw RunError("\(folder.path) belongs to a partition into \(shard.info.numClusters) clusters, but "
                + "run.json has num_experts \(numClusters)")
        }
        return shard
    }

    /// Every shard of the partition joined into one (images, caption rows and items appended in cluster order;
    /// caption indices shifted). The result claims cluster 0 of 1. The shards must agree in image and text shape.
    public static func concatenate(_ shards: [Shard]) throws -> Shard {
        guard let first = shards.first else { throw RunError("no shards to concatenate") }
        for s in shards.dropFirst() {
            let a = first.info, b = s.info
            guard (a.channels, a.imageSize, a.textLength, a.textDim) == (b.channels, b.imageSize, b.textLength, b.textDim),
                  a.textEncoder == b.textEncoder else {
                throw RunError("shards \(a.cluster) and \(b.cluster) differ in image or text shape "
                    + "(\(a.channels)×\(a.imageSize)², \(a.textLength)×\(a.textDim) \(a.textEncoder) vs "
                    + "\(b.channels)×\(b.imageSize)², \(b.textLength)×\(b.textDim) \(b.textEncoder))")
            }
        }
        if shards.count == 1 { return shards[0] }
        var offsets: [Int] = [], offset = 0
        for s in shards { offsets.append(offset); offset += s.info.captionCount }
        // caption_index: [N_k] per shard, shifted by the captions before it → [ΣN_k]
        let captionIndex = try Tensor.cat(zip(shards, offsets).map { try $0.0.captionIndex + $0.1 }, dim: 0)
        let f = first.info
        let info = ShardInfo(cluster: 0, numClusters: 1, count: shards.reduce(0) { $0 + $1.info.count },
                             channels: f.channels, imageSize: f.imageSize, captionCount: offset,
                             textEncoder: f.textEncoder, textLength: f.textLength, textDim: f.textDim,
                             dataset: f.dataset, partitionMethod: "all \(shards.count) shards of " + f.partitionMethod)
        return try Shard(info: info, images: try Tensor.cat(shards.map(\.images), dim: 0),  // [N, C, H, W] uint8
                         captionIndex: captionIndex,
                         textEmbeddings: try Tensor.cat(shards.map(\.textEmbeddings), dim: 0),  // [U, T, D]
                         textMask: try Tensor.cat(shards.map(\.textMask), dim: 0),  // [U, T]
                         items: shards.flatMap(\.items))
    }

    /// Up to `count` distinct captions of a shard, spread over it: (caption text, caption row) pairs, for sample
    /// grids.
    public static func sampleCaptions(_ shard: Shard, count: Int) throws -> [(text: String, row: Int)] {
        let rows = try shard.captionIndex.toArray(as: Int64.self)
        var seen = Set<Int>(), out: [(text: String, row: Int)] = []
        let n = rows.count
        guard n > 0 else { return [] }
        // Visit items at a stride so the captions come from across the shard, then fill up in order.
        let stride = max(1, n / max(1, count))
        let order = Swift.stride(from: 0, to: n, by: stride).map { $0 } + Array(0..<n)
        for i in order where out.count < count {
            let row = Int(rows[i])
            if seen.insert(row).inserted { out.append((text: shard.items[i].text, row: row)) }
        }
        return out
    }
}
