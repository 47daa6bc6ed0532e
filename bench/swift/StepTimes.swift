// The timing loop both paris-bench benchmarks share (the twin of bench/bench_common.py's `time_steps`).
import Foundation
import Torch

/// Wall-clock times of a benchmark's steps: `warmup` untimed steps, then `steps` timed ones, each between device
/// synchronisations, in milliseconds, sorted.
struct StepTimes {
    let sorted: [Double]

    var median: Double {
        let n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }

    var min: Double { sorted[0] }

    /// Runs `step` warmup + steps times; returns the timings and the last step's result.
    static func measure<T>(warmup: Int, steps: Int, _ step: () throws -> T) throws -> (times: StepTimes, last: T) {
        var times: [Double] = []
        var last: T? = nil
        for i in 0..<(warmup + steps) {
            try Runtime.synchronize()
            let t0 = DispatchTime.now().uptimeNanoseconds
            last = try step()
            try Runtime.synchronize()
            if i >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
        }
        return (StepTimes(sorted: times.sorted()), last!)
    }
}
