import Foundation
import Torch

/// The distinct captions of the images a partition keeps, in order of first appearance, and what the partition
/// computes once per distinct caption (not once per image), chunk by chunk into the work folder:
///
/// - `tokens-<i>.safetensors`: `tokens` [u, T, D] float16 and `mask` [u, T] bool, the caption encoder's token
///   embeddings that every shard stores (always);
/// - `sentences-<i>.safetensors`: `features` [u, E] float32, the sentence embeddings text k-means clusters (only for
///   `features: text|both`).
///
/// Chunks hold `chunk_size` captions (a multiple of `batch_size`, so the encoders see the same batches whatever the
/// chunk size); one already written is kept, so a killed partition does not encode its captions again.
struct CaptionTable {
    /// The distinct captions.
    let captions: [String]
    /// The caption of each kept image: a row of `captions`.
    let captionOf: [Int]
    let tokens: OpenedChunks
    let sentences: OpenedChunks?

    static func build(texts: [String], config: PartitionConfig, encoders: PartitionEncoders, sentences wantsText: Bool,
                      folder: URL, log: (String) -> Void) throws -> CaptionTable {
        var captions: [String] = [], row: [String: Int] = [:], captionOf: [Int] = []
        captionOf.reserveCapacity(texts.count)
        for text in texts {
            if let r = row[text] { captionOf.append(r); continue }
            row[text] = captions.count
            captionOf.append(captions.count)
            captions.append(text)
        }
        row = [:]
        let size = PartitionImages.chunkEntries(config), count = (captions.count + size - 1) / size
        func each(_ store: RowChunks, what: String, _ make: (ArraySlice<String>) throws -> [String: Tensor]) throws {
            let missing = store.missing(of: count)
            if missing.count < count { log("\(what): \(count - missing.count) of \(count) chunks already made; resuming") }
            for i in missing {
                let slice = captions[(i * size)..<min(captions.count, (i + 1) * size)]
                try store.write(i, try make(slice))
                if i == count - 1 || (i + 1) % max(1, count / 10) == 0 {
                    log("\(what): \(slice.endIndex)/\(captions.count) distinct captions")
                }
            }
        }
        var sentenceChunks: OpenedChunks? = nil
        if wantsText {
            let store = RowChunks(folder: folder, prefix: "sentences")
            try each(store, what: "text features") { slice in
                ["features": try encoders.sentenceEmbeddings(Array(slice), batchSize: config.batchSize).0]
            }
            sentenceChunks = try store.opened(count: count, rowsOf: "features")
        }
        let store = RowChunks(folder: folder, prefix: "tokens")
        try each(store, what: "caption tokens") { slice in
            let (tokens, mask) = try encoders.encodeCaptions(Array(slice), length: config.textLength,
                                                             batchSize: config.batchSize)
            return ["tokens": tokens, "mask": mask]
        }
        return CaptionTable(captions: captions, captionOf: captionOf,
                            tokens: try store.opened(count: count, rowsOf: "tokens"), sentences: sentenceChunks)
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
        return try KMeans.l2Normalized(try sentences.gather("features", rows: rows.map { captionOf[$0] }))
    }
}
