import Foundation
import Torch

/// The caption side of a k-means partition's centroids: which cluster a caption (a prompt) belongs to, from its
/// sentence embedding alone, as `paris partition` clustered it. `--strategy prompt` routes each prompt with it.
///
/// The partition clusters rows built by `Partitioner.run`: `text` features are the L2-normalised MiniLM sentence
/// embedding ê of the caption; `both` features are [î, ê] (the L2-normalised image feature, then ê), which the
/// cosine metric normalises again to [î, ê]/√2. A prompt has no image, so only the caption slice counts:
/// - `text`: the k-means assignment itself (`KMeans.assign` of ê in the partition's metric): a training caption
///   lands in its own fine cluster, exactly as it was clustered;
/// - `both`, cosine: x·c = (î·c_img + ê·c_text)/√2, and with î unknown the cluster maximising ê·c_text is chosen;
/// - `both`, euclidean: the nearest c_text to ê in squared L2 (the image term of the distance is dropped).
///
/// Like `PartitionClustering.nearest`, a prompt gets the coarse cluster of its nearest fine centroid when the partition
/// has two stages, else the nearest coarse centroid. Only available clusters can be chosen.
public struct CaptionCentroids {
    /// The partitions that support caption routing, for error messages.
    public static let supported = "k-means partitions on caption features: `paris partition --method kmeans "
        + "--features text` or `--features both` (the emoji preset)"

    public let features: PartitionConfig.Features
    public let metric: KMeans.Metric
    /// The centroids' caption slice [M, E] float32 (fine centroids when there are, else coarse).
    public let centroids: Tensor
    /// The coarse cluster of each of the M centroids.
    public let clusterOf: [Int]
    public let numClusters: Int
    /// The sentence encoder the partition used (`text_model`), e.g. `all-MiniLM-L6-v2`.
    public let textModel: String
    /// Tokens per caption the sentence embeddings were pooled over (the partition's `text_length`).
    public let textLength: Int

    /// The width E of the sentence embeddings it takes.
    public var embeddingDim: Int { centroids.size(1) }

    /// Reads `<partition>/manifest.json` and `centroids.safetensors`; `embeddingDim` is the width of the prompt
    /// embeddings that will be routed (the caption slice is the last `embeddingDim` columns for `both`). A partition
    /// that did not cluster captions is an error naming the partitions that do.
    public static func load(partition: URL, embeddingDim e: Int) throws -> CaptionCentroids {
        let manifest: PartitionManifest
        do { manifest = try PartitionManifest.load(from: partition) } catch {
            throw PartitionError("routing strategy prompt needs the partition's caption centroids: \(error)")
        }
        let url = partition.appendingPathComponent(PartitionManifest.fileName)
        guard manifest.method == .kmeans, let features = manifest.features, features != .image else {
            let what = manifest.method == .kmeans ? "clustered on image features only"
                : "a \(manifest.method.rawValue) split, with no centroids"
            throw PartitionError("routing strategy prompt needs caption centroids, but \(url.path) is \(what); "
                + "the strategy works with \(supported)")
        }
        let file = partition.appendingPathComponent(Partitioner.centroidsName)
        guard FileManager.default.fileExists(atPath: file.path) else { throw PartitionError("\(file.path): missing") }
        let saved = try SafeTensors.load(file).tensors
        var joint: Tensor, map: [Int]
        if let fine = saved["fine_centroids"], let f2c = saved["fine_to_coarse"] {
            joint = fine
            map = try f2c.to(dtype: .int64).toArray(as: Int64.self).map { Int($0) }
        } else if let coarse = saved["coarse_centroids"] {
            joint = coarse
            map = Array(0..<coarse.size(0))
        } else {
            throw PartitionError("\(file.path) has no coarse_centroids; the partition is incomplete")
        }
        let d = joint.rank == 2 ? joint.size(1) : -1
        let expected = features == .text ? e : nil
        guard d > 0, joint.size(0) == map.count, expected.map({ $0 == d }) ?? (d > e) else {
            throw PartitionError("\(file.path): centroids \(joint.shape) do not fit \(features.rawValue) features "
                + "with \(e)-wide caption embeddings (text_model \(manifest.textModel ?? "?"))")
        }
        guard map.allSatisfy({ (0..<manifest.numClusters).contains($0) }) else {
            throw PartitionError("\(file.path): fine_to_coarse names a cluster outside 0..<\(manifest.numClusters)")
        }
        joint = try joint.to(dtype: .float32)
        return CaptionCentroids(features: features, metric: manifest.config.metric,
                                centroids: try joint.slice(1, d - e, d).contiguous(), clusterOf: map,
                                numClusters: manifest.numClusters, textModel: manifest.textModel ?? "unknown",
                                textLength: manifest.textLength)
    }

    /// The cluster of each sentence embedding [B, E] (as the partition's sentence encoder makes them), restricted
    /// to the clusters with `available[k]` (all when nil).
    public func clusters(embeddings x: Tensor, available: [Bool]? = nil) throws -> [Int] {
        guard x.rank == 2, x.size(1) == embeddingDim else {
            throw PartitionError("caption embeddings \(x.shape) do not match the \(embeddingDim)-wide caption centroids")
        }
        let allowed = available ?? Array(repeating: true, count: numClusters)
        guard allowed.count == numClusters, allowed.contains(true) else {
            throw PartitionError("caption routing: no available cluster among \(numClusters)")
        }
        let e = try KMeans.l2Normalized(x.to(device: .cpu, dtype: .float32))  // [B, E] ê
        let c = centroids                                                    // [M, E]
        // score [B, M], higher is nearer: ê·c for cosine, −‖ê − c‖² for euclidean (the same order as KMeans.assign
        // for text features, whose rows are ê).
        var score = try e.matmul(c.transpose(0, 1))
        if metric == .euclidean {
            let c2 = try c.square().sum(dims: [1]).unsqueeze(0)              // [1, M]
            score = try score * 2.0 - c2                                     // −‖ê − c‖² + ‖ê‖²
        }
        let b = x.size(0), m = c.size(0)
        let flat = try score.contiguous().toArray(as: Float.self)
        return try (0..<b).map { i in
            var best = -1, bestScore = -Float.infinity
            for j in 0..<m where allowed[clusterOf[j]] && flat[i * m + j] > bestScore {
                best = j
                bestScore = flat[i * m + j]
            }
            guard best >= 0 else { throw PartitionError("caption routing: embedding \(i) is not finite") }
            return clusterOf[best]
        }
    }
}
