import Foundation
import ParisRun
import ParisData
import ParisDiffusion
import ParisModels
import Torch

/// One diffusion model's training: an expert on its shard, or the monolith on all of them. Everything it reads is
/// given (the job settings and the loaded data); everything it writes is inside `folder`.
struct DiffusionJob {
    /// "expert 3", "monolith": for messages.
    let name: String
    let config: TrainJobConfig
    /// The cluster the model learns (nil for the monolith).
    let cluster: Int?
    let data: Shard
    let folder: URL
}

/// The training loop shared by experts and the monolith: AdamW with warmup + cosine decay, EMA, gradient clipping,
/// caption dropout, bf16 autocast on CUDA; checkpoints every `checkpoint_every` steps and on a stop request; exact
/// resume (weights, EMA, optimizer, generator state and loader cursor).
final class DiffusionTrainer {
    static let lockName = JobLock.fileName
    let job: DiffusionJob
    let options: TrainOptions
    let modelConfig: ParisExpertConfig
    let device: Device
    let autocast: Bool
    let store: TrainingCheckpoints
    let report: ProgressReporter
    var folder: URL { job.folder }

    init(_ job: DiffusionJob, options: TrainOptions) throws {
        self.job = job
        self.options = options
        modelConfig = try ModelFactory.expertConfig(preset: job.config.model, shard: job.data.info)
        device = try ModelFactory.device(job.config.device, job: job.name)
        autocast = job.config.precision == .bf16 && device.isCUDA
        store = TrainingCheckpoints(folder: job.folder.appendingPathComponent("state"))
        try FileManager.default.createDirectory(at: job.folder, withIntermediateDirectories: true)
        var output = options.output
        output.logFile = job.folder.appendingPathComponent("log.txt")
        report = ProgressReporter(job: job.name, totalSteps: job.config.steps, output: output)
    }

    /// Removes what a previous training of this job wrote (for `restart`).
    func discardPrevious() throws {
        let fm = FileManager.default
        for name in ["state", "samples", MetricsFile.fileName, JobStatusFile.fileName, ExpertCheckpoint.configName,
                     ExpertCheckpoint.weightsName] {
            let url = folder.appendingPathComponent(name)
            if fm.fileExists(atPath: url.path) { try fm.removeItem(at: url) }
        }
    }

    func run() throws -> TrainResult {
        let lock = try JobLock(folder.appendingPathComponent(Self.lockName), job: job.name)
        defer { lock.release() }
        do {
            let result = try train()
            try JobStatusFile(state: result.outcome == .stopped ? .stopped : .finished, step: result.step,
                              totalSteps: result.steps).write(to: folder)
            return result
        } catch {
            let step = ((try? JobStatusFile.read(from: folder)) ?? nil)?.step ?? 0
            try? JobStatusFile(state: .failed, step: step, totalSteps: job.config.steps, error: "\(error)")
                .write(to: folder)
            throw error
        }
    }

    private func train() throws -> TrainResult {
        let cfg = job.config
        if options.restart {
            try discardPrevious()
            report.log("--restart: discarded the previous state, weights, metrics and samples")
        }
        if cfg.precision == .bf16 && !device.isCUDA {
            report.log("warning: precision bf16 applies to CUDA only; training in fp32 on \(device)")
        }
        let hash = try TrainingState.configHash(job: cfg, model: modelConfig)

        // Build everything from the job seed (the same draws in a fresh and a resumed session).
        Runtime.manualSeed(cfg.seed)
        let model = try ParisExpert(modelConfig, device: device)
        model.train(true)
        let ema = try EMA(model, decay: cfg.emaDecay)
        let optimizer = try AdamW(model, lr: cfg.learningRate, weightDecay: cfg.weightDecay)
        let parameters = model.parameters()
        var step = 0, cursor = LoaderCursor(), imagesSeen = 0, elapsedBefore = 0.0
        var lossEMA: Double? = nil, resumedFrom: Int? = nil, resumedInterval: IntervalStats? = nil

        if let loaded = store.loadLatest(device: device, warn: { self.report.log("warning: \($0)") }) {
            let s = loaded.state
            guard s.configHash == hash else {
                throw RunError("\(job.name): the checkpoint \(loaded.folder.path) was made with different settings "
                    + "(model, objective, batch size, learning rate, EMA, clipping, precision, dropout or seed changed "
                    + "in run.json); undo the change, or pass --restart to discard the checkpoints and start over")
            }
            do {
                try model.loadStateDict(loaded.tensors["model"]!)
                try ema.loadStateDict(loaded.tensors["ema"]!)
                try optimizer.loadStateDict(loaded.tensors["optimizer"]!)
            } catch { throw RunError("\(job.name): \(loaded.folder.path) does not fit the model: \(error)") }
            try Runtime.setRNGState(try s.cpuGeneratorState())
            if let cuda = try s.cudaGeneratorState(), device.isCUDA { try Runtime.setRNGState(cuda, device: device) }
            (step, cursor, imagesSeen, elapsedBefore, lossEMA) = (s.step, s.cursor, s.imagesSeen, s.elapsedSeconds, s.lossEMA)
            resumedFrom = step
            resumedInterval = s.interval
            if step >= cfg.steps {
                if ExpertCheckpoint.exists(in: folder) {
                    report.log("already finished (\(step) of \(cfg.steps) steps); nothing to do")
                    return TrainResult(outcome: .alreadyFinished, step: step, steps: cfg.steps, folder: folder,
                                       resumedFrom: step, lastLoss: lossEMA)
                }
                try publish(model: model, ema: ema, step: step)
                report.log("already finished (\(step) of \(cfg.steps) steps); wrote the missing published weights")
                return TrainResult(outcome: .alreadyFinished, step: step, steps: cfg.steps, folder: folder,
                                   resumedFrom: step, lastLoss: lossEMA)
            }
            report.log("resuming from step \(step) (\(loaded.folder.lastPathComponent))")
        } else {
            report.log("starting: \(cfg.model) (\(modelConfig.parameterCount) parameters), \(job.data.info.count) "
                + "images, batch \(cfg.batchSize), \(cfg.steps) steps on \(device)"
                + (autocast ? " with bf16 autocast" : ""))
        }

        let metrics = try MetricsLog(url: folder.appendingPathComponent("metrics.jsonl"),
                                     truncateAfter: resumedFrom)
        let loader: ShardLoader
        do {
            loader = try ShardLoader(shard: job.data, batchSize: cfg.batchSize, seed: cfg.seed, start: cursor,
                                     prefetch: options.prefetch)
        } catch { throw RunError("\(job.name): \(error)") }
        defer { loader.stop() }
        let grid = try SampleGrid(config: modelConfig, objective: cfg.objective, shard: job.data, device: device,
                                  seed: cfg.seed)
        let schedule = LRSchedule(baseLR: cfg.learningRate, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps)
        let dropout = try ConditionDropout(probability: cfg.captionDropout)
        let sessionStart = Date()
        var interval = resumedInterval ?? IntervalStats()
        interval.start = Date()
        var sessionSteps = 0, lastLoss: Double? = nil
        try JobStatusFile(state: .running, step: step, totalSteps: cfg.steps).write(to: folder)

        func checkpoint() throws {
            let state = TrainingState(step: step, totalSteps: cfg.steps, cursor: loader.cursor,
                                      rngCPU: try Runtime.rngState(),
                                      rngCUDA: device.isCUDA ? try Runtime.rngState(device: device) : nil,
                                      configHash: hash, imagesSeen: imagesSeen,
                                      elapsedSeconds: elapsedBefore + Date().timeIntervalSince(sessionStart),
                                      lossEMA: lossEMA, interval: interval)
            try store.write(state: state, tensors: ["model": try model.stateDict(), "ema": ema.stateDict(),
                                                    "optimizer": try optimizer.stateDict()])
            try publish(model: model, ema: ema, step: step)
        }

        while step < cfg.steps {
            let lr = schedule.lr(step: step)
            optimizer.lr = lr
            let batch = try loader.next()
            let x0 = try batch.images.to(device: device)          // [B, C, H, W] in [-1, 1]
            var text = try batch.text.to(device: device)          // [B, T, D]
            var mask: Tensor? = try batch.textMask.to(device: device)  // [B, T] bool, true = real token
            if cfg.captionDropout > 0 {
                let drop = try dropout.mask(batch: x0.size(0), device: device)  // [B] bool
                (text, mask) = try model.dropCaptions(text: text, textMask: mask, drop: drop)
            }
            let textMask = mask
            let out = try withAutocast(device: device, enabled: autocast) {
                try cfg.objective.loss(model: { x, t, c in try model(x: x, t: t, text: c!, textMask: textMask) },
                                       x0: x0, condition: text)
            }
            try optimizer.zeroGrad()
            try out.loss.backward()
            let gradNorm = try clipGradNorm(parameters, maxNorm: cfg.gradClip > 0 ? cfg.gradClip : .infinity)
            try optimizer.step()
            try ema.update(from: model)
            step += 1
            sessionSteps += 1
            imagesSeen += x0.size(0)
            let loss = try out.loss.item()
            guard loss.isFinite else {
                throw RunError("\(job.name): the loss is \(loss) at step \(step); lower learning_rate or enable "
                    + "grad_clip (the last good checkpoint is intact)")
            }
            lossEMA = lossEMA.map { 0.9 * $0 + 0.1 * loss } ?? loss
            try interval.add(out, loss: loss, gradNorm: gradNorm, images: x0.size(0))

            let isLogStep = step % cfg.logEvery == 0 || step == cfg.steps
            if isLogStep {
                let elapsed = elapsedBefore + Date().timeIntervalSince(sessionStart)
                let record = interval.record(step: step, epoch: loader.cursor.epoch, lr: lr, elapsed: elapsed,
                                             device: device)
                try metrics.append(record)
                try JobStatusFile(state: .running, step: step, totalSteps: cfg.steps).write(to: folder)
                lastLoss = record.loss
                interval.reset()
            }
            report.update(step: step, loss: lossEMA ?? loss, imagesPerSecond: interval.lastRate,
                          secondsPerStep: interval.secondsPerStep, isLogStep: isLogStep, lr: lr)
            if cfg.sampleEvery > 0 && step % cfg.sampleEvery == 0 && step < cfg.steps {
                let url = try grid.write(ema: ema, step: step, to: folder.appendingPathComponent("samples"))
                report.log("samples: \(url.path)")
            }
            let stop = options.shouldStop() || options.stopAfterSteps.map { sessionSteps >= $0 } == true
            if step % cfg.checkpointEvery == 0 || step == cfg.steps || stop {
                try checkpoint()
            }
            if stop && step < cfg.steps {
                report.finish()
                report.log("stopped at step \(step) of \(cfg.steps); checkpoint written; the same command resumes")
                return TrainResult(outcome: .stopped, step: step, steps: cfg.steps, folder: folder,
                                   resumedFrom: resumedFrom, lastLoss: lastLoss)
            }
        }
        report.finish()
        let url = try grid.write(ema: ema, step: step, to: folder.appendingPathComponent("samples"))
        report.log("finished \(step) steps; weights: \(folder.appendingPathComponent(ExpertCheckpoint.weightsName).path); "
            + "samples: \(url.path)")
        return TrainResult(outcome: .finished, step: step, steps: cfg.steps, folder: folder, resumedFrom: resumedFrom,
                           lastLoss: lastLoss)
    }

    /// Writes `config.json` + `diffusion_pytorch_model.safetensors`: the EMA weights (with the fixed buffers).
    func publish(model: ParisExpert, ema: EMA, step: Int) throws {
        var weights = try model.stateDict()
        for (name, t) in ema.stateDict() { weights[name] = t }
        try ExpertCheckpoint(model: modelConfig, objective: job.config.objective, cluster: job.cluster,
                             textEncoder: job.data.info.textEncoder, steps: step).write(weights: weights, to: folder)
    }
}

/// The running sums of one logging interval. Saved in a checkpoint (`state.json`'s `interval`), so an interval
/// split by an interruption still logs the same averages.
public struct IntervalStats: Codable, Sendable, Equatable {
    public var lossSum = 0.0, gradSum = 0.0, steps = 0, images = 0
    /// Per time bucket (10, as `TimeBucketedLoss`): summed per-sample losses and counts.
    public var bucketSums: [Double], bucketCounts: [Int]
    var start = Date()
    /// Images and steps of this session's part of the interval, for the speed.
    var sessionImages = 0, sessionSteps = 0
    /// Images per second and seconds per step of the interval so far (this session's part).
    var lastRate = 0.0, secondsPerStep = 0.0

    public init(buckets: Int = 10) {
        bucketSums = Array(repeating: 0, count: buckets)
        bucketCounts = Array(repeating: 0, count: buckets)
    }

    enum CodingKeys: String, CodingKey {
        case lossSum = "loss_sum", gradSum = "grad_sum", steps, images, bucketSums = "bucket_sums"
        case bucketCounts = "bucket_counts"
    }

    public static func == (a: IntervalStats, b: IntervalStats) -> Bool {
        (a.lossSum, a.gradSum, a.steps, a.images) == (b.lossSum, b.gradSum, b.steps, b.images)
            && a.bucketSums == b.bucketSums && a.bucketCounts == b.bucketCounts
    }

    mutating func add(_ out: ObjectiveLoss, loss: Double, gradNorm: Double, images n: Int) throws {
        var one = try TimeBucketedLoss(buckets: bucketSums.count)
        try one.add(out)
        for i in bucketSums.indices {
            bucketSums[i] += one.sums[i]
            bucketCounts[i] += one.counts[i]
        }
        lossSum += loss
        gradSum += gradNorm
        steps += 1
        images += n
        sessionSteps += 1
        sessionImages += n
        let dt = Date().timeIntervalSince(start)
        if dt > 0 {
            lastRate = Double(sessionImages) / dt
            secondsPerStep = dt / Double(sessionSteps)
        }
    }

    func record(step: Int, epoch: Int, lr: Double, elapsed: Double, device: Device) -> MetricsRecord {
        let n = Double(max(1, steps))
        let byT = zip(bucketSums, bucketCounts).map { $1 > 0 ? $0 / Double($1) : nil }
        return MetricsRecord(step: step, epoch: epoch, loss: lossSum / n, lossByT: byT, lr: lr,
                             gradNorm: gradSum / n, imagesPerSecond: lastRate, rssMB: MemoryUsage.residentMB(),
                             cudaUsedMB: MemoryUsage.cudaUsedMB(device), elapsedSeconds: elapsed)
    }

    /// Starts the next interval (the speed shown stays until its first step).
    mutating func reset() {
        let (rate, perStep) = (lastRate, secondsPerStep)
        self = IntervalStats(buckets: bucketSums.count)
        (lastRate, secondsPerStep) = (rate, perStep)
    }
}
