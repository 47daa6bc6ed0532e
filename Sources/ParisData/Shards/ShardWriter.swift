import Foundation
import Torch

/// Writes a v2 shard as rows arrive: rows are buffered until `partSize` of them make a part, which is written
/// (atomically) and dropped from memory; `finish` writes the last, shorter part and then `shard.json`, so a shard
/// without `shard.json` is unfinished and is never read. Memory holds at most one part plus the rows appended last.
public final class ShardWriter {
    public static let defaultPartSize = 4096

    public let folder: URL
    public let partSize: Int
    private var info: ShardInfo
    private var pending: [ShardPart] = []
    private var pendingRows = 0
    private var parts: [ShardInfo.Part] = []
    private var checksums: [String: String] = [:]

    /// `info`: the shard's cluster, shapes, encoder and provenance (count, captions, parts and checksums are filled
    /// in as parts are written). The folder is created; one that already holds a shard is refused unless
    /// `overwrite`, and then its old files are removed first.
    public init(folder: URL, info: ShardInfo, partSize: Int = ShardWriter.defaultPartSize, overwrite: Bool = false) throws {
        guard partSize > 0 else { throw DatasetImportError("part size must be positive, not \(partSize)") }
        let fm = FileManager.default
        if fm.fileExists(atPath: folder.appendingPathComponent(Shard.infoName).path) && !overwrite {
            throw DatasetImportError("\(folder.path) already holds a shard; remove it or pass overwrite")
        }
        if fm.fileExists(atPath: folder.path) { try fm.removeItem(at: folder) }
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        self.folder = folder
        self.partSize = partSize
        var info = info
        info.format = ShardInfo.currentFormat
        (info.count, info.captionCount, info.checksums, info.parts) = (0, 0, [:], [])
        self.info = info
    }

    /// Appends rows (checked against the shard's shapes); writes every part they complete.
    public func append(_ rows: ShardPart) throws {
        guard rows.count > 0 else { return }
        try rows.validate(channels: info.channels, imageSize: info.imageSize, textLength: info.textLength,
                          textDim: info.textDim, dtype: info.dataType, origin: "rows for \(folder.path)")
        pending.append(rows)
        pendingRows += rows.count
        while pendingRows >= partSize { try flush(partSize) }
    }

    /// Writes the remaining rows as the last part, then `shard.json` (the checksums of every file in it); returns it.
    @discardableResult
    public func finish() throws -> ShardInfo {
        if pendingRows > 0 { try flush(pendingRows) }
        info.parts = parts
        info.checksums = checksums
        try info.validate(origin: folder.path)
        try AtomicFile.write(try Shard.encode(info), to: folder.appendingPathComponent(Shard.infoName))
        return info
    }

    /// Writes the first `n` pending rows as one part.
    private func flush(_ n: Int) throws {
        let joined = try ShardPart.concatenated(pending)
        let part = n == joined.count ? joined : try joined.rows(Array(0..<n))
        let rest = n == joined.count ? nil : try joined.rows(Array(n..<joined.count))
        let name = ShardPart.name(parts.count)
        checksums.merge(try part.write(to: folder, name: name, cluster: info.cluster)) { $1 }
        parts.append(.init(name: name, count: part.count, captions: part.captions))
        info.count += part.count
        info.captionCount += part.captions
        pending = rest.map { [$0] } ?? []
        pendingRows = rest?.count ?? 0
    }
}
