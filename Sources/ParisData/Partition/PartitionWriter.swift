import Foundation
import ParisImage
import Torch

/// Writes a partition's shards and grids into its (temporary) folder.
struct PartitionWriter {
    var folder: URL
    let config: PartitionConfig
    let dataset: URL
    let entries: [ImageFolder.Entry]
    /// [N, C, S, S] uint8.
    let images: Tensor
    /// N rows of `tokens`.
    let captionOf: [Int]
    /// [U, T, D] float16 and [U, T] bool, one row per distinct caption.
    let tokens: Tensor
    let mask: Tensor
    let captionEncoder: String

    /// The rows of each cluster, in metadata order (rows assigned -1 are left out).
    func members(_ assignments: [Int]) -> [[Int]] {
        var rows = [[Int]](repeating: [], count: config.numClusters)
        for (i, a) in assignments.enumerated() where a >= 0 { rows[a].append(i) }
        return rows
    }

    /// One `shard_<k>/` per cluster; returns the manifest's cluster entries (checksums read back from shard.json).
    func writeShards(assignments: [Int], log: (String) -> Void) throws -> [PartitionManifest.Cluster] {
        let k = config.numClusters
        var clusters: [PartitionManifest.Cluster] = []
        for (cluster, rows) in members(assignments).enumerated() {
            // The shard's own distinct captions, in order of first appearance.
            var local: [Int: Int] = [:], globalRows: [Int64] = [], index: [Int64] = []
            for r in rows {
                let g = captionOf[r]
                if local[g] == nil { local[g] = globalRows.count; globalRows.append(Int64(g)) }
                index.append(Int64(local[g]!))
            }
            let rowTensor = try Tensor(rows.map { Int64($0) })
            let captionRows = try Tensor(globalRows)
            let info = ShardInfo(cluster: cluster, numClusters: k, count: rows.count, channels: config.channels,
                                 imageSize: config.imageSize, captionCount: globalRows.count,
                                 textEncoder: captionEncoder, textLength: tokens.size(1), textDim: tokens.size(2),
                                 dataset: dataset.lastPathComponent, partitionMethod: config.method.rawValue)
            var labels: [String: Int] = [:]
            let items = rows.map { r -> Shard.Item in
                let e = entries[r]
                if let l = e.label { labels[l, default: 0] += 1 }
                return Shard.Item(fileName: e.fileName, text: e.text, label: e.label)
            }
            let shard = try Shard(info: info, images: try images.indexSelect(dim: 0, index: rowTensor).contiguous(),
                                  captionIndex: try Tensor(index),
                                  textEmbeddings: try tokens.indexSelect(dim: 0, index: captionRows).contiguous(),
                                  textMask: try mask.indexSelect(dim: 0, index: captionRows).contiguous(),
                                  items: items)
            let name = Shard.folderName(cluster: cluster)
            let shardFolder = folder.appendingPathComponent(name)
            try shard.write(to: shardFolder)
            let written = try Shard.info(at: shardFolder)
            clusters.append(.init(index: cluster, size: rows.count, shard: name, labels: labels,
                                  checksums: written.checksums))
            log("shard \(cluster): \(rows.count) images, \(globalRows.count) captions")
        }
        return clusters
    }

    /// `grid_<k>.png` (up to 64 images of cluster k, a seeded sample) and `grids.png` (16 per cluster, one row each).
    func writeGrids(assignments: [Int]) throws {
        var rowsSheet: [Tensor] = []
        for (cluster, rows) in members(assignments).enumerated() {
            let order = ShardLoader.permutation(count: rows.count, seed: config.seed &+ UInt64(cluster), epoch: 0)
            let sample = order.prefix(64).map { Int64(rows[$0]) }
            let picked = try images.indexSelect(dim: 0, index: try Tensor(sample))  // [≤64, C, S, S]
            let grid = try ImageGrid.grid(picked, columns: 8)
            try AtomicFile.write(try grid.pngData(), to: folder.appendingPathComponent(Partitioner.gridName(cluster: cluster)))
            rowsSheet.append(try picked.slice(0, 0, min(16, picked.size(0))))
        }
        let all = try ContactSheet.rowsSheet(rowsSheet, columns: 16)
        try AtomicFile.write(try all.pngData(), to: folder.appendingPathComponent(Partitioner.gridsName))
    }
}
