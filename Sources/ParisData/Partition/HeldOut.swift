import Foundation
import Torch

/// The partition's held-out images: set aside before clustering, so no expert, router or monolith trains on them,
/// and assigned afterwards to the cluster each would have joined, so evaluation can compare experts, the router's
/// choice and oracle routing on images none of them has seen.
///
/// The rows are chosen by a fixed seed (`HeldOut.seed`), not the partition's, so every partition of the same image
/// folder (any method, any seed) holds out the same images and the runs' evaluations share one reference set.
public enum HeldOut {
    /// The folder under the partition: `held_out/shard_<k>/`, the same shard layout as the training shards.
    public static let folderName = "held_out"
    /// The seed of the held-out draw ("HELD").
    public static let seed: UInt64 = 0x4845_4C44

    /// Throws unless `count` of `n` images can be held out and leave at least one image per cluster (`clusters`)
    /// to cluster. `Partitioner.run` calls it with the images metadata.jsonl lists before any image is decoded or
    /// any feature extracted, and again with the images that could be read.
    public static func check(count: Int, of n: Int, clusters k: Int = 1) throws {
        guard count > 0 else { return }
        guard count < n else {
            throw PartitionError("cannot hold out \(count) of \(n) images; hold out fewer (--held-out)")
        }
        guard n - count >= k else {
            throw PartitionError("holding out \(count) of \(n) images leaves \(n - count) to split into K = \(k) "
                + "clusters; hold out at most \(n - k) (--held-out)")
        }
    }

    /// `count` of the `n` rows (sorted), chosen by a seeded permutation; `[]` for a count of 0.
    public static func rows(count: Int, of n: Int) throws -> [Int] {
        try check(count: count, of: n)
        guard count > 0 else { return [] }
        return ShardLoader.permutation(count: n, seed: seed, epoch: 0).prefix(count).sorted()
    }

    /// `<partition>/held_out` when the partition has held-out shards, else nil.
    public static func folder(in partition: URL) -> URL? {
        let url = partition.appendingPathComponent(folderName)
        return FileManager.default.fileExists(atPath: url.appendingPathComponent("shard_0").path) ? url : nil
    }

    /// The rows of 0..<n not in `held` (sorted).
    public static func complement(_ held: [Int], of n: Int) -> [Int] {
        let set = Set(held)
        return (0..<n).filter { !set.contains($0) }
    }

    /// Random shards: a balanced split of the held-out rows of its own (seeded by the partition seed).
    public static func randomClusters(count: Int, clusters k: Int, seed: UInt64) -> [Int] {
        RandomSplit.roundRobin(count: count, clusters: k, seed: seed &+ 0x4845)
    }

    /// Label groups: each held-out image goes to the cluster holding its label; a label no training image has is
    /// an error (its cluster is undefined).
    public static func labelClusters(labels: [String?], groups: [[String]]) throws -> [Int] {
        var clusterOf: [String: Int] = [:]
        for (c, group) in groups.enumerated() { for label in group { clusterOf[label] = c } }
        return try labels.enumerated().map { i, label in
            guard let label, let c = clusterOf[label] else {
                throw PartitionError("held-out image \(i) has label \(label ?? "none"), which no training image "
                    + "has; the label method cannot place it (hold out fewer images)")
            }
            return c
        }
    }
}
