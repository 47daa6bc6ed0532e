import Foundation
import Torch

/// Two-stage k-means, as DDM (after MoDE) and Paris partition their data: F fine k-means centroids over all points,
/// then a k-means of the F fine centroids, weighted by their sizes, into K coarse groups. Each point gets the coarse
/// group of its fine centroid (so a fine cluster is never split between experts).
///
/// DDM's text says "assign each image to its nearest coarse centroid"; with many fine clusters the two rules
/// differ only at group borders. We keep the fine-cluster rule: it is what "consolidating fine centroids" means,
/// and it keeps near-duplicates (which share a fine cluster) together.
///
/// When F < 2K (small data), one plain k-means with K clusters is run instead, and `fine` is nil. When the data
/// holds fewer than F distinct points (text features: one point per distinct caption), the fine stage makes one
/// cluster per distinct point.
public enum HierarchicalKMeans {
    /// Settings. JSON keys are snake_case.
    public struct Config: Codable, Sendable, Equatable {
        /// The number of coarse clusters K (the experts).
        public var clusters: Int
        /// Fine clusters F; nil: `defaultFineClusters(count:clusters:)`.
        public var fineClusters: Int?
        public var metric: KMeans.Metric
        public var maxIterations: Int
        public var tolerance: Double
        /// The fine stage uses `seed`, the coarse stage `seed + 1`.
        public var seed: UInt64

        public init(clusters: Int, fineClusters: Int? = nil, metric: KMeans.Metric = .cosine,
                    maxIterations: Int = 100, tolerance: Double = 1e-4, seed: UInt64 = 0) {
            self.clusters = clusters
            self.fineClusters = fineClusters
            self.metric = metric
            self.maxIterations = maxIterations
            self.tolerance = tolerance
            self.seed = seed
        }

        enum CodingKeys: String, CodingKey {
            case clusters, fineClusters = "fine_clusters", metric, maxIterations = "max_iterations", tolerance, seed
        }
    }

    /// What the two stages found.
    public struct Result {
        /// The fine stage (nil when a single stage was run).
        public let fine: KMeans.Result?
        /// The coarse stage: over the fine centroids, or over the points for a single stage.
        public let coarse: KMeans.Result
        /// [N] int64: the coarse cluster of each point.
        public let assignments: Tensor
        /// Points per coarse cluster, K values.
        public let sizes: [Int]
        /// [F] int64: the coarse cluster of each fine centroid (nil for a single stage).
        public let fineToCoarse: Tensor?
    }

    /// F = min(1024, N / 4), DDM's 1024 fine centroids capped so that a fine cluster averages at least 4 points.
    public static func defaultFineClusters(count n: Int, clusters k: Int) -> Int {
        max(k, min(1024, n / 4))
    }

    /// Clusters `x` [N, D]; `log` gets one line per stage.
    public static func fit(_ x: Tensor, config: Config, log: (String) -> Void = { _ in }) throws -> Result {
        guard x.rank == 2 else { throw PartitionError("features must be [N, D], not \(x.shape)") }
        let n = x.size(0), k = config.clusters
        guard k >= 1 else { throw PartitionError("the number of clusters must be at least 1, not \(k)") }
        guard k <= n else {
            throw PartitionError("cannot make \(k) clusters from \(n) points; lower K to at most \(n)")
        }
        let f = config.fineClusters ?? defaultFineClusters(count: n, clusters: k)
        guard f >= 1, f <= n else { throw PartitionError("fine_clusters must be in 1...\(n), not \(f)") }
        func stage(_ clusters: Int, seed: UInt64) -> KMeans.Config {
            KMeans.Config(clusters: clusters, metric: config.metric, maxIterations: config.maxIterations,
                          tolerance: config.tolerance, seed: seed)
        }
        if f < 2 * k {
            log("clustering \(n) points into \(k) clusters (one stage: \(f) fine clusters would be fewer than 2K)")
            let single = try KMeans.fit(x, config: stage(k, seed: config.seed), log: log)
            return Result(fine: nil, coarse: single, assignments: single.assignments, sizes: single.sizes,
                          fineToCoarse: nil)
        }
        log("clustering \(n) points into \(f) fine clusters")
        let fine = try KMeans.fit(x, config: stage(f, seed: config.seed), upToK: true, log: log)
        let found = fine.centroids.size(0)
        guard found >= k else {
            throw PartitionError("the features hold only \(found) distinct points, fewer than K = \(k) clusters; "
                + "lower K (text features have one point per distinct caption)")
        }
        let weights = try Tensor(fine.sizes.map { Float($0) }).to(device: fine.centroids.device)  // [F]
        let occupied = fine.sizes.filter { $0 > 0 }.count
        guard occupied >= k else {
            throw PartitionError("only \(occupied) of \(found) fine clusters hold points, fewer than K = \(k); lower K")
        }
        log("grouping \(found) fine centroids into \(k) coarse clusters (weighted by their sizes)")
        let coarse = try KMeans.fit(fine.centroids, config: stage(k, seed: config.seed &+ 1), weights: weights, log: log)
        let assignments = try coarse.assignments.indexSelect(dim: 0, index: fine.assignments)  // [N]
        let sizes = try KMeans.counts(assignments, k: k)
        return Result(fine: fine, coarse: coarse, assignments: assignments, sizes: sizes,
                      fineToCoarse: coarse.assignments)
    }
}
