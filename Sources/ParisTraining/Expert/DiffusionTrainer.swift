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
    /// The shard (or, for the monolith, every shard), read part by part.
    let data: ShardReader
    /// The shards behind `data`.
    let shards: ShardIdentity
    let folder: URL
    /// The partition folder, where a latent shard's autoencoder lives (`<partition>/autoencoder/`, for the sample
    /// grids); nil: no decoding (pixel shards, or grids of raw latents).
    var partition: URL? = nil
}

/// The step of experts and the monolith (a `TrainingJob`; the loop, resume and checkpoints are
/// `TrainingSession`'s): the objective's loss on a shard batch with caption dropout, under bf16 autocast on CUDA;
/// AdamW with gradient clipping, then the EMA. A checkpoint holds `model`, `ema` and `optimizer`; the published
/// weights (`config.json` + `diffusion_pytorch_model.safetensors`) are the EMA ones. Sample grids every
/// `sample_every` steps and at the end.
final class DiffusionTrainer: TrainingJob {
    let job: DiffusionJob
    let modelConfig: ParisExpertConfig
    let device: Device
    let autocast: Bool
    /// Batches the loader prepares ahead.
    let prefetch: Int
    var name: String { job.name }
    var folder: URL { job.folder }
    var settings: TrainJobConfig { job.config }
    var summary: String {
        "\(job.config.model) (\(modelConfig.parameterCount) parameters), \(job.data.count) images"
    }
    var outputs: [String] { [Self.samplesName, ExpertCheckpoint.configName, ExpertCheckpoint.weightsName] }
    static let samplesName = "samples"

    // Built by makeState().
    private var model: ParisExpert!
    private var ema: EMA!
    private var optimizer: AdamW!
    private var grid: SampleGrid!
    private var dropout: ConditionDropout!
    /// The loader of the session, opened at the first step's cursor.
    private var loader: ShardLoader?

    init(_ job: DiffusionJob, prefetch: Int) throws {
        self.job = job
        self.prefetch = prefetch
        modelConfig = try ModelFactory.expertConfig(preset: job.config.model, shard: job.data.info)
        device = try ModelFactory.device(job.config.device, job: job.name)
        autocast = job.config.precision == .bf16 && device.isCUDA
    }

    func configHash() throws -> String { try TrainingState.configHash(job: job.config, model: modelConfig) }
    var shards: ShardIdentity { job.shards }

    func makeState() throws {
        let cfg = job.config
        // A pixel expert must not continue on latents, nor a latent expert on pixels or another autoencoder's latents.
        if let old = try? ExpertCheckpoint.read(from: folder), old.latents != job.data.info.latents {
            let was = old.latents.map { "latents of \($0.summary)" } ?? "pixels"
            throw RunError("\(job.name): \(folder.path) was trained on \(was), but its shard holds "
                + "\(job.data.info.contentSummary); pass --restart to train it anew on this data, or point run.json's "
                + "partition back at the data it was trained on")
        }
        model = try ParisExpert(modelConfig, device: device)
        model.train(true)
        ema = try EMA(model, decay: cfg.emaDecay)
        optimizer = try AdamW(model, lr: cfg.learningRate, weightDecay: cfg.weightDecay)
        grid = try SampleGrid(config: modelConfig, objective: cfg.objective,
                              shard: try TrainingData.captionSource(job.data, count: 8), device: device,
                              seed: cfg.seed)
        dropout = try ConditionDropout(probability: cfg.captionDropout)
        if let space = job.data.info.latents, let partition = job.partition {
            grid.decoder = try LatentEncoding.autoencoder(partition: partition, expected: space, device: device)
        }
    }

    func stateTensors() throws -> [String: [String: Tensor]] {
        ["model": try model.stateDict(), "ema": ema.stateDict(), "optimizer": try optimizer.stateDict()]
    }

    func load(_ tensors: [String: [String: Tensor]]) throws {
        try model.loadStateDict(tensors["model"]!)
        try ema.loadStateDict(tensors["ema"]!)
        try optimizer.loadStateDict(tensors["optimizer"]!)
    }

    func step(_ step: Int, at cursor: LoaderCursor, lr: Double) throws -> StepMetrics {
        let batch = try loader(at: cursor).next()
        let out = try diffusionLoss(model, batch: batch, config: job.config, dropout: dropout, device: device,
                                    autocast: autocast)
        let gradNorm = try descend(out.loss, optimizer: optimizer, lr: lr, gradClip: job.config.gradClip)
        try ema.update(from: model)
        return try StepMetrics(out, gradNorm: gradNorm, cursor: batch.cursor)
    }

    /// The session's loader, reopened if the cursor is not where it stands.
    private func loader(at cursor: LoaderCursor) throws -> ShardLoader {
        let l = try ShardLoader.reopened(loader, at: cursor, shard: job.data, config: job.config, prefetch: prefetch,
                                         job: job.name)
        loader = l
        return l
    }

    func afterStep(_ step: Int, log: (String) -> Void) throws {
        let every = job.config.sampleEvery
        guard every > 0 && step % every == 0 && step < job.config.steps else { return }
        log("samples: \(try writeSamples(step: step).path)")
    }

    /// Writes `config.json` + `diffusion_pytorch_model.safetensors`: the EMA weights (with the fixed buffers).
    func publish(step: Int) throws {
        var weights = try model.stateDict()
        for (name, t) in ema.stateDict() { weights[name] = t }
        try ExpertCheckpoint(model: modelConfig, objective: job.config.objective, cluster: job.cluster,
                             textEncoder: job.data.info.textEncoder, steps: step, shards: job.shards,
                             latents: job.data.info.latents)
            .write(weights: weights, to: folder)
    }

    func hasFinished(step: Int) -> Bool {
        ExpertCheckpoint.exists(in: folder) && (try? ExpertCheckpoint.read(from: folder))?.steps == step
    }

    /// The last sample grid.
    func finish(step: Int, log: (String) -> Void) throws -> String {
        let url = try writeSamples(step: step)
        return "weights: \(folder.appendingPathComponent(ExpertCheckpoint.weightsName).path); samples: \(url.path)"
    }

    private func writeSamples(step: Int) throws -> URL {
        try grid.write(ema: ema, step: step, to: folder.appendingPathComponent(Self.samplesName))
    }

    func close() { loader?.stop() }
}

/// The diffusion loss of `model` on one shard batch, the step every diffusion trainer shares (experts, the
/// monolith, LoRA): caption dropout through the model's null text, then the objective's loss under bf16 autocast
/// when `autocast` is on.
func diffusionLoss(_ model: ParisExpert, batch: ShardBatch, config cfg: TrainJobConfig, dropout: ConditionDropout,
                   device: Device, autocast: Bool) throws -> ObjectiveLoss {
    let x0 = try batch.images.to(device: device)               // [B, C, H, W] in [-1, 1]
    var text = try batch.text.to(device: device)               // [B, T, D]
    var mask: Tensor? = try batch.textMask.to(device: device)  // [B, T] bool, true = real token
    if cfg.captionDropout > 0 {
        let drop = try dropout.mask(batch: x0.size(0), device: device)  // [B] bool
        (text, mask) = try model.dropCaptions(text: text, textMask: mask, drop: drop)
    }
    let textMask = mask
    return try withAutocast(device: device, enabled: autocast) {
        try cfg.objective.loss(model: { x, t, c in try model(x: x, t: t, text: c!, textMask: textMask) },
                               x0: x0, condition: text)
    }
}

extension StepMetrics {
    /// A diffusion step's metrics: the batch's loss, overall and by time bucket.
    init(_ out: ObjectiveLoss, gradNorm: Double, cursor: LoaderCursor) throws {
        var byT = try TimeBucketedLoss()
        try byT.add(out)
        self.init(loss: try out.loss.item(), gradNorm: gradNorm, images: out.perSample.size(0),
                  cursor: cursor, lossByT: byT)
    }
}

extension ShardLoader {
    /// `current` when it stands at `cursor`, else a new loader there (the old one stopped): how a session's
    /// loader follows the session's cursor.
    static func reopened(_ current: ShardLoader?, at cursor: LoaderCursor, shard: ShardReader, config: TrainJobConfig,
                         prefetch: Int, job: String) throws -> ShardLoader {
        if let current, current.cursor == cursor { return current }
        current?.stop()
        do {
            return try ShardLoader(reader: shard, batchSize: config.batchSize, seed: config.seed, start: cursor,
                                   prefetch: prefetch)
        } catch { throw RunError("\(job): \(error)") }
    }
}
