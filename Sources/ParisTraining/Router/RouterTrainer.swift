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

    public init(heldOutFraction: Double = 0.1, verifyChecksums: Bool = true, evalBatchSize: Int = 256,
                writePlots: Bool = true) {
        self.heldOutFraction = heldOutFraction
        self.verifyChecksums = verifyChecksums
        self.evalBatchSize = evalBatchSize
        self.writePlots = writePlots
    }
}

/// Trains the Paris router (`paris train router`): a classifier r(x_t, t) → K logits learned with cross-entropy
/// on the cluster k of x0, where x_t = (1 − t)·x0 + t·ε is drawn from exactly the experts' forward process
/// (their flow-matching time distribution; see `timeSampling(for:)`), network time t·1000.
///
/// Reads every shard of the run (`RouterDataset`: natural proportions, a held-out split), writes only `router/`:
/// `state/` (resumable checkpoints), `metrics.jsonl`, `status.json`, and at the end `config.json` +
/// `model.safetensors` (`RouterCheckpoint`), `eval.json`, `eval.md`, `confusion.png`, `accuracy.png`.
///
/// Resume is bit-exact: before step s the trainer seeds libtorch's generator from (seed, s), so the times and
/// noise of a step depend on nothing else, and the batch order comes from the loader cursor.
public final class RouterTrainer {
    public static let lockName = JobLock.fileName
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
    /// The held-out evaluation of the last `train` call that finished.
    public private(set) var evaluation: RouterEvaluation?

    /// Loads run.json and every shard, and builds the router config; nothing is written yet.
    public init(run folder: URL, options: RouterTrainOptions = .init()) throws {
        layout = RunLayout(folder)
        run = try layout.config()
        job = run.router
        self.options = options
        (sampling, samplingNote) = Self.timeSampling(for: run)
        data = try RouterDataset(partition: layout.partition(run), numClusters: run.numExperts,
                                 heldOutFraction: options.heldOutFraction, seed: job.seed,
                                 verifyChecksums: options.verifyChecksums)
        config = try ModelFactory.routerConfig(preset: job.model, numExperts: run.numExperts, shardInfo: data.infos[0])
        device = try ModelFactory.device(job.device, job: "router")
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

    /// The seed of step s's random draws.
    static func stepSeed(_ seed: UInt64, _ step: Int) -> UInt64 {
        var g = SplitMix64(seed: seed ^ (0x0005_7E95 &* UInt64(step + 1)))
        return g.next()
    }

    /// Trains until `steps` (resuming from `router/state/` when a checkpoint exists), then evaluates and writes
    /// the final files. Returns early, after a checkpoint, when `shouldStop` fires or `stopAfterSteps` steps are
    /// done in this session.
    public func train(_ session: TrainOptions = .init()) throws -> TrainResult {
        let folder = layout.router
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let lock = try JobLock(folder.appendingPathComponent(Self.lockName), job: "router")
        defer { lock.release() }
        var output = session.output
        output.logFile = folder.appendingPathComponent("log.txt")
        let report = ProgressReporter(job: "router", totalSteps: job.steps, output: output)
        defer { report.finish() }
        do {
            if session.restart {
                try discardPrevious(folder)
                report.log("--restart: discarded the previous state, weights, metrics and evaluation")
            }
            return try trainLoop(folder, session: session, report: report)
        } catch {
            let step = ((try? JobStatusFile.read(from: folder)) ?? nil)?.step ?? 0
            try? JobStatusFile(state: .failed, step: step, totalSteps: job.steps, error: "\(error)").write(to: folder)
            throw error
        }
    }

    /// Removes what a previous training of the router wrote (for `restart`).
    func discardPrevious(_ folder: URL) throws {
        let fm = FileManager.default
        for name in ["state", MetricsFile.fileName, JobStatusFile.fileName, RouterCheckpoint.configName,
                     RouterCheckpoint.weightsName, RouterEvaluation.jsonName, RouterEvaluation.markdownName,
                     RouterEvaluation.confusionPNGName, RunPlots.lossName, RunPlots.accuracyName] {
            let url = folder.appendingPathComponent(name)
            if fm.fileExists(atPath: url.path) { try fm.removeItem(at: url) }
        }
    }

    private func trainLoop(_ folder: URL, session: TrainOptions, report: ProgressReporter) throws -> TrainResult {
        Runtime.manualSeed(job.seed)
        let router = try Router(config, device: device)
        router.train(true)
        let optimizer = try AdamW(router, lr: job.learningRate, weightDecay: job.weightDecay)
        let schedule = LRSchedule(baseLR: job.learningRate, warmupSteps: job.warmupSteps, totalSteps: job.steps)
        struct Shape: Encodable { let router: RouterConfig; let timeSampling: String; let heldOut: Double }
        let hash = try TrainingState.configHash(
            job: job, model: Shape(router: config, timeSampling: samplingNote, heldOut: options.heldOutFraction))
        let store = TrainingCheckpoints(folder: folder.appendingPathComponent("state"))

        var step = 0, cursor = LoaderCursor(), imagesSeen = 0, elapsed = 0.0, resumedFrom: Int?
        if let ckpt = store.loadLatest(device: device, warn: { report.log("warning: \($0)") }) {
            guard ckpt.state.configHash == hash else {
                throw RunError("router: the checkpoint \(ckpt.folder.path) was made with other settings (model, batch "
                    + "size, learning rate, clipping, seed, time sampling or held-out fraction changed); undo the "
                    + "change, or pass --restart to discard the checkpoints and start over")
            }
            do {
                try router.loadStateDict(ckpt.tensors["model"] ?? [:])
                try optimizer.loadStateDict(ckpt.tensors["optimizer"] ?? [:])
            } catch { throw RunError("router: \(ckpt.folder.path) does not fit the router: \(error)") }
            (step, cursor, imagesSeen, elapsed) = (ckpt.state.step, ckpt.state.cursor, ckpt.state.imagesSeen,
                                                  ckpt.state.elapsedSeconds)
            resumedFrom = step
            if step >= job.steps && RouterCheckpoint.exists(in: folder)
                && FileManager.default.fileExists(atPath: folder.appendingPathComponent(RouterEvaluation.jsonName).path) {
                report.log("already finished (\(step) of \(job.steps) steps); nothing to do")
                try JobStatusFile(state: .finished, step: step, totalSteps: job.steps).write(to: folder)
                return TrainResult(outcome: .alreadyFinished, step: step, steps: job.steps, folder: folder,
                                   resumedFrom: step, lastLoss: nil)
            }
            report.log("resuming from step \(step) (\(ckpt.folder.lastPathComponent))")
        } else {
            report.log("starting: \(job.model) (\(config.parameterCount) parameters), K = \(run.numExperts), "
                + "\(data.trainCount) training / \(data.heldOutCount) held-out images, batch \(job.batchSize), "
                + "\(job.steps) steps, t ~ \(samplingNote), on \(device)")
        }
        let metrics = try MetricsLog(url: folder.appendingPathComponent(MetricsFile.fileName),
                                     truncateAfter: resumedFrom)

        func checkpoint() throws {
            let state = TrainingState(step: step, totalSteps: job.steps, cursor: cursor, rngCPU: try Runtime.rngState(),
                                      rngCUDA: nil, configHash: hash, imagesSeen: imagesSeen, elapsedSeconds: elapsed,
                                      lossEMA: nil)
            let model = try router.stateDict()
            // The router keeps no EMA: its "ema" entry holds the raw weights, so the store's layout stays the same.
            try store.write(state: state, tensors: ["model": model, "ema": model,
                                                    "optimizer": try optimizer.stateDict()])
        }
        func status(_ s: JobState) throws {
            try JobStatusFile(state: s, step: step, totalSteps: job.steps).write(to: folder)
        }
        try status(.running)

        let bf16 = job.precision == .bf16 && device.isCUDA
        var lossSum = try Tensor.zeros([], device: device), correct = try Tensor.zeros([], device: device)
        var window = 0, windowStart = Date(), lastSaved = step, sessionSteps = 0, lastLoss: Double?
        while step < job.steps {
            if session.shouldStop() || session.stopAfterSteps.map({ sessionSteps >= $0 }) == true {
                if lastSaved != step { try checkpoint() }
                try status(.stopped)
                report.log("stopped at step \(step) of \(job.steps) (checkpoint written); run again to resume")
                return TrainResult(outcome: .stopped, step: step, steps: job.steps, folder: folder,
                                   resumedFrom: resumedFrom, lastLoss: lastLoss)
            }
            let t0 = Date()
            let (x0, labels, next) = try data.batch(at: cursor, size: job.batchSize, seed: job.seed, device: device)
            Runtime.manualSeed(Self.stepSeed(job.seed, step))
            let t = try sampling.sample(batch: job.batchSize, device: device)         // [B]
            let noise = try Tensor.randn(x0.shape, device: device)                    // [B, C, H, W]
            let xt = try FlowPath.interpolate(x0: x0, noise: noise, t: t)
            let logits = try withAutocast(device: device, enabled: bf16) {
                try router(x: xt, t: FlowPath.networkTime(t))
            }.to(dtype: .float32)                                                      // [B, K]
            let loss = try crossEntropy(logits: logits, target: labels)
            try loss.backward()
            if job.gradClip > 0 { try clipGradNorm(optimizer.parameters, maxNorm: job.gradClip) }
            schedule.apply(to: optimizer, step: step)
            try optimizer.step()
            try optimizer.zeroGrad()
            try withNoGrad {
                lossSum = try lossSum + loss.detach()
                correct = try correct + logits.argmax(dim: 1).eq(labels).to(dtype: .float32).sum()
            }
            step += 1
            sessionSteps += 1
            cursor = next
            imagesSeen += job.batchSize
            window += 1
            elapsed += Date().timeIntervalSince(t0)
            if step % job.logEvery == 0 || step == job.steps {
                let seconds = max(1e-9, Date().timeIntervalSince(windowStart))
                let meanLoss = try lossSum.item() / Double(window)
                let accuracy = try correct.item() / Double(window * job.batchSize)
                let rate = Double(window * job.batchSize) / seconds
                lastLoss = meanLoss
                try metrics.append(["step": step, "loss": meanLoss, "accuracy": accuracy, "lr": optimizer.lr,
                                    "images_per_s": rate, "epoch": cursor.epoch, "elapsed_s": elapsed])
                try status(.running)
                let eta = ProgressReporter.duration(Double(job.steps - step) * seconds / Double(window))
                report.log(String(format: "step %d/%d  loss %.4f  acc %.1f%%  lr %.1e  %.1f img/s", step, job.steps,
                                  meanLoss, 100 * accuracy, optimizer.lr, rate) + "  ETA " + eta)
                lossSum = try Tensor.zeros([], device: device)
                correct = try Tensor.zeros([], device: device)
                window = 0
                windowStart = Date()
            }
            if step % job.checkpointEvery == 0 || step == job.steps {
                try checkpoint()
                lastSaved = step
            }
        }

        let evaluation = try RouterEvaluation.evaluate(router: router, data: data, sampling: sampling,
                                                       samplingName: samplingNote, step: step, seed: job.seed,
                                                       device: device, batchSize: options.evalBatchSize)
        self.evaluation = evaluation
        try RouterCheckpoint.write(config: config, weights: try router.stateDict(), steps: step, to: folder)
        try evaluation.write(to: folder)
        try evaluation.writeConfusionPNG(to: folder)
        if options.writePlots {
            do { try RunPlots.writeRouterPlots(folder: folder) } catch { report.log("warning: plots: \(error)") }
        }
        try status(.finished)
        report.log("finished \(step) steps; held-out accuracy "
            + (evaluation.accuracy.map { String(format: "%.1f%%", 100 * $0) } ?? "– (nothing held out)")
            + "; wrote \(folder.path)/{config.json, model.safetensors, eval.json, eval.md, confusion.png}")
        return TrainResult(outcome: .finished, step: step, steps: job.steps, folder: folder, resumedFrom: resumedFrom,
                           lastLoss: lastLoss)
    }
}
