import Foundation
import Torch

/// Reads a shard (or several, one after another, as the monolith does) part by part, never all of it at once.
///
/// Opening reads only the `shard.json` files. `part(i)` maps part i's files (safetensors are memory-mapped, so only
/// the rows a batch touches are paged in) and, the first time this reader reads that part, checks every file of it
/// against its checksum, naming the file that fails. A reader only opens files inside the folders it was given, so
/// a job reads its own shard's folder and nothing else.
public final class ShardReader: @unchecked Sendable {
    /// Where each part lives: its shard folder and stem (nil: a v1 shard's single-file layout).
    public struct PartRef: Sendable, Equatable {
        public let folder: URL
        public let name: String?
        public let count: Int
        /// Index of its shard in `infos`.
        public let shard: Int
    }

    /// One `shard.json` per folder, in the order given.
    public let infos: [ShardInfo]
    /// Every part of every shard, in row order.
    public let parts: [PartRef]
    /// Rows of all parts, N.
    public let count: Int
    public let verifyChecksums: Bool

    private let lock = NSLock()
    private var verified = Set<Int>()

    /// Opens the shards in `folders`. `expectedClusters`: refuse a folder that holds another cluster's shard.
    public init(folders: [URL], expectedClusters: [Int]? = nil, verifyChecksums: Bool = true) throws {
        guard !folders.isEmpty else { throw DatasetImportError("no shard folders to read") }
        var infos: [ShardInfo] = [], parts: [PartRef] = []
        for (s, folder) in folders.enumerated() {
            let info = try Shard.info(at: folder)
            try info.validate(origin: folder.path)
            if info.format == ShardInfo.currentFormat && info.parts == nil {
                throw DatasetImportError("\(folder.path): a \(info.format) \(Shard.infoName) lists no parts")
            }
            if let want = expectedClusters?[s], info.cluster != want {
                throw DatasetImportError("\(folder.path) holds the shard of cluster \(info.cluster), not of cluster \(want)")
            }
            if let first = infos.first {
                guard (first.channels, first.imageSize, first.textLength, first.textDim)
                        == (info.channels, info.imageSize, info.textLength, info.textDim),
                      first.textEncoder == info.textEncoder else {
                    throw DatasetImportError("shards \(first.cluster) and \(info.cluster) differ in image or text shape "
                        + "(\(first.channels)×\(first.imageSize)², \(first.textLength)×\(first.textDim) "
                        + "\(first.textEncoder) vs \(info.channels)×\(info.imageSize)², \(info.textLength)×"
                        + "\(info.textDim) \(info.textEncoder))")
                }
            }
            if let first = infos.first, first.kind != info.kind || first.latents != info.latents {
                throw DatasetImportError("shards \(first.cluster) and \(info.cluster) hold different data (\(first.contentSummary) "
                    + "vs \(info.contentSummary)); encode every shard with the same autoencoder")
            }
            if let list = info.parts {
                parts += list.map { PartRef(folder: folder, name: $0.name, count: $0.count, shard: s) }
            } else if info.count > 0 {
                parts.append(PartRef(folder: folder, name: nil, count: info.count, shard: s))
            }
            infos.append(info)
        }
        self.infos = infos
        self.parts = parts
        self.count = parts.reduce(0) { $0 + $1.count }
        self.verifyChecksums = verifyChecksums
    }

    public convenience init(folder: URL, expectedCluster: Int? = nil, verifyChecksums: Bool = true) throws {
        try self.init(folders: [folder], expectedClusters: expectedCluster.map { [$0] }, verifyChecksums: verifyChecksums)
    }

    /// The first shard's info (channels, image size, text shape and encoder are the same for all).
    public var info: ShardInfo { infos[0] }

    /// Part i, checked against its checksums the first time this reader reads it, and against the shard's shapes.
    /// `items`: false maps only the tensors and leaves the items unread (`items` is empty; its file is still
    /// verified), for a consumer that keeps many parts open and needs no provenance (the router's data).
    public func part(_ i: Int, items: Bool = true) throws -> ShardPart {
        let ref = parts[i], info = infos[ref.shard]
        lock.lock()
        let check = verifyChecksums && !verified.contains(i)
        lock.unlock()
        let part = try ShardPart.read(folder: ref.folder, name: ref.name, checksums: check ? info.checksums : nil,
                                      items: items)
        let origin = ref.folder.appendingPathComponent(ref.name.map(ShardPart.tensorsName) ?? Shard.imagesName).path
        guard !items || part.count == ref.count else {
            throw DatasetImportError("\(origin): holds \(part.count) images, \(Shard.infoName) says \(ref.count)")
        }
        try part.validate(channels: info.channels, imageSize: info.imageSize, textLength: info.textLength,
                          textDim: info.textDim, dtype: info.dataType, count: ref.count, origin: origin)
        if check {
            lock.lock()
            verified.insert(i)
            lock.unlock()
        }
        return part
    }

    /// Every part joined into one (`Shard.load`, and a one-part shard's sample-grid captions). The router's data and
    /// the evaluation read parts instead (`part(_:items:)`), so that their memory does not grow with the shard.
    public func readAll() throws -> ShardPart {
        guard !parts.isEmpty else {
            let i = info
            return ShardPart(images: try Tensor.zeros([0, i.channels, i.imageSize, i.imageSize], dtype: i.dataType),
                             captionIndex: try Tensor.zeros([0], dtype: .int64),
                             textEmbeddings: try Tensor.zeros([0, i.textLength, i.textDim], dtype: .float16),
                             textMask: try Tensor.zeros([0, i.textLength], dtype: .bool), items: [])
        }
        return try ShardPart.concatenated(try parts.indices.map { try part($0) })
    }
}

/// A reader's rows visited in increasing order, one part at a time: only the part holding the current row is held
/// (with its items), parts that hold none of the rows visited are never read, and the rows taken are kept.
public final class ShardRowWalk {
    public let reader: ShardReader
    private var index = -1, start = 0, end = 0  // the current part and its rows [start, end)
    private var current: ShardPart?
    private var taken: [Int] = []  // rows of the current part taken so far
    private var pieces: [ShardPart] = []

    public init(_ reader: ShardReader) { self.reader = reader }

    /// The part holding `row` (of all the reader's rows) and the row in it. Rows must not decrease from call to call.
    public func seek(_ row: Int) throws -> (part: ShardPart, row: Int) {
        guard row >= start else {
            throw DatasetImportError("row \(row) comes before the walk's part (rows \(start)..<\(end)); rows must not decrease")
        }
        while row >= end {
            guard index + 1 < reader.parts.count else {
                throw DatasetImportError("row \(row) is outside the \(reader.count) rows of the shard")
            }
            try flush()
            index += 1
            start = end
            end += reader.parts[index].count
        }
        if current == nil { current = try reader.part(index) }
        return (current!, row - start)
    }

    /// Keeps `row` (rows in increasing order, each once) for `takenRows()`.
    public func take(_ row: Int) throws { taken.append(try seek(row).row) }

    /// The rows taken, in order, as one part (only the captions they use), or nil if none was taken.
    public func takenRows() throws -> ShardPart? {
        try flush()
        return pieces.isEmpty ? nil : try ShardPart.concatenated(pieces)
    }

    private func flush() throws {
        if let current, !taken.isEmpty { pieces.append(try current.rows(taken)) }
        current = nil
        taken = []
    }
}
