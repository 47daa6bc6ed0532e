import Foundation

/// How well a partition agrees with known labels (e.g. the emoji categories or the Fashion-MNIST classes).
///
/// - Purity: the share of points whose cluster's most common label is their own label
///   (Σ_k max_c n_kc / N). 1 means every cluster holds one label; it rises trivially with K.
/// - NMI: mutual information I(U; V) between clusters U and labels V over their arithmetic mean entropy
///   (H(U) + H(V)) / 2, natural logarithms, as scikit-learn's `normalized_mutual_info_score` (its default
///   `average_method="arithmetic"`). 1 is a perfect match, 0 independence; both partitions having one group gives 1.
public enum ClusterMetrics {
    /// The counts n_kc of the contingency table, keyed by (cluster, label), with the cluster and label totals.
    struct Contingency {
        var joint: [Pair: Int] = [:]
        var clusters: [Int: Int] = [:]
        var labels: [String: Int] = [:]
        let total: Int

        struct Pair: Hashable {
            let cluster: Int
            let label: String
        }

        init(assignments: [Int], labels: [String]) throws {
            guard assignments.count == labels.count else {
                throw PartitionError("\(assignments.count) cluster assignments but \(labels.count) labels")
            }
            guard !assignments.isEmpty else { throw PartitionError("cannot score an empty partition") }
            total = assignments.count
            for (a, l) in zip(assignments, labels) {
                joint[Pair(cluster: a, label: l), default: 0] += 1
                clusters[a, default: 0] += 1
                self.labels[l, default: 0] += 1
            }
        }
    }

    /// Σ_k max_c n_kc / N.
    public static func purity(assignments: [Int], labels: [String]) throws -> Double {
        let table = try Contingency(assignments: assignments, labels: labels)
        var best: [Int: Int] = [:]
        for (pair, count) in table.joint { best[pair.cluster] = max(best[pair.cluster] ?? 0, count) }
        return Double(best.values.reduce(0, +)) / Double(table.total)
    }

    /// Normalised mutual information with arithmetic normalisation (scikit-learn's default).
    public static func nmi(assignments: [Int], labels: [String]) throws -> Double {
        let table = try Contingency(assignments: assignments, labels: labels)
        // sklearn: a single cluster and a single class (or none) count as a perfect match.
        if table.clusters.count == 1 && table.labels.count == 1 { return 1 }
        let n = Double(table.total)
        // Sums run in a fixed order (sorted counts, sorted pairs) so the result is the same in every process:
        // dictionary order is not, and floating-point addition is not associative.
        func entropy<K: Hashable>(_ counts: [K: Int]) -> Double {
            counts.values.sorted().reduce(0.0) { h, c in
                let p = Double(c) / n
                return h - p * Foundation.log(p)
            }
        }
        var mi = 0.0
        let pairs = table.joint.sorted { ($0.key.cluster, $0.key.label) < ($1.key.cluster, $1.key.label) }
        for (pair, count) in pairs {
            let nkc = Double(count)
            let nk = Double(table.clusters[pair.cluster]!), nc = Double(table.labels[pair.label]!)
            mi += nkc / n * Foundation.log(n * nkc / (nk * nc))
        }
        if mi <= 0 { return 0 }
        let normaliser = (entropy(table.clusters) + entropy(table.labels)) / 2
        return mi / max(normaliser, Double.ulpOfOne)
    }

    /// Both scores, for a manifest.
    public static func scores(assignments: [Int], labels: [String]) throws -> Scores {
        Scores(purity: try purity(assignments: assignments, labels: labels),
               nmi: try nmi(assignments: assignments, labels: labels))
    }

    /// Purity and NMI of one partition.
    public struct Scores: Codable, Sendable, Equatable {
        public var purity: Double
        public var nmi: Double
        public init(purity: Double, nmi: Double) {
            self.purity = purity
            self.nmi = nmi
        }
    }
}
