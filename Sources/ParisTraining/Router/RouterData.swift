import Foundation
import ParisRun
import ParisData
import ParisModels
import Torch

/// The router's data: every cluster's shard (the router is the one job that reads all K), each split into a
/// training part and a held-out part, with the cluster index as the label, and each image's caption as its pooled
/// embedding (`TextCondition.pooled()` of the shard's caption tokens) for a text-conditioned router.
///
/// - Held out: from each shard, the first ⌈fraction·N_k⌉ rows of a permutation drawn from (seed, k) (at least one
///   row when the shard has two or more images, and never the whole shard), so the split is the same on every
///   machine and every resume.
/// - Sampling: natural proportions. Each epoch is one permutation of the union of the training rows, so cluster k
///   is seen with probability N_k / N. That is what the mixture needs: the router must estimate the posterior
///   p(k | x_t) = p(k)·p_t(x_t | k) / p_t(x_t), prior included (DDM eq. 7); balanced sampling would learn a
///   uniform prior instead and over-weight the small clusters' experts at sampling time.
/// - Memory: nothing is loaded up front. Each batch's rows (training or held-out) are gathered from the shards'
///   parts, which are memory-mapped the first time a batch touches them and checked against their checksums then;
///   captions are pooled per batch. What grows with the shards is the row maps (8 bytes per row of each split),
///   the current epoch's permutation (8 bytes per training row) and the list of parts (`rowMapBytes`).
public final class RouterDataset {
    /// K.
    public let numClusters: Int
    public let channels: Int
    public let imageSize: Int
    /// Per cluster: (training rows, held-out rows).
    public let counts: [(train: Int, heldOut: Int)]
    /// Every shard's info, index k = cluster k.
    public let infos: [ShardInfo]

    private let rows: RouterRows
    /// Training rows: each cluster's in increasing row order, cluster 0's first; held-out rows likewise.
    private let train: RouterRows.RowMap
    private let heldOutRows: RouterRows.RowMap
    /// The permutation of the training rows of the epoch last read (drawn again only when the epoch changes).
    private var order: (epoch: Int, seed: UInt64, rows: [Int])?

    public var trainCount: Int { train.count }
    public var heldOutCount: Int { heldOutRows.count }
    /// The cluster of each held-out row, in held-out order.
    public var heldOutClusters: [Int] { counts.indices.flatMap { Array(repeating: $0, count: counts[$0].heldOut) } }
    /// The bytes of the row maps and of the epoch's permutation (drawn by the first batch): the only memory that
    /// grows with the shards (besides the list of parts).
    public var rowMapBytes: Int { train.bytes + heldOutRows.bytes + trainCount * MemoryLayout<Int>.size }
    /// The parts mapped so far (a part is mapped by the first batch that reads a row of it).
    public var mappedParts: Int { rows.openCount }

    /// Opens shards `shard_0 … shard_{K-1}` of `partition` (their `shard.json` only), checking that there are
    /// exactly K of them, that each belongs to its cluster and says K clusters, and that all hold images of the
    /// same shape. Parts are read, and verified, by the batches.
    public init(partition: URL, numClusters k: Int, heldOutFraction: Double, seed: UInt64,
                verifyChecksums: Bool = true) throws {
        guard k >= 1 else { throw RunError("the router needs at least one cluster, not \(k)") }
        guard (0..<1).contains(heldOutFraction) else {
            throw RunError("the held-out fraction must be in [0, 1), not \(heldOutFraction)")
        }
        let fm = FileManager.default
        guard fm.fileExists(atPath: partition.path) else {
            throw RunError("\(partition.path): the partition folder does not exist; run `paris partition` first")
        }
        let extra = ((try? fm.contentsOfDirectory(atPath: partition.path)) ?? [])
            .compactMap { name -> Int? in name.hasPrefix("shard_") ? Int(name.dropFirst(6)) : nil }
            .filter { $0 >= k }.sorted()
        if let first = extra.first {
            throw RunError("run.json says num_experts = \(k), but \(partition.path) holds shard_\(first) "
                + "(\(extra.count + k) shards found); the partition was made for another K")
        }
        var infos: [ShardInfo] = [], readers: [ShardReader] = []
        for c in 0..<k {
            let folder = partition.appendingPathComponent(Shard.folderName(cluster: c))
            guard fm.fileExists(atPath: folder.appendingPathComponent(Shard.infoName).path) else {
                throw RunError("shard \(c) is missing: \(folder.path) has no \(Shard.infoName) "
                    + "(run.json says num_experts = \(k), so the router needs shard_0 … shard_\(k - 1))")
            }
            let reader: ShardReader
            do { reader = try ShardReader(folder: folder, expectedCluster: c, verifyChecksums: verifyChecksums) } catch {
                throw RunError("shard \(c): \(error)")
            }
            let info = reader.info
            guard info.numClusters == k else {
                throw RunError("\(folder.path) belongs to a partition into \(info.numClusters) clusters, but run.json "
                    + "says num_experts = \(k)")
            }
            if let first = infos.first, first.channels != info.channels || first.imageSize != info.imageSize {
                throw RunError("shard \(c) holds \(info.channels)×\(info.imageSize)×\(info.imageSize) images, shard 0 "
                    + "\(first.channels)×\(first.imageSize)×\(first.imageSize); the router needs one shape")
            }
            if let first = infos.first, first.latents != info.latents {
                throw RunError("shard \(c) holds \(info.contentSummary), shard 0 \(first.contentSummary); the router "
                    + "needs one kind of data")
            }
            guard info.count >= 1 else { throw RunError("shard \(c) (\(folder.path)) holds no images") }
            infos.append(info)
            readers.append(reader)
        }
        rows = RouterRows(readers: readers)
        var train = RouterRows.RowMap(), heldOut = RouterRows.RowMap(), counts: [(Int, Int)] = []
        for (c, info) in infos.enumerated() {
            let n = info.count
            let held = n < 2 ? 0 : min(n - 1, max(heldOutFraction > 0 ? 1 : 0, Int((heldOutFraction * Double(n)).rounded(.up))))
            // The first `held` rows of the shard's permutation are held out; both splits keep increasing row order.
            var isHeld = [Bool](repeating: false, count: n)
            for r in ShardLoader.permutation(count: n, seed: seed ^ 0x5EED_4E1D_0000_0000, epoch: c).prefix(held) {
                isHeld[r] = true
            }
            rows.appendRows(of: c, to: &train) { !isHeld[$0] }
            rows.appendRows(of: c, to: &heldOut) { isHeld[$0] }
            counts.append((n - held, held))
        }
        numClusters = k
        channels = infos[0].channels
        imageSize = infos[0].imageSize
        self.counts = counts.map { (train: $0.0, heldOut: $0.1) }
        self.infos = infos
        self.train = train
        heldOutRows = heldOut
    }

    /// The training batch at `cursor` (whole batches only, like `ShardLoader`): images [B, C, H, W] float32 in
    /// [-1, 1], labels [B] int64 and, when `captions`, pooled captions [B, D] float32, on `device`, and the cursor
    /// after it. Its rows are gathered from the parts they live in.
    public func batch(at cursor: LoaderCursor, size b: Int, seed: UInt64, device: Device, captions: Bool = true) throws
        -> (images: Tensor, labels: Tensor, text: Tensor?, next: LoaderCursor) {
        let n = trainCount
        guard b >= 1, b <= n else {
            throw RunError("the router's batch size \(b) does not fit its \(n) training images; lower batch_size")
        }
        if order?.epoch != cursor.epoch || order?.seed != seed {
            order = (cursor.epoch, seed, ShardLoader.permutation(count: n, seed: seed, epoch: cursor.epoch))
        }
        guard cursor.position >= 0, cursor.position + b <= n else {
            throw RunError("loader cursor \(cursor) does not fit \(n) training images")
        }
        let picked = Array(order!.rows[cursor.position..<(cursor.position + b)])
        var next = LoaderCursor(epoch: cursor.epoch, position: cursor.position + b)
        if next.position + b > n { next = LoaderCursor(epoch: cursor.epoch + 1, position: 0) }
        let (images, labels, text) = try rows.gather(picked, of: train, captions: captions, device: device)
        return (images, labels, text, next)
    }

    /// Held-out rows `range` as images [n, C, H, W] float32 in [-1, 1], labels [n] int64 and, when `captions`,
    /// pooled captions [n, D] float32 on `device`, gathered from the parts.
    public func heldOut(_ range: Range<Int>, device: Device, captions: Bool = true) throws
        -> (images: Tensor, labels: Tensor, text: Tensor?) {
        guard range.lowerBound >= 0, range.upperBound <= heldOutCount else {
            throw RunError("held-out rows \(range) outside 0..<\(heldOutCount)")
        }
        return try rows.gather(Array(range), of: heldOutRows, captions: captions, device: device)
    }
}
