import Foundation
import Torch

/// k-means on libtorch tensors (CPU or CUDA): k-means++ seeding, then Lloyd iterations until no assignment changes,
/// the centroids move less than `tolerance` × the data's mean per-feature variance, or `maxIterations`.
///
/// - Metrics: `.euclidean` clusters the rows as given (squared L2 distance, centroid = mean); `.cosine` L2-normalises
///   the rows and keeps the centroids on the unit sphere (spherical k-means; squared L2 on unit vectors = 2 − 2·cos).
/// - Determinism: the only random choices are the k-means++ draws, made with a `SplitMix64(seed)` of its own, never
///   with libtorch's generator, so a fit neither reads nor disturbs `Runtime.manualSeed` state. The same seed, data
///   and device give the same result; CPU and CUDA can differ only through floating-point rounding of near-ties.
/// - Empty clusters: after an update, each empty cluster is re-seeded at one of the points farthest from their
///   centroids (largest current distance), as scikit-learn does; the number of re-seeds is reported.
/// - Cost: distances are computed in row blocks as ‖x‖² − 2·x·cᵀ + ‖c‖² with one matmul per block; sums for the
///   update are one-hot matmuls, so nothing loops over N×K in Swift and the work stays on the data's device.
public enum KMeans {
    /// The distance the clusters are built on.
    public enum Metric: String, Codable, Sendable, CaseIterable {
        case cosine, euclidean
    }

    /// One fit's settings. JSON keys are snake_case.
    public struct Config: Codable, Sendable, Equatable {
        /// The number of clusters K.
        public var clusters: Int
        public var metric: Metric
        public var maxIterations: Int
        /// Convergence when the squared centroid shift ≤ tolerance × the mean per-feature variance (sklearn's rule).
        public var tolerance: Double
        public var seed: UInt64

        public init(clusters: Int, metric: Metric = .cosine, maxIterations: Int = 100, tolerance: Double = 1e-4,
                    seed: UInt64 = 0) {
            self.clusters = clusters
            self.metric = metric
            self.maxIterations = maxIterations
            self.tolerance = tolerance
            self.seed = seed
        }

        enum CodingKeys: String, CodingKey {
            case clusters, metric, maxIterations = "max_iterations", tolerance, seed
        }
    }

    /// What a fit found.
    public struct Result {
        /// [K, D] float32 on the data's device (unit rows for `.cosine`).
        public let centroids: Tensor
        /// [N] int64, the cluster of each row.
        public let assignments: Tensor
        /// Rows per cluster (unweighted counts), K values.
        public let sizes: [Int]
        /// Sum of (weighted) squared distances to the assigned centroid.
        public let inertia: Double
        public let iterations: Int
        public let converged: Bool
        /// Empty clusters re-seeded at far points, over the whole fit.
        public let reseeded: Int
    }

    /// Rows × clusters per distance block (about 64 MiB of float32).
    static let blockElements = 16 << 20

    /// Fits K centroids to `x` [N, D]. `weights` [N] (≥ 0) weigh rows in seeding, updates and inertia (the coarse
    /// stage of `HierarchicalKMeans` weighs fine centroids by their sizes); rows of weight 0 are never seeds.
    /// `upToK`: when the data holds fewer than K distinct points, fit as many clusters as there are distinct points
    /// instead of throwing (the fine stage of `HierarchicalKMeans` uses it: caption features have one point per
    /// distinct caption).
    public static func fit(_ x: Tensor, config: Config, weights: Tensor? = nil, upToK: Bool = false,
                           log: (String) -> Void = { _ in }) throws -> Result {
        guard x.rank == 2, x.size(0) > 0, x.size(1) > 0 else {
            throw PartitionError("k-means needs features [N, D] with N, D > 0, not \(x.shape)")
        }
        let n = x.size(0), requested = config.clusters
        guard requested >= 1 else { throw PartitionError("k-means needs at least 1 cluster, not \(requested)") }
        guard requested <= n else {
            throw PartitionError("k-means cannot make \(requested) clusters from \(n) points; lower K")
        }
        guard config.maxIterations >= 1 else {
            throw PartitionError("max_iterations must be at least 1, not \(config.maxIterations)")
        }
        let data = try prepare(x, metric: config.metric)  // data: [N, D] float32
        // w: [N] float32 on the data's device
        let w = try weights.map { try $0.to(device: data.device, dtype: .float32).reshape([-1]) }
            ?? Tensor.ones([n], device: data.device)
        guard w.count == n else { throw PartitionError("k-means weights hold \(w.count) values for \(n) points") }
        guard try w.ge(0.0).all().item() != 0, try w.sum().item() > 0 else {
            throw PartitionError("k-means weights must be non-negative and not all zero")
        }
        let variance = try data.variance(dims: [0], correction: 0).mean().item()
        let threshold = config.tolerance * variance

        var centroids = try seed(data, k: requested, weights: w, seed: config.seed, upToK: upToK)  // [K, D]
        let k = centroids.size(0)
        if k < requested { log("k-means: only \(k) distinct points, so \(k) clusters instead of \(requested)") }
        var previous: Tensor? = nil
        var reseeded = 0, iterations = 0, converged = false
        while iterations < config.maxIterations {
            iterations += 1
            let step = try lloydStep(data, centroids: centroids, weights: w, metric: config.metric)
            var next = step.centroids
            let empty = step.weightedSizes.enumerated().filter { $0.element <= 0 }.map { $0.offset }
            if !empty.isEmpty {
                next = try reseed(next, empty: empty, data: data, distances: step.distances, weights: w)
                reseeded += empty.count
            }
            let shift = try (next - centroids).square().sum().item()
            let unchanged = try previous.map { try $0.equal(step.assignments) } ?? false
            centroids = next
            previous = step.assignments
            if empty.isEmpty && (unchanged || shift <= threshold) { converged = true; break }
        }
        // The final assignment, against the final centroids.
        let last = try lloydStep(data, centroids: centroids, weights: w, metric: config.metric)
        let sizes = try counts(last.assignments, k: k)
        let inertia = try (last.distances * w).sum().item()
        log("k-means K=\(k) N=\(n): \(iterations) iterations, \(converged ? "converged" : "not converged"), "
            + "inertia \(String(format: "%.4g", inertia)), \(reseeded) empty clusters re-seeded")
        return Result(centroids: centroids, assignments: last.assignments, sizes: sizes, inertia: inertia,
                      iterations: iterations, converged: converged, reseeded: reseeded)
    }

    /// The nearest centroid of each row of `x` [N, D] (prepared like `fit` does for `metric`): labels [N] int64
    /// and squared distances [N] float32.
    public static func assign(_ x: Tensor, centroids: Tensor, metric: Metric) throws -> (labels: Tensor, distances: Tensor) {
        let data = try prepare(x, metric: metric)
        let c = try centroids.to(device: data.device, dtype: .float32)
        guard c.rank == 2, c.size(1) == data.size(1) else {
            throw PartitionError("centroids \(c.shape) do not match features \(data.shape)")
        }
        let step = try lloydStep(data, centroids: c, weights: nil, metric: metric)
        return (step.assignments, step.distances)
    }

    /// float32, contiguous, and unit rows for `.cosine`.
    static func prepare(_ x: Tensor, metric: Metric) throws -> Tensor {
        let f = try x.to(dtype: .float32).contiguous()
        guard metric == .cosine else { return f }
        return try l2Normalized(f)
    }

    /// Rows divided by their L2 norm (zero rows stay zero).
    public static func l2Normalized(_ x: Tensor) throws -> Tensor {
        let norm = try x.square().sum(dims: [1], keepDim: true).sqrt().clamp(min: 1e-12)
        return try x / norm
    }

    struct Step {
        /// [N] int64, [N] float32 squared distances, [K, D] updated centroids, K weighted sizes.
        let assignments: Tensor
        let distances: Tensor
        let centroids: Tensor
        let weightedSizes: [Double]
    }

    /// One Lloyd step: assign every row to its nearest centroid, then move each centroid to the (weighted) mean of
    /// its rows (normalised for `.cosine`). An empty cluster keeps its old centroid (the caller re-seeds it).
    static func lloydStep(_ x: Tensor, centroids c: Tensor, weights: Tensor?, metric: Metric) throws -> Step {
        let n = x.size(0), d = x.size(1), k = c.size(0)
        let cc = try c.square().sum(dims: [1]).unsqueeze(0)  // [1, K]
        let ct = try c.transpose(0, 1).contiguous()  // [D, K]
        var sums = try Tensor.zeros([k, d], device: x.device)  // [K, D]
        var mass = try Tensor.zeros([k], device: x.device)  // [K]
        var labels: [Tensor] = [], dists: [Tensor] = []
        let block = max(1, min(n, blockElements / max(k, d)))
        var start = 0
        while start < n {
            let end = min(n, start + block)
            let xb = try x.slice(0, start, end)  // [B, D]
            let xx = try xb.square().sum(dims: [1], keepDim: true)  // [B, 1]
            let dist = try (xx - 2.0 * xb.matmul(ct) + cc).clamp(min: 0.0)  // [B, K]
            let lab = try dist.argmin(dim: 1)  // [B]
            dists.append(try dist.gather(dim: 1, index: lab.unsqueeze(1)).squeeze(1))
            labels.append(lab)
            var onehot = try lab.oneHot(classes: k).to(dtype: .float32)  // [B, K]
            if let weights { onehot = try onehot * weights.slice(0, start, end).unsqueeze(1) }
            sums = try sums + onehot.transpose(0, 1).matmul(xb)
            mass = try mass + onehot.sum(dims: [0])
            start = end
        }
        var next = try sums / mass.clamp(min: 1e-30).unsqueeze(1)  // [K, D]
        let empty = try mass.le(0.0).unsqueeze(1)  // [K, 1]
        next = try Tensor.where(empty, c, next)
        if metric == .cosine { next = try l2Normalized(next) }
        return Step(assignments: try Tensor.cat(labels), distances: try Tensor.cat(dists), centroids: next,
                    weightedSizes: try mass.to(device: .cpu, dtype: .float64).toArray(as: Double.self))
    }

    /// Moves each empty cluster's centroid onto a distinct far point: the rows with the largest distance to their
    /// centroid (rows of weight 0 excluded).
    static func reseed(_ c: Tensor, empty: [Int], data: Tensor, distances: Tensor, weights: Tensor) throws -> Tensor {
        let eligible = try distances * weights.gt(0.0).to(dtype: .float32)  // [N]
        let far = try eligible.topk(empty.count, dim: 0).indices  // [E]
        let rows = try data.indexSelect(dim: 0, index: far)  // [E, D]
        let index = try Tensor(empty.map { Int64($0) }).to(device: data.device).unsqueeze(1)
            .expand([empty.count, data.size(1)])  // [E, D]
        return try c.scatter(dim: 0, index: index.contiguous(), source: rows)
    }

    /// k-means++ (Arthur & Vassilvitskii 2007): the first centre with probability ∝ weight, each next one with
    /// probability ∝ weight × squared distance to the nearest centre chosen so far. Draws use `SplitMix64(seed)`.
    static func seed(_ x: Tensor, k: Int, weights w: Tensor, seed: UInt64, upToK: Bool = false) throws -> Tensor {
        let n = x.size(0)
        var rng = SplitMix64(seed: seed)
        let w64 = try w.to(dtype: .float64)
        func draw(_ p: Tensor) throws -> Int? {  // p: [N] float64 ≥ 0
            let cumulative = try p.cumsum(dim: 0)
            let total = try cumulative.select(0, n - 1).item()
            guard total > 0, total.isFinite else { return nil }
            let u = Double(rng.next() >> 11) * 0x1p-53 * total
            return min(n - 1, try cumulative.le(u).sum().itemInt())
        }
        // Squared distances of every row to row `row`, in row blocks so that the temporaries stay at about
        // `blockElements` whatever N × D is (the same numbers as one pass: each row's sum is its own).
        let block = max(1, blockElements / max(1, x.size(1)))
        func distance(to row: Int) throws -> Tensor {  // [N] float32
            let centre = try x.select(0, row).unsqueeze(0)  // [1, D]
            if n <= block { return try (x - centre).square().sum(dims: [1]) }
            var parts: [Tensor] = []
            for start in stride(from: 0, to: n, by: block) {
                parts.append(try (x.slice(0, start, min(n, start + block)) - centre).square().sum(dims: [1]))
            }
            return try Tensor.cat(parts)
        }
        guard let first = try draw(w64) else { throw PartitionError("k-means weights are all zero") }
        var chosen = [first]
        var nearest = try distance(to: first)  // [N]
        while chosen.count < k {
            guard let next = try draw(try nearest.to(dtype: .float64) * w64) else {
                if upToK { break }
                throw PartitionError("k-means found only \(chosen.count) distinct points among \(n), fewer than "
                    + "K = \(k) clusters; lower K")
            }
            chosen.append(next)
            nearest = try nearest.minimum(try distance(to: next))
        }
        let index = try Tensor(chosen.map { Int64($0) }).to(device: x.device)
        return try x.indexSelect(dim: 0, index: index).contiguous()
    }

    /// Rows per cluster from labels [N] int64 (one O(N) pass on the host).
    static func counts(_ labels: Tensor, k: Int) throws -> [Int] {
        var sizes = [Int](repeating: 0, count: k)
        for l in try labels.to(device: .cpu, dtype: .int64).toArray(as: Int64.self) { sizes[Int(l)] += 1 }
        return sizes
    }
}

/// Why a partition could not be made; the message names the input (file and line where there is one).
public struct PartitionError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
