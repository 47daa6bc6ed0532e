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
public final class RouterDataset {
    /// K.
    public let numClusters: Int
    public let channels: Int
    public let imageSize: Int
    /// Per cluster: (training rows, held-out rows).
    public let counts: [(train: Int, heldOut: Int)]
    /// Training images [N_train, C, H, W] uint8 and labels [N_train] int64.
    public let trainImages: Tensor
    public let trainLabels: Tensor
    /// Held-out images [N_eval, C, H, W] uint8 and labels [N_eval] int64.
    public let heldOutImages: Tensor
    public let heldOutLabels: Tensor
    /// The pooled embeddings [U, D] float32 of every shard's distinct captions (shard 0's first), and the row of
    /// each training image's [N_train] and held-out image's [N_eval] caption in it (int64).
    public let captionEmbeddings: Tensor
    public let trainCaptions: Tensor
    public let heldOutCaptions: Tensor
    /// Every shard's info, index k = cluster k.
    public let infos: [ShardInfo]

    public var trainCount: Int { trainImages.size(0) }
    public var heldOutCount: Int { heldOutImages.size(0) }

    /// Loads shards `shard_0 … shard_{K-1}` of `partition`, checking that there are exactly K of them, that each
    /// belongs to its cluster and says K clusters, and that all hold images of the same shape.
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
        var infos: [ShardInfo] = [], trainX: [Tensor] = [], trainY: [Tensor] = [], evalX: [Tensor] = []
        var evalY: [Tensor] = [], counts: [(Int, Int)] = []
        var captionTables: [Tensor] = [], trainC: [Tensor] = [], evalC: [Tensor] = [], captionOffset = 0
        for c in 0..<k {
            let folder = partition.appendingPathComponent(Shard.folderName(cluster: c))
            guard fm.fileExists(atPath: folder.appendingPathComponent(Shard.infoName).path) else {
                throw RunError("shard \(c) is missing: \(folder.path) has no \(Shard.infoName) "
                    + "(run.json says num_experts = \(k), so the router needs shard_0 … shard_\(k - 1))")
            }
            let shard: Shard
            do { shard = try Shard.load(from: folder, expectedCluster: c, verifyChecksums: verifyChecksums) } catch {
                throw RunError("shard \(c): \(error)")
            }
            let info = shard.info
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
            let n = info.count
            let held = n < 2 ? 0 : min(n - 1, max(heldOutFraction > 0 ? 1 : 0, Int((heldOutFraction * Double(n)).rounded(.up))))
            let perm = ShardLoader.permutation(count: n, seed: seed ^ 0x5EED_4E1D_0000_0000, epoch: c)
            let evalRows = perm.prefix(held).sorted(), trainRows = perm.dropFirst(held).sorted()
            trainX.append(try shard.images.indexSelect(dim: 0, index: Tensor(trainRows.map { Int64($0) })))
            trainY.append(try Tensor.full([trainRows.count], Double(c), dtype: .int64))
            // The shard's distinct captions pooled [U_k, D]; image rows → rows of the joint table.
            captionTables.append(try TextCondition(tokens: shard.textEmbeddings, mask: shard.textMask).pooled())
            let captionRow = try shard.captionIndex + captionOffset  // [N_k] int64
            captionOffset += shard.textEmbeddings.size(0)
            trainC.append(try captionRow.indexSelect(dim: 0, index: Tensor(trainRows.map { Int64($0) })))
            if held > 0 {
                evalX.append(try shard.images.indexSelect(dim: 0, index: Tensor(evalRows.map { Int64($0) })))
                evalY.append(try Tensor.full([held], Double(c), dtype: .int64))
                evalC.append(try captionRow.indexSelect(dim: 0, index: Tensor(evalRows.map { Int64($0) })))
            }
            counts.append((trainRows.count, held))
            infos.append(info)
        }
        let first = infos[0]
        numClusters = k
        channels = first.channels
        imageSize = first.imageSize
        self.counts = counts.map { (train: $0.0, heldOut: $0.1) }
        self.infos = infos
        trainImages = try Tensor.cat(trainX, dim: 0)
        trainLabels = try Tensor.cat(trainY, dim: 0)
        let empty = try Tensor.zeros([0, first.channels, first.imageSize, first.imageSize], dtype: first.dataType)
        heldOutImages = try evalX.isEmpty ? empty : Tensor.cat(evalX, dim: 0)
        heldOutLabels = try evalY.isEmpty ? Tensor.zeros([0], dtype: .int64) : Tensor.cat(evalY, dim: 0)
        captionEmbeddings = try Tensor.cat(captionTables, dim: 0)
        trainCaptions = try Tensor.cat(trainC, dim: 0)
        heldOutCaptions = try evalC.isEmpty ? Tensor.zeros([0], dtype: .int64) : Tensor.cat(evalC, dim: 0)
    }

    /// The training batch at `cursor` (whole batches only, like `ShardLoader`): images [B, C, H, W] float32 in
    /// [-1, 1], labels [B] int64 and pooled captions [B, D] float32, on `device`, and the cursor after it.
    public func batch(at cursor: LoaderCursor, size b: Int, seed: UInt64, device: Device) throws
        -> (images: Tensor, labels: Tensor, text: Tensor, next: LoaderCursor) {
        let n = trainCount
        guard b >= 1, b <= n else {
            throw RunError("the router's batch size \(b) does not fit its \(n) training images; lower batch_size")
        }
        let perm = ShardLoader.permutation(count: n, seed: seed, epoch: cursor.epoch)
        guard cursor.position >= 0, cursor.position + b <= n else {
            throw RunError("loader cursor \(cursor) does not fit \(n) training images")
        }
        let rows = try Tensor(perm[cursor.position..<(cursor.position + b)].map { Int64($0) })
        var next = LoaderCursor(epoch: cursor.epoch, position: cursor.position + b)
        if next.position + b > n { next = LoaderCursor(epoch: cursor.epoch + 1, position: 0) }
        // [B, C, H, W] uint8 → float32 in [-1, 1] (float16 latents → float32)
        let images = try ShardPart.modelInput(trainImages.indexSelect(dim: 0, index: rows))
            .to(device: device)
        let labels = try trainLabels.indexSelect(dim: 0, index: rows).to(device: device)
        let text = try captionEmbeddings.indexSelect(dim: 0, index: trainCaptions.indexSelect(dim: 0, index: rows))
            .to(device: device)  // [B, D]
        return (images, labels, text, next)
    }

    /// Held-out rows `range` as images [n, C, H, W] float32 in [-1, 1], labels [n] int64 and pooled captions
    /// [n, D] float32 on `device`.
    public func heldOut(_ range: Range<Int>, device: Device) throws -> (images: Tensor, labels: Tensor, text: Tensor) {
        let rows = try Tensor(range.map { Int64($0) })
        let images = try ShardPart.modelInput(heldOutImages.indexSelect(dim: 0, index: rows))
            .to(device: device)
        let text = try captionEmbeddings.indexSelect(dim: 0, index: heldOutCaptions.indexSelect(dim: 0, index: rows))
        return (images, try heldOutLabels.indexSelect(dim: 0, index: rows).to(device: device), try text.to(device: device))
    }
}
