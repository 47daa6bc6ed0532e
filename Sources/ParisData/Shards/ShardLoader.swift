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
    /// [B, C, H, W] float32 in [-1, 1] (pixels), or the latents as float32 (a latent shard).
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

/// Shuffles, batches and prefetches a shard on a background thread, reading it part by part.
///
/// The order of epoch e is drawn from (seed, e) with SplitMix64 generators of its own, so it never depends on, nor
/// disturbs, libtorch's random state:
/// - a shard that fits in one window (N ≤ `window` images) is one global permutation of its N rows, whatever its
///   parts: the order a v1 single-file shard always had, so the same data in one file or in many parts gives the
///   same batches;
/// - a larger shard is streamed: its parts are permuted, grouped in that order into windows of at most `window`
///   images (at least one part each), and each window's rows are permuted; the epoch is the windows one after
///   another. Only the parts of the window being read (and the next, near its end) are open.
/// Only whole batches are served (the epoch's last `N mod B` images wait for a later epoch). A cursor (epoch,
/// position) fully determines what follows, so a resumed job reads exactly the batches an uninterrupted one would.
public final class ShardLoader: @unchecked Sendable {
    /// The default window: as many images as fit in 512 MiB of pixels.
    public static let defaultWindowBytes = 512 << 20

    public let batchSize: Int
    public let seed: UInt64
    /// Images per window.
    public let window: Int
    /// The cursor after the last batch `next()` returned.
    public private(set) var cursor: LoaderCursor

    private let source: Source
    private let capacity: Int
    private let lock = NSCondition()
    private var queue: [Result<ShardBatch, Error>] = []
    private var stopped = false
    private var thread: Thread?
    // Used only by the thread that makes batches.
    private var plan: (epoch: Int, windows: [Window])?
    private var openParts: [Int: ShardPart] = [:]

    /// Where rows come from: a reader's parts, or one shard held in memory.
    enum Source {
        case reader(ShardReader)
        case memory(ShardPart)
        var counts: [Int] {
            switch self {
            case .reader(let r): return r.parts.map(\.count)
            case .memory(let p): return p.count > 0 ? [p.count] : []
            }
        }
        func part(_ i: Int) throws -> ShardPart {
            switch self {
            case .reader(let r): return try r.part(i)
            case .memory(let p): return p
            }
        }
    }

    /// One window of an epoch: its parts (in order), their first global rows, and the permutation of its rows.
    struct Window {
        let parts: [Int]
        let starts: [Int]
        let counts: [Int]
        /// Position of the window's first row in the epoch's order.
        let offset: Int
        let order: [Int]
    }

    /// `prefetch`: batches prepared ahead (0 prepares each batch on the caller's thread). `window`: images per
    /// window (nil: `defaultWindowBytes` of the shard's pixels).
    public convenience init(reader: ShardReader, batchSize: Int, seed: UInt64, start: LoaderCursor = .init(), prefetch: Int = 2,
                window: Int? = nil) throws {
        let i = reader.info
        try self.init(source: .reader(reader), count: reader.count, cluster: i.cluster, batchSize: batchSize,
                      seed: seed, start: start, prefetch: prefetch,
                      window: window ?? max(1, Self.defaultWindowBytes / (i.channels * i.imageSize * i.imageSize
                                                                    * (i.kind == .latents ? 2 : 1))))
    }

    /// A loader over a shard held in memory (one window).
    public convenience init(shard: Shard, batchSize: Int, seed: UInt64, start: LoaderCursor = .init(),
                            prefetch: Int = 2) throws {
        try self.init(source: .memory(shard.part), count: shard.info.count, cluster: shard.info.cluster,
                      batchSize: batchSize, seed: seed, start: start, prefetch: prefetch, window: max(1, shard.info.count))
    }

    private init(source: Source, count: Int, cluster: Int, batchSize: Int, seed: UInt64, start: LoaderCursor,
                 prefetch: Int, window: Int) throws {
        guard batchSize > 0 else { throw DatasetImportError("batch size must be positive, not \(batchSize)") }
        guard window > 0 else { throw DatasetImportError("the loader window must be positive, not \(window)") }
        guard count >= batchSize else {
            throw DatasetImportError("shard \(cluster) holds \(count) images, fewer than one batch of \(batchSize); "
                + "lower the batch size")
        }
        guard start.epoch >= 0, start.position >= 0, start.position + batchSize <= count else {
            throw DatasetImportError("loader cursor \(start) does not fit a shard of \(count) images")
        }
        self.source = source
        self.batchSize = batchSize
        self.seed = seed
        self.window = window
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
            batch = try make(at: cursor)
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
            let r = Result { try make(at: at) }
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

    /// The windows of epoch `epoch` for parts of `counts` images (see the type's comment).
    static func windows(counts: [Int], window: Int, seed: UInt64, epoch: Int) -> [Window] {
        var starts: [Int] = [], n = 0
        for c in counts { starts.append(n); n += c }
        if n <= window {
            return [Window(parts: Array(counts.indices), starts: starts, counts: counts, offset: 0,
                           order: permutation(count: n, seed: seed, epoch: epoch))]
        }
        let partOrder = permutation(count: counts.count, seed: seed ^ 0x5041_5254, epoch: epoch)  // "PART"
        var groups: [[Int]] = [], current: [Int] = [], size = 0
        for p in partOrder {
            if !current.isEmpty && size + counts[p] > window { groups.append(current); current = []; size = 0 }
            current.append(p)
            size += counts[p]
        }
        if !current.isEmpty { groups.append(current) }
        var out: [Window] = [], offset = 0
        for (w, group) in groups.enumerated() {
            let sizes = group.map { counts[$0] }, total = sizes.reduce(0, +)
            let order = permutation(count: total, seed: seed &+ 0xC2B2_AE3D_27D4_EB4F &* UInt64(w + 1), epoch: epoch)
            out.append(Window(parts: group, starts: group.map { starts[$0] }, counts: sizes, offset: offset, order: order))
            offset += total
        }
        return out
    }

    /// The batch at `cursor`, read from the parts its rows live in.
    private func make(at cursor: LoaderCursor) throws -> ShardBatch {
        let counts = source.counts, n = counts.reduce(0, +)
        if plan?.epoch != cursor.epoch {
            plan = (cursor.epoch, Self.windows(counts: counts, window: window, seed: seed, epoch: cursor.epoch))
        }
        let windows = plan!.windows
        // (part, row in part, global row) of each batch position.
        var picks: [(part: Int, row: Int, global: Int)] = []
        var w = windows.lastIndex { $0.offset <= cursor.position }!
        for position in cursor.position..<(cursor.position + batchSize) {
            while position >= windows[w].offset + windows[w].order.count { w += 1 }
            let win = windows[w]
            var r = win.order[position - win.offset], j = 0
            while r >= win.counts[j] { r -= win.counts[j]; j += 1 }
            picks.append((win.parts[j], r, win.starts[j] + r))
        }
        // Keep open only the parts of the windows this batch touches.
        let needed = Set(picks.map(\.part))
        let touched = Set(windows.filter { win in win.parts.contains { needed.contains($0) } }.flatMap(\.parts))
        openParts = openParts.filter { touched.contains($0.key) }
        let rows = try ShardPart.gather(picks.map { (part: $0.part, row: $0.row) }, text: true) { p in
            if openParts[p] == nil { openParts[p] = try source.part(p) }
            return openParts[p]!
        }
        var after = LoaderCursor(epoch: cursor.epoch, position: cursor.position + batchSize)
        if after.position + batchSize > n { after = LoaderCursor(epoch: cursor.epoch + 1, position: 0) }
        // images: [B, C, H, W] uint8 -> float32 in [-1, 1] (latents: float16 -> float32); text: [B, T, D]; mask: [B, T]
        let images = try ShardPart.modelInput(rows.images)
        let text = try rows.tokens!.to(dtype: .float32)
        return ShardBatch(images: images, text: text, textMask: rows.mask!, indices: picks.map(\.global), cursor: after)
    }

    /// The parts open now (for tests of the memory bound).
    var openPartCount: Int { openParts.count }
}

extension Sequence where Element: Hashable {
    /// The elements in order of first appearance, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
