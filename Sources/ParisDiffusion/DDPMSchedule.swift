import Foundation
import Torch

/// The DDPM noise schedules (β tables), in float64 as facebookresearch/DiT's `gaussian_diffusion.py` computes them.
public enum BetaSchedule: String, NamedChoice, Sendable {
    public static let choiceKey = "beta_schedule"
    /// β linear from 1e-4 to 0.02 over 1000 steps (Ho et al.; DiT). For T ≠ 1000 both ends scale by 1000/T, as in
    /// DiT's `get_named_beta_schedule("linear", T)`.
    case linear
    /// Nichol & Dhariwal's cosine schedule: ᾱ(s) = cos²((s + 0.008)/1.008 · π/2),
    /// β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999).
    case cosine

}

/// A discrete DDPM schedule: T steps t ∈ {0, …, T−1}, ᾱ_t = Π_{s ≤ t} (1 − β_s),
/// x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε. Step T−1 is (almost) pure noise, step 0 (almost) clean data.
public struct DDPMSchedule: Sendable, Equatable {
    public let kind: BetaSchedule
    public let numTimesteps: Int
    /// β_t, float64.
    public let betas: [Double]
    /// ᾱ_t = Π_{s ≤ t} (1 − β_s), float64 (DiT's `alphas_cumprod`).
    public let alphasCumprod: [Double]

    /// The cosine schedule's cap on β (Nichol & Dhariwal; DiT's `betas_for_alpha_bar(max_beta=0.999)`).
    public static let cosineMaxBeta = 0.999

    /// The most DDPM training timesteps T: 100,000. DDPM and DiT use 1000, improved DDPM 4000; the schedule is
    /// a table of T float64 values built when a config is read, so an absurd T (10¹², from a hand-edited
    /// run.json or config.json) must fail before the table is allocated.
    public static let maxTimesteps = 100_000

    /// Throws unless 2 ≤ `numTimesteps` ≤ `maxTimesteps`.
    public static func checkTimesteps(_ numTimesteps: Int) throws {
        try require(numTimesteps >= 2, "DDPM num_timesteps must be at least 2, got \(numTimesteps)")
        try require(numTimesteps <= maxTimesteps,
                    "DDPM num_timesteps must be ≤ \(maxTimesteps) (DDPMSchedule.maxTimesteps), got \(numTimesteps)")
    }

    public init(_ kind: BetaSchedule = .linear, numTimesteps: Int = 1000) throws {
        try Self.checkTimesteps(numTimesteps)
        self.kind = kind
        self.numTimesteps = numTimesteps
        let T = numTimesteps
        var betas = [Double](repeating: 0, count: T)
        switch kind {
        case .linear:
            // numpy.linspace(scale·1e-4, scale·0.02, T, dtype=float64): start + i·step, last element = stop.
            let scale = 1000.0 / Double(T)
            let start = scale * 0.0001, stop = scale * 0.02
            let step = (stop - start) / Double(T - 1)
            for i in 0..<T { betas[i] = Double(i) * step + start }
            betas[T - 1] = stop
        case .cosine:
            func alphaBar(_ s: Double) -> Double {
                let c = Foundation.cos((s + 0.008) / 1.008 * Double.pi / 2)
                return c * c
            }
            for i in 0..<T {
                let t1 = Double(i) / Double(T), t2 = Double(i + 1) / Double(T)
                betas[i] = Swift.min(1 - alphaBar(t2) / alphaBar(t1), Self.cosineMaxBeta)
            }
        }
        var cumprod = [Double](repeating: 0, count: T)
        var running = 1.0
        for i in 0..<T {
            running *= 1 - betas[i]
            cumprod[i] = running
        }
        self.betas = betas
        self.alphasCumprod = cumprod
    }

    /// ᾱ as a float64 tensor [T] on `device`.
    public func alphasCumprodTensor(device: Device = .cpu) throws -> Tensor {
        try Tensor(alphasCumprod).to(device: device)
    }

    /// (√ᾱ_t, √(1 − ᾱ_t)) for integer steps t: [B], computed in float64 and cast to `dtype`, each shaped [B]
    /// (DiT's `_extract_into_tensor` of `sqrt_alphas_cumprod` and `sqrt_one_minus_alphas_cumprod`).
    public func coefficients(at steps: Tensor, dtype: DType = .float32) throws -> (alpha: Tensor, sigma: Tensor) {
        let table = try alphasCumprodTensor(device: steps.device)
        let abar = try table.indexSelect(dim: 0, index: steps.to(dtype: .int64))
        return (try abar.sqrt().to(dtype: dtype), try (1.0 - abar).sqrt().to(dtype: dtype))
    }

    /// The step whose ᾱ is nearest to `alphaBar` (per element of a [B] tensor); ties pick the lower step.
    public func nearestStep(alphaBar: Tensor) throws -> Tensor {
        let table = try alphasCumprodTensor(device: alphaBar.device)
        let diff = try (table.unsqueeze(0) - alphaBar.to(dtype: .float64).unsqueeze(1)).abs()
        return try diff.argmin(dim: 1)
    }
}
