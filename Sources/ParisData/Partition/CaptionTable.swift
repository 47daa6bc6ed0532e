import Foundation
import Torch

/// The distinct captions of the images a partition keeps, in order of first appearance (`DistinctCaptions`, below: found in
/// one pass over metadata.jsonl, their texts read back from it), and what the partition computes once per distinct
/// caption (not once per image), chunk by chunk into the work folder:
///
/// - `tokens-<i>.safetensors`: `tokens` [u, T, D] float16 and `mask` [u, T] bool, the caption encoder's token
///   embeddings that every shard stores (always);
/// - `sentences-<i>.safetensors`: `features` [u, E] float32, the sentence embeddings text k-means clusters (only for
///   `features: text|both`).
///
/// Chunks hold `chunk_size` captions (a multiple of `batch_size`, so the encoders see the same batches whatever the
/// chunk size); one already written is kept, so a killed partition does not encode its captions again.
struct CaptionTable {
    /// The distinct captions and the caption of each kept image.
    let distinct: DistinctCaptions
    let tokens: OpenedChunks
    let sentences: OpenedChunks?

    /// The number of distinct captions.
    var count: Int { distinct.count }

    /// The caption of kept image `row`: a row of the caption chunks.
    func caption(ofRow row: Int) -> Int { Int(distinct.captionOf[row]) }

    /// The table of the images `rows` of `images` (the kept rows, in order), its chunks made in `folder`.
    static func build(images: ImageFolder, rows: [Int], config: PartitionConfig, encoders: PartitionEncoders,
                      sentences wantsText: Bool, folder: URL, log: (String) -> Void) throws -> CaptionTable {
        let distinct = try DistinctCaptions.find(in: images, rows: rows)
        let size = PartitionImages.chunkEntries(config), count = (distinct.count + size - 1) / size
        func each(_ store: RowChunks, what: String, _ make: ([String]) throws -> [String: Tensor]) throws {
            let missing = store.missing(of: count)
            if missing.count < count { log("\(what): \(count - missing.count) of \(count) chunks already made; resuming") }
            let reader = try ImageFolder.Reader(images)
            for i in missing {
                let ids = (i * size)..<min(distinct.count, (i + 1) * size)
                try store.write(i, try make(try ids.map { id in
                    try distinct.text(id) { try reader.entry(rows[$0]).text }
                }))
                if i == count - 1 || (i + 1) % max(1, count / 10) == 0 {
                    log("\(what): \(ids.upperBound)/\(distinct.count) distinct captions")
                }
            }
        }
        var sentenceChunks: OpenedChunks? = nil
        if wantsText {
            let store = RowChunks(folder: folder, prefix: "sentences")
            try each(store, what: "text features") { texts in
                ["features": try encoders.sentenceEmbeddings(texts, batchSize: config.batchSize).0]
            }
            sentenceChunks = try store.opened(count: count, rowsOf: "features")
        }
        let store = RowChunks(folder: folder, prefix: "tokens")
        try each(store, what: "caption tokens") { texts in
            let (tokens, mask) = try encoders.encodeCaptions(texts, length: config.textLength,
                                                             batchSize: config.batchSize)
            return ["tokens": tokens, "mask": mask]
        }
        return CaptionTable(distinct: distinct, tokens: try store.opened(count: count, rowsOf: "tokens"),
                            sentences: sentenceChunks)
    }

    /// The token width D of the caption encoder (from the first chunk).
    func textDim() throws -> Int {
        try tokens.empty("tokens").size(2)
    }

    /// Tokens [U', T, D] float16 and mask [U', T] bool of the distinct captions `ids`, in that order.
    func tokens(of ids: [Int]) throws -> (tokens: Tensor, mask: Tensor) {
        (try tokens.gather("tokens", rows: ids), try tokens.gather("mask", rows: ids))
    }

    /// The L2-normalised sentence features of the captions of the images `rows`. → [R, E] float32
    func sentenceFeatures(rows: [Int]) throws -> Tensor {
        guard let sentences else { throw PartitionError("text features need a sentence encoder, but none was given") }
        return try KMeans.l2Normalized(try sentences.gather("features", rows: rows.map { caption(ofRow: $0) }))
    }
}

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
