import Foundation
import ParisImage
import Torch

/// The models a partition needs, injected as closures so that the partitioner knows no network: `pretrained(...)`
/// wires MiniLM and EfficientNet-Lite0 (what `paris partition` uses), tests wire small fakes (e.g. the mean colour
/// of an image).
public struct PartitionEncoders {
    /// Image features for clustering.
    public struct ImageFeatures {
        /// Recorded in the manifest, e.g. `efficientnet-lite0`.
        public var name: String
        /// Images (RGB, alpha composited over white, at their file's size; the closure does its own resizing and
        /// normalisation) → features [B, F] float.
        public var embed: ([Image]) throws -> Tensor
        public init(name: String, embed: @escaping ([Image]) throws -> Tensor) {
            self.name = name
            self.embed = embed
        }
    }

    /// One vector per caption, for clustering on text.
    public struct SentenceEmbeddings {
        /// Recorded in the manifest, e.g. `all-MiniLM-L6-v2`.
        public var name: String
        /// Captions → embeddings [B, E] float.
        public var embed: ([String]) throws -> Tensor
        public init(name: String, embed: @escaping ([String]) throws -> Tensor) {
            self.name = name
            self.embed = embed
        }
    }

    /// Caption token embeddings, stored in the shards for the experts' cross-attention.
    public struct CaptionTokens {
        /// Recorded in each shard's info, e.g. `all-MiniLM-L6-v2`.
        public var name: String
        /// (captions, T) → tokens [B, T', D] float and mask [B, T'] bool (true = real token). T' ≠ T is padded
        /// (zeros, mask false) or cut to T.
        public var encode: ([String], Int) throws -> (tokens: Tensor, mask: Tensor)
        public init(name: String, encode: @escaping ([String], Int) throws -> (tokens: Tensor, mask: Tensor)) {
            self.name = name
            self.encode = encode
        }
    }

    /// Needed by `features: image|both` with the kmeans method.
    public var image: ImageFeatures?
    /// Needed by `features: text|both` with the kmeans method.
    public var sentences: SentenceEmbeddings?
    /// Always needed: every shard stores its captions' token embeddings.
    public var captions: CaptionTokens

    public init(image: ImageFeatures? = nil, sentences: SentenceEmbeddings? = nil, captions: CaptionTokens) {
        self.image = image
        self.sentences = sentences
        self.captions = captions
    }

    /// Caption tokens of `captions` in batches, as float16 [U, T, D] and bool [U, T] on the CPU.
    func encodeCaptions(_ captions: [String], length t: Int, batchSize: Int) throws -> (tokens: Tensor, mask: Tensor) {
        var tokens: [Tensor] = [], masks: [Tensor] = []
        var start = 0
        while start < captions.count {
            let end = min(captions.count, start + batchSize)
            let (x, m) = try self.captions.encode(Array(captions[start..<end]), t)
            let b = end - start
            guard x.rank == 3, x.size(0) == b, m.shape == [b, x.size(1)] else {
                throw PartitionError("caption encoder \(self.captions.name) returned tokens \(x.shape) and mask "
                    + "\(m.shape) for \(b) captions; expected [B, T, D] and [B, T]")
            }
            // x: [B, T', D] → [B, T, D]; m: [B, T'] → [B, T]
            var xt = try x.to(device: .cpu, dtype: .float32), mt = try m.to(device: .cpu, dtype: .bool)
            if xt.size(1) > t {
                xt = try xt.slice(1, 0, t)
                mt = try mt.slice(1, 0, t)
            } else if xt.size(1) < t {
                let missing = t - xt.size(1)
                xt = try xt.pad([0, 0, 0, missing])
                mt = try Tensor.cat([mt, Tensor.zeros([b, missing], dtype: .bool)], dim: 1)
            }
            tokens.append(try xt.to(dtype: .float16).contiguous())
            masks.append(try mt.contiguous())
            start = end
        }
        return (try Tensor.cat(tokens), try Tensor.cat(masks))
    }

    /// One embedding per caption in batches, [U, E] float32 on the CPU.
    func sentenceEmbeddings(_ captions: [String], batchSize: Int) throws -> (Tensor, String) {
        guard let sentences else {
            throw PartitionError("text features need a sentence encoder, but none was given")
        }
        var out: [Tensor] = []
        var start = 0
        while start < captions.count {
            let end = min(captions.count, start + batchSize)
            let e = try sentences.embed(Array(captions[start..<end]))
            guard e.rank == 2, e.size(0) == end - start else {
                throw PartitionError("sentence encoder \(sentences.name) returned \(e.shape) for \(end - start) "
                    + "captions; expected [B, E]")
            }
            out.append(try e.to(device: .cpu, dtype: .float32))
            start = end
        }
        return (try Tensor.cat(out), sentences.name)
    }
}
