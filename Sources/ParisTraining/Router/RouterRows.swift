import Foundation
import ParisRun
import ParisData
import ParisModels
import Torch

/// Where the router's rows live, and the batches gathered from there: the K shards' parts, mapped the first time a
/// batch touches them (safetensors are memory-mapped, so only the rows read are paged in, and nothing is copied
/// until a batch's rows are gathered), and one compact row map per split.
///
/// Nothing here grows with the shards but the row maps (`RowMap`, 8 bytes per row) and the list of parts.
final class RouterRows {
    /// Rows of a split in their order: row i is row `row[i]` of part `part[i]` (an index into `RouterRows.parts`).
    struct RowMap {
        var part: [Int32] = []
        var row: [Int32] = []
        var count: Int { part.count }
        /// Bytes the map holds: two Int32 per row.
        var bytes: Int { count * 2 * MemoryLayout<Int32>.size }

        mutating func append(part p: Int, row r: Int) {
            part.append(Int32(p))
            row.append(Int32(r))
        }
    }

    /// One reader per cluster (index k = cluster k); checksums are verified by the reader the first time it reads a
    /// part.
    let readers: [ShardReader]
    /// Every part of every shard, in cluster order: its cluster and its index in that cluster's reader.
    let parts: [(cluster: Int, index: Int)]
    /// The first entry of `parts` of each cluster.
    let firstPart: [Int]
    private var open: [ShardPart?]

    init(readers: [ShardReader]) {
        self.readers = readers
        var parts: [(cluster: Int, index: Int)] = [], first: [Int] = []
        for (c, reader) in readers.enumerated() {
            first.append(parts.count)
            parts += reader.parts.indices.map { (cluster: c, index: $0) }
        }
        self.parts = parts
        firstPart = first
        open = Array(repeating: nil, count: parts.count)
    }

    /// The parts mapped so far.
    var openCount: Int { open.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// Part p's tensors (its items are never read), mapped on first use and kept.
    func part(_ p: Int) throws -> ShardPart {
        if let part = open[p] { return part }
        let (c, i) = parts[p]
        let part: ShardPart
        do { part = try readers[c].part(i, items: false) } catch { throw RunError("shard \(c): \(error)") }
        open[p] = part
        return part
    }

    /// Appends the rows of cluster c's shard for which `keep(row)` holds, in increasing order, to `map`.
    func appendRows(of c: Int, to map: inout RowMap, where keep: (Int) -> Bool) {
        var start = 0
        for (i, ref) in readers[c].parts.enumerated() {
            for r in 0..<ref.count where keep(start + r) { map.append(part: firstPart[c] + i, row: r) }
            start += ref.count
        }
    }

    /// The rows `rows` of `map` (in that order): images [B, C, H, W] float32 in [-1, 1] (latents: as they are),
    /// labels [B] int64 (the cluster of each row) and, when `captions`, the pooled captions [B, D] float32
    /// (`TextCondition.pooled()` of each row's caption tokens), all on `device`.
    func gather(_ rows: [Int], of map: RowMap, captions: Bool, device: Device) throws
        -> (images: Tensor, labels: Tensor, text: Tensor?) {
        if rows.isEmpty {
            let i = readers[0].info
            return (try Tensor.zeros([0, i.channels, i.imageSize, i.imageSize], device: device),
                    try Tensor.zeros([0], dtype: .int64, device: device),
                    captions ? try Tensor.zeros([0, i.textDim], device: device) : nil)
        }
        let picks = rows.map { (part: Int(map.part[$0]), row: Int(map.row[$0])) }
        let stored = try ShardPart.gather(picks, text: captions, from: part)
        // [B, C, H, W] uint8 → float32 in [-1, 1] (float16 latents → float32)
        let images = try ShardPart.modelInput(stored.images).to(device: device)
        let labels = try Tensor(picks.map { Int64(parts[$0.part].cluster) }).to(device: device)  // [B]
        var text: Tensor? = nil
        if let tokens = stored.tokens {
            // tokens [B, T, D] float16, mask [B, T] → [B, D] float32
            text = try TextCondition(tokens: tokens, mask: stored.mask).pooled().to(device: device)
        }
        return (images, labels, text)
    }
}
