import Foundation
import ParisRun
import ParisData
import ParisDiffusion
import ParisModels
import Torch

/// The router's own settings that are not in run.json (the session settings are `TrainOptions`).
public struct RouterTrainOptions {
    /// Fraction of each shard held out for evaluation (deterministic by the router's seed).
    public var heldOutFraction: Double = 0.1
    /// Hash every shard file against its shard.json before training.
    public var verifyChecksums = true
    /// Batch size of the held-out evaluation.
    public var evalBatchSize = 256
    /// Write `loss.png` and `accuracy.png` at the end.
    public var writePlots = true
    /// A router preset instead of run.json's (`router-T/4-text`, …), e.g. to train a second router of the other
    /// kind on the same shards for `paris eval --compare-router`; nil: run.json's router model.
    public var model: String? = nil
    /// The folder the router trains and publishes in, instead of `<run>/router/` (a second router must not share
    /// the first's folder: its checkpoints, status and lock are per folder).
    public var folder: URL? = nil

    public init(heldOutFraction: Double = 0.1, verifyChecksums: Bool = true, evalBatchSize: Int = 256,
                writePlots: Bool = true, model: String? = nil, folder: URL? = nil) {
        self.heldOutFraction = heldOutFraction
        self.verifyChecksums = verifyChecksums
        self.evalBatchSize = evalBatchSize
        self.writePlots = writePlots
        self.model = model
        self.folder = folder
    }
}

/// Trains the Paris router (`paris train router`): a classifier r(x_t, t) → K logits learned with cross-entropy
/// on the cluster k of x0, where x_t = (1 − t)·x0 + t·ε is drawn from exactly the experts' forward process
/// (their flow-matching time distribution; see `timeSampling(for:)`), network time t·1000.
///
/// A text-conditioned router (a `-text` preset: `RouterConfig.textDim`) is r(x_t, t, c) with c the image's pooled
/// caption; each caption is replaced by the router's learned null caption with probability `caption_dropout`
/// (run.json's router job, default 0.1; `ConditionDropout`, DiT's label dropout), so the router also learns to
/// route samples that have no prompt.
///
/// Reads every shard of the run (`RouterDataset`: natural proportions, a held-out split), writes only `router/`:
/// `state/` (resumable checkpoints of `model` and `optimizer`), `metrics.jsonl` (with the training accuracy),
/// `status.json`, `config.json` + `model.safetensors` (`RouterCheckpoint`, at every checkpoint), and at the end
/// `eval.json`, `eval.md`, `confusion.png`, `loss.png`, `accuracy.png`.
///
/// The router is a `TrainingJob`: the loop, resume (bit-exact, with the generator state restored), checkpoints and
/// stopping are `TrainingSession`'s, as for the experts.
public final class RouterTrainer: TrainingJob {
    public let layout: RunLayout
    public let run: RunConfig
    public let job: TrainJobConfig
    public let config: RouterConfig
    public let data: RouterDataset
    public let device: Device
    public let sampling: TimeSampling
    /// A description of `sampling` and where it came from.
    public let samplingNote: String
    public let options: RouterTrainOptions
    /// Where the router trains and publishes: `<run>/router/` or `RouterTrainOptions.folder`.
    public let folder: URL
    /// The held-out evaluation of the last `train` call that finished.
    public private(set) var evaluation: RouterEvaluation?

    // Built by makeState().
    private var router: Router!
    private var optimizer: AdamW!
    private var dropout: ConditionDropout!

    /// Loads run.json and every shard, and builds the router config; nothing is written yet.
    public init(run folder: URL, options: RouterTrainOptions = .init()) throws {
        layout = RunLayout(folder)
        run = try layout.config()
        var job = run.router
        if let model = options.model {
            do { _ = try RouterConfig.preset(named: model) } catch { throw RunError("router --model: \(error)") }
            job.model = model
        }
        self.job = job
        self.folder = options.folder ?? layout.router
        self.options = options
        (sampling, samplingNote) = Self.timeSampling(for: run)
        data = try RouterDataset(partition: layout.partition(run), numClusters: run.numExperts,
                                 heldOutFraction: options.heldOutFraction, seed: job.seed,
                                 verifyChecksums: options.verifyChecksums)
        config = try ModelFactory.routerConfig(preset: job.model, numExperts: run.numExperts, shardInfo: data.infos[0])
        device = try ModelFactory.device(job.device, job: "router")
        if config.kind == .textConditioned {
            do { dropout = try ConditionDropout(probability: job.captionDropout) } catch {
                throw RunError("router: caption_dropout: \(error)")
            }
        }
        guard job.batchSize <= data.trainCount else {
            throw RunError("router: batch_size \(job.batchSize) exceeds the \(data.trainCount) training images "
                + "(after holding out \(data.heldOutCount)); lower batch_size in run.json")
        }
    }

    /// Loads the run and trains its router: `paris train router --run R`.
    public static func train(run folder: URL, options: TrainOptions,
                             router: RouterTrainOptions = .init()) throws -> TrainResult {
        try RouterTrainer(run: folder, options: router).train(options)
    }

    /// The time distribution of the router's x_t: the experts' flow-matching time sampling. Experts with a DDPM ε
    /// objective are sampled on the flow-matching path too (their ε is converted to a velocity and the mixture
    /// integrates the flow ODE), so the router always sees flow-matching x_t; their t is taken as uniform. When
    /// the flow-matching experts disagree, t is uniform.
    public static func timeSampling(for run: RunConfig) -> (TimeSampling, String) {
        var flows: [TimeSampling] = [], ddpm = 0
        for e in run.experts {
            switch e.objective {
            case .flowMatching(let s): flows.append(s)
            case .ddpmEpsilon: ddpm += 1
            }
        }
        func name(_ s: TimeSampling) -> String {
            switch s {
            case .uniform: return "uniform"
            case .logitNormal(let m, let sd): return "logit_normal(\(m), \(sd))"
            }
        }
        guard let first = flows.first else {
            return (.uniform, "uniform (all experts are DDPM ε; routed on the flow-matching path)")
        }
        if flows.allSatisfy({ $0 == first }) {
            return ddpm == 0 ? (first, name(first))
                : (first, name(first) + " (the flow-matching experts'; \(ddpm) DDPM ε experts routed on the same path)")
        }
        return (.uniform, "uniform (the experts' time samplings differ)")
    }

    /// Trains until `steps` (resuming from `router/state/` when a checkpoint exists), then evaluates and writes
    /// the final files. Returns early, after a checkpoint, when `shouldStop` fires or `stopAfterSteps` steps are
    /// done in this session.
    public func train(_ session: TrainOptions = .init()) throws -> TrainResult {
        try TrainingSession(self, options: session).run()
    }

    // MARK: - TrainingJob

    var name: String { folder == layout.router ? "router" : "router (\(folder.lastPathComponent))" }
    var settings: TrainJobConfig { job }
    var summary: String {
        "\(job.model) (\(config.kind), \(config.parameterCount) parameters), K = \(run.numExperts), "
            + "\(data.trainCount) training / \(data.heldOutCount) held-out images (read per batch from the shards' "
            + String(format: "parts; row maps %.2f MiB), ", Double(data.rowMapBytes) / 1_048_576) + "t ~ \(samplingNote)"
            + (config.kind == .textConditioned ? ", caption dropout \(job.captionDropout)" : "")
    }
    var outputs: [String] {
        [RouterCheckpoint.configName, RouterCheckpoint.weightsName, RouterEvaluation.jsonName,
         RouterEvaluation.markdownName, RouterEvaluation.confusionPNGName, RunPlots.lossName, RunPlots.accuracyName]
    }

    func configHash() throws -> String {
        struct Shape: Encodable { let router: RouterConfig; let timeSampling: String; let heldOut: Double }
        // A text-free router's hash is what it was before text-conditioned routers (its config encodes no
        // text_dim; caption_dropout is in the job, which it ignores, as it always was).
        return try TrainingState.configHash(
            job: job, model: Shape(router: config, timeSampling: samplingNote, heldOut: options.heldOutFraction))
    }

    var shards: ShardIdentity { ShardIdentity(data.infos) }

    func makeState() throws {
        router = try Router(config, device: device)
        router.train(true)
        optimizer = try AdamW(router, lr: job.learningRate, weightDecay: job.weightDecay)
    }

    /// The router keeps no EMA: a checkpoint holds its weights and the optimizer.
    func stateTensors() throws -> [String: [String: Tensor]] {
        ["model": try router.stateDict(), "optimizer": try optimizer.stateDict()]
    }

    func load(_ tensors: [String: [String: Tensor]]) throws {
        try router.loadStateDict(tensors["model"]!)
        try optimizer.loadStateDict(tensors["optimizer"]!)
    }

    func step(_ step: Int, at cursor: LoaderCursor, lr: Double) throws -> StepMetrics {
        let router: Router = self.router
        let (x0, labels, captions, next) = try data.batch(at: cursor, size: job.batchSize, seed: job.seed,
                                                          device: device, captions: dropout != nil)
        let t = try sampling.sample(batch: job.batchSize, device: device)         // [B]
        let noise = try Tensor.randn(x0.shape, device: device)                    // [B, C, H, W]
        let xt = try FlowPath.interpolate(x0: x0, noise: noise, t: t)             // [B, C, H, W]
        var text: Tensor? = nil                                                    // [B, D]: caption or null caption
        if let dropout, let null = router.nullTextEmbedding {
            text = try dropout.apply(to: captions!, null: .embedding(null)).condition
        }
        let logits = try withAutocast(device: device, enabled: job.precision == .bf16 && device.isCUDA) {
            try router(x: xt, t: FlowPath.networkTime(t), text: text)
        }.to(dtype: .float32)                                                      // [B, K]
        let loss = try crossEntropy(logits: logits, target: labels)
        let gradNorm = try descend(loss, optimizer: optimizer, lr: lr, gradClip: job.gradClip)
        let correct = try withNoGrad { try logits.argmax(dim: 1).eq(labels).sum().item() }
        return StepMetrics(loss: try loss.item(), gradNorm: gradNorm, images: job.batchSize, cursor: next,
                           correct: Int(correct))
    }

    /// Writes `config.json` + `model.safetensors`.
    func publish(step: Int) throws {
        try RouterCheckpoint.write(config: config, weights: try router.stateDict(), steps: step, shards: shards,
                                   to: folder)
    }

    func hasFinished(step: Int) -> Bool {
        let url = folder.appendingPathComponent(RouterEvaluation.jsonName)
        guard RouterCheckpoint.exists(in: folder), let data = FileManager.default.contents(atPath: url.path),
              let evaluation = try? JSONDecoder().decode(RouterEvaluation.self, from: data) else { return false }
        return evaluation.step == step
    }

    /// The held-out evaluation (`eval.json`, `eval.md`, `confusion.png`) and the plots.
    func finish(step: Int, log: (String) -> Void) throws -> String {
        let evaluation = try RouterEvaluation.evaluate(router: router, data: data, sampling: sampling,
                                                       samplingName: samplingNote, step: step, seed: job.seed,
                                                       device: device, batchSize: options.evalBatchSize)
        self.evaluation = evaluation
        try evaluation.write(to: folder)
        try evaluation.writeConfusionPNG(to: folder)
        if options.writePlots {
            do { try RunPlots.writeRouterPlots(folder: folder) } catch { log("warning: plots: \(error)") }
        }
        return "held-out accuracy "
            + (evaluation.accuracy.map { String(format: "%.1f%%", 100 * $0) } ?? "– (nothing held out)")
            + "; wrote \(folder.path)/{config.json, model.safetensors, eval.json, eval.md, confusion.png}"
    }
}
