import Foundation
import ParisDiffusion
import ParisModels

/// Named starting points for `paris run init --preset NAME`: every expert gets the same job settings (edit
/// run.json afterwards to make them differ). The router's `caption_dropout` (0.1) is used only when its `model` is
/// made a text-conditioned `-text` preset; the text-free router ignores it.
public struct RunPreset: Sendable {
    public let name: String
    public let description: String
    public let expert: TrainJobConfig
    public let router: TrainJobConfig

    /// The run.json of this preset for K experts on `dataset`, with the compute-matched monolith (batch K·B).
    public func config(name runName: String, dataset: String, numExperts k: Int, seed: UInt64 = 0) -> RunConfig {
        let experts = (0..<k).map { i -> TrainJobConfig in
            var e = expert
            e.seed = seed &+ UInt64(i)
            return e
        }
        var monolith = expert
        monolith.batchSize = expert.batchSize * k
        monolith.seed = seed &+ 1000
        var r = router
        r.seed = seed &+ 2000
        return RunConfig(name: runName, dataset: dataset, numExperts: k, experts: experts, router: r, monolith: monolith)
    }

    public static let all: [RunPreset] = [cpuDemo, cpuTiny, cpuSmall, gpuB2]

    /// The demo (`scripts/demo.sh`): the tiny experts of cpu-tiny trained longer on larger batches (1,500 steps of
    /// 64, each expert a few minutes on one core), a progress line every 25 steps (a few seconds), and the
    /// text-conditioned router, which reads the prompt as well as x_t and t.
    public static let cpuDemo = RunPreset(
        name: "cpu-demo", description: "paris-T/4 experts (1,500 steps of 64) + router-T/4-text, the demo's recipe on a 2-core CPU",
        expert: TrainJobConfig(model: "paris-T/4", batchSize: 64, steps: 1500, learningRate: 1e-3, warmupSteps: 50,
                               emaDecay: 0.995, checkpointEvery: 250, sampleEvery: 750, logEvery: 25),
        router: TrainJobConfig(model: "router-T/4-text", batchSize: 64, steps: 300, learningRate: 1e-3, warmupSteps: 30,
                               emaDecay: 0, captionDropout: 0.1, checkpointEvery: 100, logEvery: 25))

    /// Tiny experts and router on 32×32 pixels, minutes on two CPU cores.
    public static let cpuTiny = RunPreset(
        name: "cpu-tiny", description: "paris-T/4 experts + router-T/4, 32×32 pixels, 2-core CPU in minutes",
        expert: TrainJobConfig(model: "paris-T/4", batchSize: 32, steps: 1000, learningRate: 1e-3, warmupSteps: 50,
                               emaDecay: 0.995, checkpointEvery: 200, sampleEvery: 500, logEvery: 50),
        router: TrainJobConfig(model: "router-T/4", batchSize: 64, steps: 300, learningRate: 1e-3, warmupSteps: 30,
                               emaDecay: 0, captionDropout: 0.1, checkpointEvery: 100, logEvery: 20))

    /// Small CPU experts: better images, about ten times the compute of cpu-tiny.
    public static let cpuSmall = RunPreset(
        name: "cpu-small", description: "paris-S/2 experts + router-S/4, 32×32 pixels, CPU in an hour or so",
        expert: TrainJobConfig(model: "paris-S/2", batchSize: 64, steps: 3000, learningRate: 5e-4, warmupSteps: 200,
                               emaDecay: 0.999, checkpointEvery: 500, sampleEvery: 1000, logEvery: 50),
        router: TrainJobConfig(model: "router-S/4", batchSize: 128, steps: 2000, learningRate: 5e-4, warmupSteps: 100,
                               emaDecay: 0, captionDropout: 0.1, checkpointEvery: 500, logEvery: 50))

    /// DiT-B/2-scale experts on one GPU each, bf16 autocast.
    public static let gpuB2 = RunPreset(
        name: "gpu-b2", description: "paris-B/2 experts (one GPU each, bf16) + router-B/2",
        expert: TrainJobConfig(model: "paris-B/2", batchSize: 256, steps: 100_000, learningRate: 1e-4,
                               warmupSteps: 1000, emaDecay: 0.9999, precision: .bf16, device: "cuda",
                               checkpointEvery: 5000, sampleEvery: 10_000, logEvery: 100,
                               resources: JobResources(gpus: 1, cpus: 8, memory: "64G", time: "48:00:00")),
        router: TrainJobConfig(model: "router-B/2", batchSize: 256, steps: 20_000, learningRate: 1e-4,
                               warmupSteps: 500, emaDecay: 0, precision: .bf16, device: "cuda", captionDropout: 0.1,
                               checkpointEvery: 2000, logEvery: 100,
                               resources: JobResources(gpus: 1, cpus: 8, memory: "64G", time: "12:00:00")))

    /// The preset called `name`, or an error listing the known names.
    public static func named(_ name: String) throws -> RunPreset {
        guard let p = all.first(where: { $0.name == name }) else {
            throw RunError("unknown run preset '\(name)'; known: \(all.map(\.name).joined(separator: ", "))")
        }
        return p
    }
}
