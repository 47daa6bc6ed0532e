import Foundation

/// The distinct captions of a partition's images, in order of first appearance, found without holding every caption:
/// per image it keeps the index of its caption (4 bytes), and per distinct caption the row where it first appears
/// (its text is read from metadata.jsonl there) and a hash of its text. A caption whose hash was seen before is
/// compared with that caption's text exactly, so two captions whose hashes collide stay two captions. The texts
/// of the first distinct captions, up to `cacheBytes`, are kept to compare with (a dataset that repeats a few
/// hundred captions a million times never reads one back); the others are read back when their hash is seen again.
///
/// Captions are compared as Swift strings are (canonical equivalence), as the dictionary this replaces did.
struct DistinctCaptions {
    /// The caption of each row (image): an index of a distinct caption.
    private(set) var captionOf: [Int32] = []
    /// The first row of each distinct caption.
    private(set) var firstRow: [Int32] = []
    /// The texts of distinct captions 0..<cached.count.
    private var cached: [String] = []
    private var cachedBytes = 0
    /// The distinct caption of each hash (the first one with it) and, for a hash two captions share, the others.
    private var byHash: [Int: Int32] = [:]
    private var collided: [String: Int32] = [:]
    let cacheBytes: Int
    let hash: (String) -> Int

    static let defaultCacheBytes = 32 << 20

    init(cacheBytes: Int = DistinctCaptions.defaultCacheBytes,
         hash: @escaping (String) -> Int = { var h = Hasher(); h.combine($0); return h.finalize() }) {
        self.cacheBytes = cacheBytes
        self.hash = hash
    }

    /// The number of distinct captions.
    var count: Int { firstRow.count }

    /// Adds the caption of the next row (row `captionOf.count`). `text(row)` reads an earlier row's caption back.
    mutating func add(_ text: String, reading: (Int) throws -> String) throws {
        let key = hash(text)
        if let id = byHash[key] {
            if try self.text(Int(id), reading: reading) == text {
                captionOf.append(id)
                return
            }
            if let other = collided[text] {
                captionOf.append(other)
                return
            }
            collided[text] = Int32(count)
        } else {
            byHash[key] = Int32(count)
        }
        guard count < Int32.max, captionOf.count < Int32.max else {
            throw PartitionError("more than \(Int32.max) images or captions; a partition holds fewer")
        }
        if cached.count == count, cachedBytes + text.utf8.count + 16 <= cacheBytes {
            cached.append(text)
            cachedBytes += text.utf8.count + 16
        }
        captionOf.append(Int32(count))
        firstRow.append(Int32(captionOf.count - 1))
    }

    /// The text of distinct caption `id`, kept or read back from its first row.
    func text(_ id: Int, reading: (Int) throws -> String) throws -> String {
        id < cached.count ? cached[id] : try reading(Int(firstRow[id]))
    }

    /// Drops what only `add` needs (the hashes), once every row is added.
    mutating func finish() {
        byHash = [:]
        collided = [:]
    }

    /// The distinct captions of `rows` of `images` (a partition's rows: images' rows, in order), read in one pass.
    static func find(in images: ImageFolder, rows: [Int], cacheBytes: Int = defaultCacheBytes) throws -> DistinctCaptions {
        let reader = try ImageFolder.Reader(images), back = try ImageFolder.Reader(images)
        var distinct = DistinctCaptions(cacheBytes: cacheBytes)
        for row in rows {
            try distinct.add(try reader.entry(row).text) { try back.entry(rows[$0]).text }
        }
        distinct.finish()
        return distinct
    }
}
