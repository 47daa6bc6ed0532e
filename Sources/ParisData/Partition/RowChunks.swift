import Foundation
import Torch

/// A table too large to hold at once, kept on disk as numbered safetensors files of consecutive rows
/// (`<prefix>-00000.safetensors`, `<prefix>-00001.safetensors`, …): every tensor of a file has one entry per table
/// row along dim 0. `paris partition` keeps its decoded images, image features, sentence features and caption tokens
/// this way, so memory holds one chunk at a time, never the dataset.
///
/// Files are written atomically (a temporary file renamed into place), so a file that exists is complete, and a
/// partition killed half-way finds the chunks it had finished (`isDone`) and makes only the others.
struct RowChunks {
    let folder: URL
    let prefix: String

    func url(_ i: Int) -> URL {
        folder.appendingPathComponent("\(prefix)-\(String(format: "%05d", i)).safetensors")
    }

    /// Whether chunk i is written and its header reads.
    func isDone(_ i: Int) -> Bool { (try? SafeTensors.header(url(i))) != nil }

    /// The chunks of 0..<count still to make (each file's header read once).
    func missing(of count: Int) -> [Int] { (0..<count).filter { !isDone($0) } }

    /// Writes chunk i (atomically).
    func write(_ i: Int, _ tensors: [String: Tensor], metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        do {
            try SafeTensors.save(tensors, to: url(i), metadata: metadata)
        } catch {
            throw Self.writeFailure(url(i), error, kept: "the chunks written before it are kept")
        }
    }

    /// A write that failed (a full disk, a file-size limit): the file and the OS's reason ("<path>: write failed: No
    /// space left on device"), what was kept, and that running the same command again resumes.
    static func writeFailure(_ url: URL?, _ error: Error, kept: String) -> PartitionError {
        let why = "\(error)"
        let named = url.map { why.hasPrefix($0.path) ? why : "\($0.path): \(why)" } ?? why
        return PartitionError("\(named); \(kept), and running the same command again resumes from them")
    }

    /// Chunks 0..<count, every one of which must be written, with their rows numbered through: chunk i holds rows
    /// starts[i]..<starts[i + 1], counted from the dim 0 of its tensor `rowsOf`.
    func opened(count: Int, rowsOf name: String) throws -> OpenedChunks {
        var starts = [0]
        starts.reserveCapacity(count + 1)
        for i in 0..<count {
            let header: SafeTensorsHeader
            do { header = try SafeTensors.header(url(i)) } catch {
                throw PartitionError("\(url(i).path): unreadable (\(error)); delete it and run again to remake it")
            }
            guard let entry = header.entries.first(where: { $0.name == name }), let rows = entry.shape.first else {
                throw PartitionError("\(url(i).path): no tensor '\(name)'; delete it and run again to remake it")
            }
            starts.append(starts[i] + rows)
        }
        return OpenedChunks(chunks: self, starts: starts)
    }
}

/// Written chunks of a `RowChunks` table, with the row range of each.
struct OpenedChunks {
    let chunks: RowChunks
    /// Chunk i holds rows starts[i]..<starts[i + 1].
    let starts: [Int]

    var count: Int { starts.count - 1 }
    var rows: Int { starts.last ?? 0 }
    func range(_ i: Int) -> Range<Int> { starts[i]..<starts[i + 1] }

    /// Chunk i's tensors (memory-mapped).
    func load(_ i: Int) throws -> SafeTensorsFile {
        do { return try SafeTensors.load(chunks.url(i)) } catch {
            throw PartitionError("\(chunks.url(i).path): unreadable (\(error)); delete it and run again to remake it")
        }
    }

    /// The chunk holding `row` (binary search over the starts).
    func chunk(of row: Int) -> Int {
        var lo = 0, hi = count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= row { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Tensor `name`'s entries for `rows` (any order, repeats allowed), in that order, reading each chunk once.
    /// → [R, ...] on the CPU
    func gather(_ name: String, rows: [Int]) throws -> Tensor {
        guard let last = rows.max(), let first = rows.min(), first >= 0, last < self.rows else {
            if rows.isEmpty { return try empty(name) }
            throw PartitionError("\(chunks.prefix) rows \(rows.min()!)...\(rows.max()!) outside 0..<\(self.rows)")
        }
        var byChunk: [Int: [(position: Int, local: Int64)]] = [:]
        for (position, row) in rows.enumerated() {
            let c = chunk(of: row)
            byChunk[c, default: []].append((position, Int64(row - starts[c])))
        }
        var pieces: [Tensor] = [], positions: [Int64] = []
        for c in byChunk.keys.sorted() {
            let wanted = byChunk[c]!
            let t = try load(c).tensor(name)
            pieces.append(try t.indexSelect(dim: 0, index: try Tensor(wanted.map(\.local))))
            positions += wanted.map { Int64($0.position) }
        }
        let joined = pieces.count == 1 ? pieces[0] : try Tensor.cat(pieces, dim: 0)
        // joined row j belongs at positions[j]: invert that permutation.
        var inverse = [Int64](repeating: 0, count: rows.count)
        for (j, p) in positions.enumerated() { inverse[Int(p)] = Int64(j) }
        if inverse.enumerated().allSatisfy({ Int64($0.offset) == $0.element }) { return try joined.contiguous() }
        return try joined.indexSelect(dim: 0, index: try Tensor(inverse)).contiguous()
    }

    /// No rows of tensor `name`: [0, ...] with the first chunk's trailing shape and dtype.
    func empty(_ name: String) throws -> Tensor {
        guard count > 0 else { throw PartitionError("\(chunks.prefix): no chunks to read '\(name)' from") }
        let header = try SafeTensors.header(chunks.url(0))
        guard let entry = header.entries.first(where: { $0.name == name }), let dtype = entry.dtype else {
            throw PartitionError("\(chunks.url(0).path): no tensor '\(name)'")
        }
        return try Tensor.zeros([0] + entry.shape.dropFirst(), dtype: dtype)
    }
}
