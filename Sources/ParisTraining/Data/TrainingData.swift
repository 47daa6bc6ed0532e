import Foundation
import ParisRun
import ParisData
import Torch

/// The data a diffusion job reads: one shard (an expert) or all of them one after another (the monolith).
public enum TrainingData {
    /// Opens cluster k's shard in `folder` for streaming (checksums verified part by part as they are read),
    /// refusing a shard of another cluster or of a partition with a different K.
    public static func openShard(_ folder: URL, cluster k: Int, numClusters: Int) throws -> ShardReader {
        try openShards([(folder, k)], numClusters: numClusters)
    }

    /// The shards `(folder, cluster)` read one after another as one (the monolith's data: every shard in cluster
    /// order). They must agree in image and text shape.
    public static func openShards(_ shards: [(folder: URL, cluster: Int)], numClusters: Int) throws -> ShardReader {
        for (folder, k) in shards where !FileManager.default.fileExists(atPath: folder.path) {
            throw RunError("shard \(k) is missing: \(folder.path) does not exist; partition the data first "
                + "(`paris partition --data D --out <run>/partition --k \(numClusters)`)")
        }
        let reader: ShardReader
        do { reader = try ShardReader(folders: shards.map(\.folder), expectedClusters: shards.map(\.cluster)) } catch {
            throw RunError(shards.count == 1 ? "shard \(shards[0].cluster): \(error)" : "\(error)")
        }
        for (info, (folder, _)) in zip(reader.infos, shards) where info.numClusters != numClusters {
            throw RunError("\(folder.path) belongs to a partition into \(info.numClusters) clusters, but "
                + "run.json has num_experts \(numClusters)")
        }
        return reader
    }

    /// Rows to draw sample-grid captions from: the whole shard when it is one part, else the first `count` rows of
    /// up to `count` parts spread over it (so the monolith's grid shows every cluster's captions).
    public static func captionSource(_ reader: ShardReader, count: Int) throws -> ShardPart {
        let p = reader.parts.count
        guard p > 1 else { return try reader.readAll() }
        let picked = Array(Set((0..<min(count, p)).map { $0 * p / min(count, p) })).sorted()
        return try ShardPart.concatenated(try picked.map { i in
            let part = try reader.part(i)
            return try part.rows(Array(0..<min(count, part.count)))
        })
    }

    /// Up to `count` distinct captions of a shard, spread over it: (caption text, caption row) pairs, for sample
    /// grids.
    public static func sampleCaptions(_ shard: ShardPart, count: Int) throws -> [(text: String, row: Int)] {
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
