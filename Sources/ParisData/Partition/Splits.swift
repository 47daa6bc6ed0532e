import Foundation

/// Random shards: the baseline partition DDM compares its feature clusters against (Fig. 4c).
///
/// Shuffling uses `ShardLoader.permutation` (a SplitMix64 Fisher–Yates of its own), so a seed gives the same split on
/// every machine and libtorch's random state is untouched.
public enum RandomSplit {
    /// K shards whose sizes differ by at most one: position i of a seeded permutation goes to shard i mod K.
    public static func balanced(count n: Int, clusters k: Int, seed: UInt64) throws -> [Int] {
        guard k >= 1 else { throw PartitionError("the number of clusters must be at least 1, not \(k)") }
        guard k <= n else { throw PartitionError("cannot make \(k) random shards from \(n) images; lower K") }
        return roundRobin(count: n, clusters: k, seed: seed)
    }

    /// Position i of a seeded permutation of 0..<n goes to shard i mod K (no checks: shards may stay empty when
    /// n < K, as held-out shards may).
    static func roundRobin(count n: Int, clusters k: Int, seed: UInt64) -> [Int] {
        var out = [Int](repeating: 0, count: n)
        for (i, row) in ShardLoader.permutation(count: n, seed: seed, epoch: 0).enumerated() { out[row] = i % k }
        return out
    }

    /// A random split with the given shard sizes (the baseline with the same sizes as a real partition):
    /// the first sizes[0] rows of a seeded permutation go to shard 0, the next sizes[1] to shard 1, and so on.
    public static func withSizes(_ sizes: [Int], seed: UInt64) throws -> [Int] {
        guard sizes.allSatisfy({ $0 >= 0 }) else { throw PartitionError("shard sizes must be ≥ 0: \(sizes)") }
        let n = sizes.reduce(0, +)
        var out = [Int](repeating: 0, count: n)
        let perm = ShardLoader.permutation(count: n, seed: seed, epoch: 0)
        var at = 0
        for (k, size) in sizes.enumerated() {
            for row in perm[at..<(at + size)] { out[row] = k }
            at += size
        }
        return out
    }
}

/// Shards by known label: the "oracle" partition to compare feature clusters with.
///
/// With as many distinct labels as clusters, label i (in sorted order: numerically when every label is an integer,
/// else by string) is cluster i. With more labels than clusters, whole labels are grouped greedily for balance:
/// labels in decreasing size (ties: sorted order) each go to the cluster holding the fewest images so far (ties: the
/// lowest index), the longest-processing-time rule, which keeps the largest shard within 4/3 of the best possible.
/// Fewer labels than clusters cannot fill K shards and is an error.
public enum LabelSplit {
    /// The assignment of each image and the labels each cluster holds.
    public struct Result: Sendable, Equatable {
        /// N cluster indices.
        public let assignments: [Int]
        /// The labels of each cluster, K lists, in sorted order.
        public let groups: [[String]]
    }

    public static func split(labels: [String?], clusters k: Int) throws -> Result {
        guard k >= 1 else { throw PartitionError("the number of clusters must be at least 1, not \(k)") }
        var counts: [String: Int] = [:]
        for (i, label) in labels.enumerated() {
            guard let label else {
                throw PartitionError("image \(i) has no label; the label method needs a label on every image")
            }
            counts[label, default: 0] += 1
        }
        guard !counts.isEmpty else { throw PartitionError("the label method needs labelled images; there are none") }
        let ordered = sortedLabels(Array(counts.keys))
        guard ordered.count >= k else {
            throw PartitionError("the label method cannot make \(k) clusters from \(ordered.count) distinct labels; "
                + "lower K to at most \(ordered.count)")
        }
        var groupOf: [String: Int] = [:]
        var groups = [[String]](repeating: [], count: k)
        if ordered.count == k {
            for (i, label) in ordered.enumerated() { groupOf[label] = i; groups[i] = [label] }
        } else {
            let rank = Dictionary(uniqueKeysWithValues: ordered.enumerated().map { ($1, $0) })
            let bySize = ordered.sorted { (counts[$0]!, rank[$1]!) > (counts[$1]!, rank[$0]!) }
            var load = [Int](repeating: 0, count: k)
            for label in bySize {
                let target = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
                load[target] += counts[label]!
                groupOf[label] = target
                groups[target].append(label)
            }
            groups = groups.map { sortedLabels($0) }
        }
        return Result(assignments: labels.map { groupOf[$0!]! }, groups: groups)
    }

    /// Numerical order when every label is an integer, else string order.
    public static func sortedLabels(_ labels: [String]) -> [String] {
        let ints = labels.compactMap { Int($0) }
        if ints.count == labels.count { return labels.sorted { Int($0)! < Int($1)! } }
        return labels.sorted()
    }
}
