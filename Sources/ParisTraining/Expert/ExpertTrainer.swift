import Foundation
import ParisRun
import ParisData
import Torch

/// `paris train expert`: trains expert k of a run in isolation. It opens `run.json`, reads only shard k
/// (`<run>/<partition>/shard_<k>/`) and writes only `<run>/expert_<k>/`; it opens no network connection and never
/// looks at another expert's files, so K of them can run anywhere, at any time, in any order.
///
/// `<run>/expert_<k>/` afterwards:
/// ```
/// config.json, diffusion_pytorch_model.safetensors   the published EMA weights (released Paris naming)
/// state/step_<N>/                                    the last 2 training checkpoints: model, ema, optimizer
/// metrics.jsonl, status.json, log.txt, samples/step_<N>.png
/// ```
public enum ExpertTrainer {
    /// Trains (or resumes) expert `k` of the run at `run`.
    public static func train(run: URL, expert k: Int, options: TrainOptions = .init()) throws -> TrainResult {
        let layout = RunLayout(run)
        let config = try layout.config()
        let job = try config.expert(k)
        let shard = try TrainingData.openShard(layout.shard(k, config), cluster: k, numClusters: config.numExperts)
        let trainer = try DiffusionTrainer(DiffusionJob(name: "expert \(k)", config: job, cluster: k, data: shard,
                                                        shards: ShardIdentity([shard.info]), folder: layout.expert(k),
                                                        partition: layout.partition(config)),
                                           prefetch: options.prefetch)
        return try TrainingSession(trainer, options: options).run()
    }
}

/// `paris train monolith`: the compute-matched baseline of DDM: one model on all the data (every shard, joined),
/// with run.json's `monolith` settings (global batch K·B for the experts' S steps). Writes `<run>/monolith/` in the
/// layout of an expert folder.
public enum MonolithTrainer {
    public static func train(run: URL, options: TrainOptions = .init()) throws -> TrainResult {
        let layout = RunLayout(run)
        let config = try layout.config()
        guard let job = config.monolith else {
            throw RunError("\(layout.runJSON.path) has no \"monolith\" entry; add one (e.g. the experts' settings with "
                + "batch_size × num_experts) or recreate the run with `paris run init`")
        }
        let data = try TrainingData.openShards((0..<config.numExperts).map { (layout.shard($0, config), $0) },
                                               numClusters: config.numExperts)
        let trainer = try DiffusionTrainer(DiffusionJob(name: "monolith", config: job, cluster: nil, data: data,
                                                        shards: ShardIdentity(data.infos),
                                                        folder: layout.monolith, partition: layout.partition(config)),
                                           prefetch: options.prefetch)
        return try TrainingSession(trainer, options: options).run()
    }
}
