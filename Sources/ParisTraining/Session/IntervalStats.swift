import Foundation
import ParisDiffusion
import Torch

/// The running sums of one logging interval, over what the steps report (`StepMetrics`): one `metrics.jsonl`
/// line when the interval ends. Saved in a checkpoint (`state.json`'s `interval`), so an interval split by an
/// interruption still logs the same averages.
public struct IntervalStats: Codable, Sendable, Equatable {
    public var lossSum = 0.0, gradSum = 0.0, steps = 0, images = 0
    /// Per time bucket (the steps' `TimeBucketedLoss`): summed per-sample losses and counts; empty when the steps
    /// report no time buckets (the router).
    public var bucketSums: [Double] = [], bucketCounts: [Int] = []
    /// Images classified into their own cluster (the router); nil when the steps report no classification.
    public var correct: Int?
    var start = Date()
    /// Images and steps of this session's part of the interval, for the speed.
    var sessionImages = 0, sessionSteps = 0
    /// Images per second and seconds per step of the interval so far (this session's part).
    var lastRate = 0.0, secondsPerStep = 0.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case lossSum = "loss_sum", gradSum = "grad_sum", steps, images, bucketSums = "bucket_sums"
        case bucketCounts = "bucket_counts", correct
    }

    public static func == (a: IntervalStats, b: IntervalStats) -> Bool {
        (a.lossSum, a.gradSum, a.steps, a.images, a.correct) == (b.lossSum, b.gradSum, b.steps, b.images, b.correct)
            && a.bucketSums == b.bucketSums && a.bucketCounts == b.bucketCounts
    }

    /// The interval's training accuracy so far (nil when the steps report no classification).
    var accuracy: Double? { correct.map { Double($0) / Double(max(1, images)) } }

    mutating func add(_ m: StepMetrics) {
        if let byT = m.lossByT {
            if bucketSums.isEmpty {
                bucketSums = Array(repeating: 0, count: byT.buckets)
                bucketCounts = Array(repeating: 0, count: byT.buckets)
            }
            for i in bucketSums.indices where i < byT.buckets {
                bucketSums[i] += byT.sums[i]
                bucketCounts[i] += byT.counts[i]
            }
        }
        if let c = m.correct { correct = (correct ?? 0) + c }
        lossSum += m.loss
        gradSum += m.gradNorm
        steps += 1
        images += m.images
        sessionSteps += 1
        sessionImages += m.images
        let dt = Date().timeIntervalSince(start)
        if dt > 0 {
            lastRate = Double(sessionImages) / dt
            secondsPerStep = dt / Double(sessionSteps)
        }
    }

    /// The metrics line of the interval ending at `step`.
    func record(step: Int, epoch: Int, lr: Double, elapsed: Double, device: Device) -> MetricsRecord {
        let n = Double(max(1, steps))
        let byT = zip(bucketSums, bucketCounts).map { $1 > 0 ? $0 / Double($1) : nil }
        return MetricsRecord(step: step, epoch: epoch, loss: lossSum / n, lossByT: byT.isEmpty ? nil : byT,
                             accuracy: accuracy, lr: lr, gradNorm: gradSum / n, imagesPerSecond: lastRate,
                             rssMB: MemoryUsage.residentMB(), cudaUsedMB: MemoryUsage.cudaUsedMB(device),
                             elapsedSeconds: elapsed)
    }

    /// Starts the next interval (the speed shown stays until its first step).
    mutating func reset() {
        let (rate, perStep) = (lastRate, secondsPerStep)
        self = IntervalStats()
        (lastRate, secondsPerStep) = (rate, perStep)
    }
}
