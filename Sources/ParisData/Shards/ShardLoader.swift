import Foundation
import Torch

/// Where a loader stands: the epoch and the position in that epoch's permutation. Saved with a training state, so a
/// resumed job reads exactly the batches an uninterrupted one would have.
public struct LoaderCursor: Codable, Sendable, Equatable {
    public var epoch: Int
    public var position: Int
    public init(epoch: Int = 0, position: Int = 0) {
        self.epoch = epoch
        self.position = position
    }
}

/// One training batch from a shard.
public struct ShardBatch {
    /// [B, C, H, W] float32 in [-1, 1].
    public let images: Tensor
    /// [B, T, D] float32 caption token embeddings.
    public let text: Tensor
    /// [B, T] bool, true for real tokens.
    public let textMask: Tensor
    /// Rows of the shard in this batch.
    public let indices: [Int]
    /// The cursor just after this batch.
    public let cursor: LoaderCursor
}

/// Shuffles, batches and prefetches a shard on a background thread.
///
/// Each epoch is a permutation of the shard drawn from (seed, epoch) with a SplitMix64 generator of its own, so the
/// order never depends on, nor disturbs, libtorch's random state. Only whole batches are served (the epoch's last
/// `N mod B` images wait for a later epoch's permutation).
public final class ShardLoader: @unchecked Sendable {
    public let batchSize: Int
    public let seed: UInt64
    /// The cursor after the last batch `next()` returned.
    public private(set) var cursor: LoaderCursor

    private let shard: Shard
    private let capacity: Int
    private let lock = NSCondition()
    private var queue: [Result<ShardBatch, Error>] = []
    private var stopped = false
    private var thread: Thread?

    /// `prefetch`: batches prepared ahead (0 prepares each batch on the caller's thread).
    public init(shard: Shard, batchSize: Int, seed: UInt64, start: LoaderCursor = .init(), prefetch: Int = 2) throws {
        guard batchSize > 0 else { throw DatasetImportError("batch size must be positive, not \(batchSize)") }
        guard shard.info.count >= batchSize else {
            throw DatasetImportError("shard \(shard.info.cluster) holds \(shard.info.count) images, fewer than one batch "
                + "of \(batchSize); lower the batch size")
        }
        guard start.epoch >= 0, start.position >= 0, start.position + batchSize <= shard.info.count else {
            throw DatasetImportError("loader cursor \(start) does not fit a shard of \(shard.info.count) images")
        }
        self.shard = shard
        self.batchSize = batchSize
        self.seed = seed
        self.cursor = start
        self.capacity = max(0, prefetch)
        if capacity > 0 {
            let t = Thread { [weak self] in self?.produce(from: start) }
            t.name = "paris.shard-loader"
            thread = t
            t.start()
        }
    }

    deinit { stop() }

    /// Stops the prefetch thread.
    public func stop() {
        lock.lock()
        stopped = true
        lock.broadcast()
        lock.unlock()
    }

    /// The next batch.
    public func next() throws -> ShardBatch {
        let batch: ShardBatch
        if capacity == 0 {
            batch = try Self.make(shard: shard, batchSize: batchSize, seed: seed, at: cursor)
        } else {
            lock.lock()
            while queue.isEmpty && !stopped { lock.wait() }
            guard !queue.isEmpty else { lock.unlock(); throw DatasetImportError("the shard loader was stopped") }
            let r = queue.removeFirst()
            lock.broadcast()
            lock.unlock()
            batch = try r.get()
        }
        cursor = batch.cursor
        return batch
    }

    private func produce(from start: LoaderCursor) {
        var at = start
        while true {
            lock.lock()
            while queue.count >= capacity && !stopped { lock.wait() }
            if stopped { lock.unlock(); return }
            lock.unlock()
            let r = Result { try Self.make(shard: shard, batchSize: batchSize, seed: seed, at: at) }
            lock.lock()
            queue.append(r)
            lock.broadcast()
            lock.unlock()
            guard case .success(let b) = r else { return }
            at = b.cursor
        }
    }

    /// The permutation of epoch `epoch`.
    public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
        var p = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        }
        return p
    }

    static func make(shard: Shard, batchSize: Int, seed: UInt64, at cursor: LoaderCursor) throws -> ShardBatch {
        let n = shard.info.count
        let perm = permutation(count: n, seed: seed, epoch: cursor.epoch)
        let rows = Array(perm[cursor.position..<(cursor.position + batchSize)])
        var after = LoaderCursor(epoch: cursor.epoch, position: cursor.position + batchSize)
        if after.position + batchSize > n { after = LoaderCursor(epoch: cursor.epoch + 1, position: 0) }
        let index = try Tensor(rows.map { Int64($0) })
        // images: [B, C, H, W] uint8 -> float32 in [-1, 1]
        let images = try shard.images.indexSelect(dim: 0, index: index).to(dtype: .float32) / 127.5 - 1
        let captions = try shard.captionIndex.indexSelect(dim: 0, index: index)
        // text: [B, T, D], mask: [B, T]
        let text = try shard.textEmbeddings.indexSelect(dim: 0, index: captions).to(dtype: .float32)
        let mask = try shard.textMask.indexSelect(dim: 0, index: captions)
        return ShardBatch(images: images, text: text, textMask: mask, indices: rows, cursor: after)
    }
}
