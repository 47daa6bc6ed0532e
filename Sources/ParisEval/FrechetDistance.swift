import Foundation
import ParisRun
import Torch

/// The Gaussian statistics of a feature set: mean [D] and covariance [D, D] (float64, unbiased: divided by N − 1,
/// as numpy's `np.cov(rowvar=False)` that pytorch-fid uses).
public struct FeatureStatistics {
    /// [D] float64.
    public let mean: Tensor
    /// [D, D] float64.
    public let covariance: Tensor
    /// The number of feature vectors N behind the statistics.
    public let count: Int

    public init(mean: Tensor, covariance: Tensor, count: Int) {
        self.mean = mean
        self.covariance = covariance
        self.count = count
    }

    /// Statistics of features [N, D] (N ≥ 2).
    public init(features: Tensor) throws {
        guard features.rank == 2, features.size(0) >= 2 else {
            throw EvalError("feature statistics need [N, D] features with N ≥ 2, got \(features.shape)")
        }
        let f = try features.to(device: .cpu, dtype: .float64)
        let n = f.size(0)
        let mu = try f.mean(dims: [0])                        // [D]
        let centred = try f - mu.unsqueeze(0)                 // [N, D]
        let cov = try centred.transpose(0, 1).matmul(centred) / Double(n - 1)  // [D, D]
        self.init(mean: mu, covariance: cov, count: n)
    }
}

/// The Fréchet distance between two Gaussians N(μ1, Σ1) and N(μ2, Σ2) (FID's formula):
/// d² = |μ1 − μ2|² + tr Σ1 + tr Σ2 − 2·tr √(Σ1·Σ2).
///
/// tr √(Σ1·Σ2) is computed without a non-symmetric matrix square root: with S = √Σ1 (from the eigendecomposition
/// of the symmetric PSD Σ1), Σ1·Σ2 is similar to the symmetric PSD matrix S·Σ2·S, so its eigenvalues are those of
/// S·Σ2·S, and tr √(Σ1·Σ2) = Σ_i √λ_i(S·Σ2·S). Tiny negative eigenvalues from rounding are clamped to 0. In float64
/// this matches scipy's `sqrtm`-based value (pytorch-fid) to about 1e-6 relative.
public enum FrechetDistance {
    public static func distance(_ a: FeatureStatistics, _ b: FeatureStatistics) throws -> Double {
        let d = a.mean.size(0)
        guard b.mean.shape == [d], a.covariance.shape == [d, d], b.covariance.shape == [d, d] else {
            throw EvalError("Fréchet distance: statistics of different widths (\(a.mean.shape) vs \(b.mean.shape))")
        }
        let mu1 = try a.mean.to(dtype: .float64), mu2 = try b.mean.to(dtype: .float64)
        let s1 = try symmetric(a.covariance.to(dtype: .float64))
        let s2 = try symmetric(b.covariance.to(dtype: .float64))
        let diff = try (mu1 - mu2).square().sum().item()
        let (values, vectors) = try s1.linalgEigh()                                     // [D], [D, D]
        let root = try vectors.matmul(values.clamp(min: 0.0).sqrt().unsqueeze(1) * vectors.transpose(0, 1))
        let m = try symmetric(root.matmul(s2).matmul(root))                             // [D, D], PSD
        let traceSqrt = try m.linalgEigh().values.clamp(min: 0.0).sqrt().sum().item()
        let tr1 = try trace(s1), tr2 = try trace(s2)
        let value = diff + tr1 + tr2 - 2 * traceSqrt
        guard value.isFinite else { throw EvalError("Fréchet distance is not finite (features contain NaN/inf?)") }
        return max(value, 0)
    }

    /// The distance between the statistics of two feature sets [N1, D] and [N2, D].
    public static func distance(features a: Tensor, _ b: Tensor) throws -> Double {
        try distance(FeatureStatistics(features: a), FeatureStatistics(features: b))
    }

    static func symmetric(_ m: Tensor) throws -> Tensor { try (m + m.transpose(0, 1)) * 0.5 }

    static func trace(_ m: Tensor) throws -> Double {
        let n = m.size(0)
        return try m.contiguous().flatten().slice(0, 0, n * n, step: n + 1).sum().item()  // the diagonal
    }
}

/// Why an evaluation could not run, with a message that names the problem.
public struct EvalError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
