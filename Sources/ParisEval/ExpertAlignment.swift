import Foundation
import ParisRun
import ParisDiffusion
import ParisEnsemble
import ParisModels
import Torch

/// Expert-data alignment: each expert's x0-prediction error on every cluster's held-out images.
public struct AlignmentMatrix: Codable, Sendable, Equatable {
    /// errors[k][c]: the mean squared error of expert k's x̂0 on cluster c's images (nil for a missing expert or an
    /// empty cluster), in the [−1, 1] pixel range.
    public var errors: [[Double?]]
    public var times: [Double]
    /// The number of images per cluster behind each column.
    public var imagesPerCluster: [Int]

    enum CodingKeys: String, CodingKey { case errors, times, imagesPerCluster = "images_per_cluster" }

    /// The clusters whose own expert has the lowest error of all experts.
    public var diagonalBest: [Int] {
        (0..<(errors.first?.count ?? 0)).filter { c in
            guard c < errors.count, let own = errors[c][c] else { return false }
            return errors.allSatisfy { row in row[c].map { own <= $0 } ?? true }
        }
    }
}

/// Protocol: for each cluster's held-out images x0 with their captions, at each t of `times`, x_t = (1 − t)·x0 +
/// t·ε (seeded ε), each expert predicts v (conditioned on the caption, no guidance; ε experts converted), x̂0 =
/// x_t − t·v, and the error is mean (x̂0 − x0)² averaged over pixels, images and times.
public enum ExpertAlignment {
    public static func run(mixture: MixtureOfExperts, data: EvalData, times: [Double], seed: UInt64 = 0,
                           batchSize: Int = 128, device: Device = .cpu) throws -> AlignmentMatrix {
        let k = mixture.numExperts, kc = data.numClusters
        let x0All = try data.modelImages()
        var errors = [[Double?]](repeating: [Double?](repeating: nil, count: kc), count: k)
        var perCluster = [Int](repeating: 0, count: kc)
        try withNoGrad {
            for c in 0..<kc {
                let rows = data.clusters.indices.filter { data.clusters[$0] == c }
                perCluster[c] = rows.count
                guard !rows.isEmpty else { continue }
                let sub = try data.subset(rows)
                let x0 = try x0All.indexSelect(dim: 0, index: Tensor(rows.map { Int64($0) }))
                for (e, member) in mixture.members.enumerated() {
                    guard let member else { continue }
                    var total = 0.0
                    for (i, t) in times.enumerated() {
                        Runtime.manualSeed(seed &+ UInt64(c * 1000 + i))
                        let noise = try Tensor.randn(x0.shape)
                        let xt = try x0 * (1 - t) + noise * t
                        for s in stride(from: 0, to: rows.count, by: batchSize) {
                            let end = min(rows.count, s + batchSize)
                            let cond = try sub.condition(s..<end)
                            let text = try cond.to(device: device)
                            let x = try xt.slice(0, s, end).to(device: device)
                            let v = try member.guided(x, FlowPath.networkTime(t, batch: end - s, device: device), text, 1)
                            let x0hat = try x - v * t
                            let err = try (x0hat.to(device: .cpu) - x0.slice(0, s, end)).square().sum().item()
                            total += err
                        }
                    }
                    errors[e][c] = total / Double(x0.count * times.count)
                }
            }
        }
        return AlignmentMatrix(errors: errors, times: times, imagesPerCluster: perCluster)
    }
}
