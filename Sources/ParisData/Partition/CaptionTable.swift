import Foundation
import Torch

/// The distinct captions of the images a partition keeps, in order of first appearance (`DistinctCaptions`: found in
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
