import Foundation
import ParisImage
import Torch

/// Writes a partition's shards and grids from the decoded chunks, one cluster at a time: cluster k's images are cut
/// into parts of `partSize` (in metadata order), and each part is gathered from the chunks with its captions' tokens
/// (and its items' file names and captions read again from metadata.jsonl) and handed to a `ShardWriter`, so memory
/// holds one shard part, never a whole cluster. A shard whose `shard.json` is already there (written by a partition
/// that was killed later) is kept; an unfinished one is rewritten.
struct PartitionWriter {
    var folder: URL
    let config: PartitionConfig
    let dataset: URL
    /// The image folder, and the folder row of each row (the kept images, in metadata order).
    let images: ImageFolder
    let kept: [Int]
    let chunks: OpenedChunks
    let captions: CaptionTable
    let captionEncoder: String
    let textDim: Int
    var partSize = ShardWriter.defaultPartSize

    /// The rows of each cluster, in metadata order (rows assigned -1 are left out).
    func members(_ assignments: [Int]) -> [[Int]] {
        var rows = [[Int]](repeating: [], count: config.numClusters)
        for (i, a) in assignments.enumerated() where a >= 0 { rows[a].append(i) }
        return rows
    }

    /// One `shard_<k>/` per cluster; returns the manifest's cluster entries (checksums read back from shard.json).
    /// `written(k)` is called when shard k has been written (not when it was already there).
    func writeShards(assignments: [Int], log: (String) -> Void,
                     written: (Int) throws -> Void) throws -> [PartitionManifest.Cluster] {
        var clusters: [PartitionManifest.Cluster] = []
        for (cluster, rows) in members(assignments).enumerated() {
            let name = Shard.folderName(cluster: cluster)
            let shardFolder = folder.appendingPathComponent(name)
            var labels: [String: Int] = [:]
            for r in rows { if let l = images.label(ofRow: kept[r]) { labels[l, default: 0] += 1 } }
            if let done = try? Shard.info(at: shardFolder), done.count == rows.count {
                clusters.append(.init(index: cluster, size: rows.count, shard: name, labels: labels,
                                      checksums: done.checksums))
                log("shard \(cluster): already written (\(rows.count) images)")
                continue
            }
            let blank = ShardInfo(cluster: cluster, numClusters: config.numClusters, count: 0, channels: config.channels,
                                 imageSize: config.imageSize, captionCount: 0, textEncoder: captionEncoder,
                                 textLength: config.textLength, textDim: textDim, dataset: dataset.lastPathComponent,
                                 partitionMethod: config.method.rawValue)
            let info: ShardInfo
            do {
                let writer = try ShardWriter(folder: shardFolder, info: blank, partSize: partSize, overwrite: true)
                for start in stride(from: 0, to: rows.count, by: partSize) {
                    try writer.append(try part(rows: Array(rows[start..<min(rows.count, start + partSize)])))
                }
                info = try writer.finish()
            } catch where !(error is PartitionError) {  // a write that failed: a full disk, a file-size limit
                throw RowChunks.writeFailure(nil, error, kept: "the shards finished before it are kept")
            }
            clusters.append(.init(index: cluster, size: rows.count, shard: name, labels: labels,
                                  checksums: info.checksums))
            log("shard \(cluster): \(rows.count) images, \(info.captionCount) captions in \(info.parts?.count ?? 1) parts")
            try written(cluster)
        }
        return clusters
    }

    /// The images `rows` with their own distinct captions, in order of first use: one shard part.
    func part(rows: [Int]) throws -> ShardPart {
        let pixels = try chunks.gather("images", rows: rows)  // [n, C, S, S]
        var local: [Int: Int] = [:], ids: [Int] = [], index: [Int64] = []
        for r in rows {
            let g = captions.caption(ofRow: r)
            if local[g] == nil { local[g] = ids.count; ids.append(g) }
            index.append(Int64(local[g]!))
        }
        let (tokens, mask) = try captions.tokens(of: ids)  // [u, T, D], [u, T]
        return ShardPart(images: pixels, captionIndex: try Tensor(index), textEmbeddings: tokens, textMask: mask,
                         items: try images.entries(rows.map { kept[$0] }).map {
                             Shard.Item(fileName: $0.fileName, text: $0.text, label: $0.label)
                         })
    }

    /// `grid_<k>.png` (up to 64 images of cluster k, a seeded sample) and `grids.png` (16 per cluster, one row each).
    func writeGrids(assignments: [Int]) throws {
        var rowsSheet: [Tensor] = []
        for (cluster, rows) in members(assignments).enumerated() {
            let order = ShardLoader.permutation(count: rows.count, seed: config.seed &+ UInt64(cluster), epoch: 0)
            let picked = try chunks.gather("images", rows: order.prefix(64).map { rows[$0] })  // [≤64, C, S, S]
            let grid = try ImageGrid.grid(picked, columns: 8)
            try AtomicFile.write(try grid.pngData(), to: folder.appendingPathComponent(Partitioner.gridName(cluster: cluster)))
            rowsSheet.append(try picked.slice(0, 0, min(16, picked.size(0))))
        }
        let all = try ContactSheet.rowsSheet(rowsSheet, columns: 16)
        try AtomicFile.write(try all.pngData(), to: folder.appendingPathComponent(Partitioner.gridsName))
    }
}
