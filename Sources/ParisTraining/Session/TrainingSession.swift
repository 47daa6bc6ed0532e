import Foundation
import ParisData
import ParisRun
import Torch

/// The one training skeleton: one session of any job (an expert, the monolith, the router) around the job's own
/// step (`TrainingJob`), with the same resume, logging and stop semantics for all of them.
///
/// 1. Takes `<job>/train.lock`; with `--restart`, removes the job's checkpoints, metrics, status and outputs.
/// 2. Seeds libtorch's generator with the job's seed and lets the job build its model (`makeState`).
/// 3. Resumes from the newest good checkpoint (`TrainingCheckpoints`): refuses one made with other settings
///    (the config hash) or on other shards (`ShardIdentity`: the partition was rebuilt), restores the job's tensors, the generator states (CPU, and CUDA on a GPU job), the data
///    cursor and the partly done logging interval. A resumed session therefore makes the draws an
///    uninterrupted one would have made, and ends bit-identical to it.
/// 4. Loops: the job's step at the warmup + cosine learning rate; every `log_every` steps (and at the last) one
///    `MetricsRecord` line in `metrics.jsonl` and a `running` status.json; the progress line; every
///    `checkpoint_every` steps, at the last step and at a stop, a checkpoint, then `publish`. After each step the
///    stop rule: `TrainOptions.shouldStop` or `stopAfterSteps` steps done in this session ends it (`.stopped`).
/// 5. Ends with the job's `finish` and a `finished` status.json; an error writes a `failed` one with the message.
final class TrainingSession {
    let job: any TrainingJob
    let options: TrainOptions
    let report: ProgressReporter
    let store: TrainingCheckpoints
    /// The step the job stands at, once known (for the `failed` status).
    private var step: Int?
    private var folder: URL { job.folder }

    init(_ job: any TrainingJob, options: TrainOptions) throws {
        self.job = job
        self.options = options
        store = TrainingCheckpoints(folder: job.folder.appendingPathComponent(CheckpointFolder.name))
        try FileManager.default.createDirectory(at: job.folder, withIntermediateDirectories: true)
        var output = options.output
        output.logFile = job.folder.appendingPathComponent("log.txt")
        report = ProgressReporter(job: job.name, totalSteps: job.settings.steps, output: output)
    }

    /// Trains (or resumes) the job to its `steps`, or until a stop; status.json says how it ended.
    func run() throws -> TrainResult {
        let lock = try FileLock(folder.appendingPathComponent(FileLock.trainingName), busy: "\(job.name) is being trained")
        defer { lock.release() }
        defer {
            job.close()
            report.finish()
        }
        do {
            let result = try train()
            try writeStatus(result.outcome == .stopped ? .stopped : .finished, step: result.step)
            return result
        } catch {
            let previous = ((try? JobStatusFile.read(from: folder)) ?? nil)?.step ?? 0
            try? writeStatus(.failed, step: step ?? previous, error: "\(error)")
            throw error
        }
    }

    private func train() throws -> TrainResult {
        let settings = job.settings
        if options.restart {
            try discardPrevious()
            report.log("--restart: discarded the previous checkpoints, metrics and outputs")
        }
        let autocast = settings.precision == .bf16 && job.device.isCUDA
        if settings.precision == .bf16 && !job.device.isCUDA {
            report.log("warning: precision bf16 applies to CUDA only; training in fp32 on \(job.device)")
        }
        let hash = try job.configHash()
        // Build everything from the job seed (the same draws in a fresh and a resumed session).
        Runtime.manualSeed(settings.seed)
        try job.makeState()
        guard let resumed = try resume(hash: hash) else {
            report.log("starting: \(job.summary), batch \(settings.batchSize), \(settings.steps) steps on "
                + "\(job.device)" + (autocast ? " with bf16 autocast" : ""))
            return try loop(from: TrainingPosition(), resumedFrom: nil, hash: hash)
        }
        if resumed.step >= settings.steps { return try alreadyFinished(resumed) }
        report.log("resuming from step \(resumed.step) (\(CheckpointFolder.name(step: resumed.step)))")
        return try loop(from: resumed, resumedFrom: resumed.step, hash: hash)
    }

    /// Loads the newest good checkpoint into the job and the generators; nil when there is none.
    private func resume(hash: String) throws -> TrainingPosition? {
        let keys = Array(try job.stateTensors().keys)
        guard let loaded = store.loadLatest(device: job.device, keys: keys,
                                            warn: { report.log("warning: \($0)") }) else { return nil }
        let s = loaded.state
        guard s.configHash == hash else {
            throw RunError("\(job.name): the checkpoint \(loaded.folder.path) was made with different settings (model, "
                + "objective, batch size, learning rate, warmup, weight decay, EMA, clipping, precision, caption "
                + "dropout, seed, or the router's time sampling or held-out fraction changed in run.json); undo the "
                + "change, or pass --restart to discard the checkpoints and start over")
        }
        try checkShards(s.shards, checkpoint: loaded.folder)
        do { try job.load(loaded.tensors) } catch {
            throw RunError("\(job.name): \(loaded.folder.path) does not fit the model: \(error)")
        }
        try Runtime.setRNGState(try s.cpuGeneratorState())
        if let cuda = try s.cudaGeneratorState(), job.device.isCUDA { try Runtime.setRNGState(cuda, device: job.device) }
        step = s.step
        return TrainingPosition(s)
    }

    /// Refuses a checkpoint trained on other shards than the job's (the partition was rebuilt under the run);
    /// one that records none (written before shard identities were) resumes with a warning.
    private func checkShards(_ recorded: ShardIdentity?, checkpoint: URL) throws {
        guard let recorded else {
            report.log("warning: \(job.name): \(checkpoint.path) records no shard checksums (written before they were "
                + "recorded), so it cannot be checked against the current shards; resuming anyway. If the partition "
                + "was rebuilt since, pass --restart")
            return
        }
        let changed = recorded.differences(from: job.shards)
        guard !changed.isEmpty else { return }
        throw RunError("\(job.name): the checkpoint \(checkpoint.path) was trained on other data: "
            + changed.joined(separator: ", ") + " (the partition was rebuilt since). Either pass --restart to discard "
            + "the checkpoints and train on the current shards, or re-partition back (the same data, settings and "
            + "seed) to resume")
    }

    /// A checkpoint at or past `steps`: writes what the end writes if some of it is missing, and trains nothing.
    private func alreadyFinished(_ at: TrainingPosition) throws -> TrainResult {
        let total = job.settings.steps
        if job.hasFinished(step: at.step) {
            report.log("already finished (\(at.step) of \(total) steps); nothing to do")
        } else {
            try job.publish(step: at.step)
            let written = try job.finish(step: at.step, log: report.log)
            report.log("already finished (\(at.step) of \(total) steps); wrote the missing outputs: \(written)")
        }
        return TrainResult(outcome: .alreadyFinished, step: at.step, steps: total, folder: folder,
                           resumedFrom: at.step, lastLoss: at.lossEMA)
    }

    private func loop(from start: TrainingPosition, resumedFrom: Int?, hash: String) throws -> TrainResult {
        let settings = job.settings, total = settings.steps
        let metrics = try MetricsLog(url: folder.appendingPathComponent(MetricsFile.fileName),
                                     truncateAfter: resumedFrom)
        let schedule = LRSchedule(baseLR: settings.learningRate, warmupSteps: settings.warmupSteps, totalSteps: total)
        let sessionStart = Date(), elapsedBefore = start.elapsedSeconds
        func elapsed() -> Double { elapsedBefore + Date().timeIntervalSince(sessionStart) }
        var at = start, sessionSteps = 0, lastLoss: Double? = nil
        at.interval.start = Date()
        step = at.step
        try writeStatus(.running, step: at.step)

        while at.step < total {
            let lr = schedule.lr(step: at.step)
            let m = try job.step(at.step, at: at.cursor, lr: lr)
            at.step += 1
            step = at.step
            sessionSteps += 1
            at.cursor = m.cursor
            at.imagesSeen += m.images
            guard m.loss.isFinite else {
                throw RunError("\(job.name): the loss is \(m.loss) at step \(at.step); lower learning_rate or enable "
                    + "grad_clip (the last good checkpoint is intact)")
            }
            at.lossEMA = at.lossEMA.map { 0.9 * $0 + 0.1 * m.loss } ?? m.loss
            at.interval.add(m)

            let isLogStep = at.step % settings.logEvery == 0 || at.step == total
            let accuracy = at.interval.accuracy
            if isLogStep {
                let record = at.interval.record(step: at.step, epoch: at.cursor.epoch, lr: lr, elapsed: elapsed(),
                                                device: job.device)
                try metrics.append(record)
                try writeStatus(.running, step: at.step)
                lastLoss = record.loss
                at.interval.reset()
            }
            report.update(step: at.step, loss: at.lossEMA ?? m.loss, accuracy: accuracy,
                          imagesPerSecond: at.interval.lastRate, secondsPerStep: at.interval.secondsPerStep,
                          isLogStep: isLogStep, lr: lr)
            try job.afterStep(at.step, log: report.log)

            let stop = options.shouldStop() || options.stopAfterSteps.map { sessionSteps >= $0 } == true
            if at.step % settings.checkpointEvery == 0 || at.step == total || stop {
                at.elapsedSeconds = elapsed()
                try checkpoint(at, hash: hash)
            }
            if stop && at.step < total {
                report.finish()
                report.log("stopped at step \(at.step) of \(total); checkpoint written; the same command resumes")
                return TrainResult(outcome: .stopped, step: at.step, steps: total, folder: folder,
                                   resumedFrom: resumedFrom, lastLoss: lastLoss)
            }
        }
        report.finish()
        let written = try job.finish(step: at.step, log: report.log)
        report.log("finished \(at.step) steps; \(written)")
        return TrainResult(outcome: .finished, step: at.step, steps: total, folder: folder, resumedFrom: resumedFrom,
                           lastLoss: lastLoss)
    }

    /// Writes step `at.step`'s checkpoint (the job's tensors, the generator states, `at`), then publishes.
    private func checkpoint(_ at: TrainingPosition, hash: String) throws {
        let device = job.device
        let state = TrainingState(step: at.step, totalSteps: job.settings.steps, cursor: at.cursor,
                                  rngCPU: try Runtime.rngState(),
                                  rngCUDA: device.isCUDA ? try Runtime.rngState(device: device) : nil,
                                  configHash: hash, shards: job.shards, imagesSeen: at.imagesSeen, elapsedSeconds: at.elapsedSeconds,
                                  lossEMA: at.lossEMA, interval: at.interval)
        try store.write(state: state, tensors: try job.stateTensors())
        try job.publish(step: at.step)
    }

    /// Removes what a previous training of this job wrote (for `--restart`); `log.txt` stays.
    private func discardPrevious() throws {
        let fm = FileManager.default
        for name in [CheckpointFolder.name, MetricsFile.fileName, JobStatusFile.fileName] + job.outputs {
            let url = folder.appendingPathComponent(name)
            if fm.fileExists(atPath: url.path) { try fm.removeItem(at: url) }
        }
    }

    private func writeStatus(_ state: JobState, step: Int, error: String? = nil) throws {
        try JobStatusFile(state: state, step: step, totalSteps: job.settings.steps, error: error).write(to: folder)
    }
}

/// Where a job stands, besides its tensors and the generator states: what a checkpoint's `TrainingState` adds.
struct TrainingPosition {
    var step = 0
    var cursor = LoaderCursor()
    var imagesSeen = 0
    /// Training time over every session, up to the last checkpoint (or this one's start).
    var elapsedSeconds = 0.0
    /// The smoothed loss of the progress line.
    var lossEMA: Double?
    /// The logging interval under way.
    var interval = IntervalStats()

    init() {}

    init(_ s: TrainingState) {
        (step, cursor, imagesSeen, elapsedSeconds, lossEMA) = (s.step, s.cursor, s.imagesSeen, s.elapsedSeconds,
                                                               s.lossEMA)
        interval = s.interval ?? IntervalStats()
    }
}
