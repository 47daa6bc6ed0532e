import Foundation
import ParisData
import ParisDiffusion
import ParisModels
import ParisRun
import Torch

/// What `paris train lora` adapts and how: the base expert, the contributor's shard, PEFT's LoRA settings, and the
/// training settings that differ from the base expert's run.json entry (batch size, caption dropout, precision and
/// device default to the base's; the objective is always the base's).
public struct LoRAJobRequest {
    /// The run whose expert is the base.
    public var run: URL
    /// The base expert k (`<run>/expert_<k>/`).
    public var expert: Int
    /// The contributor's data: a shard folder (`paris partition … --k 1` writes one as `<out>/shard_0`).
    public var data: URL
    public var lora: LoRAConfig
    /// Where the adapters go (default `<run>/lora_<k>/`).
    public var out: URL?
    public var steps = 500
    public var learningRate = 1e-3
    public var warmupSteps = 20
    public var batchSize: Int? = nil
    public var device: String? = nil
    public var seed: UInt64 = 0
    public var checkpointEvery = 100
    public var sampleEvery = 0
    public var logEvery = 25

    public init(run: URL, expert: Int, data: URL, lora: LoRAConfig, out: URL? = nil) {
        self.run = run
        self.expert = expert
        self.data = data
        self.lora = lora
        self.out = out
    }

    /// The base expert's run.json entry with this request's settings; no EMA (the adapters are published as
    /// trained).
    func training(base: TrainJobConfig, objective: Objective) -> TrainJobConfig {
        var c = base
        c.objective = objective
        c.steps = steps
        c.learningRate = learningRate
        c.warmupSteps = warmupSteps
        c.batchSize = batchSize ?? base.batchSize
        c.device = device ?? base.device
        c.seed = seed
        c.emaDecay = 0
        c.checkpointEvery = checkpointEvery
        c.sampleEvery = sampleEvery
        c.logEvery = logEvery
        return c
    }

    func validate() throws {
        guard steps > 0, steps <= 10_000_000 else { throw RunError("LoRA steps must be positive, not \(steps)") }
        guard learningRate > 0, learningRate.isFinite else {
            throw RunError("the LoRA learning rate must be positive, not \(learningRate)")
        }
        guard warmupSteps >= 0, checkpointEvery > 0, sampleEvery >= 0, logEvery > 0 else {
            throw RunError("warmup ≥ 0, checkpoint-every > 0, sample-every ≥ 0 and log-every > 0 are required")
        }
        if let batchSize, batchSize <= 0 { throw RunError("the batch size must be positive, not \(batchSize)") }
        try lora.validate()
    }
}

/// `paris train lora`: trains low-rank adapters on a frozen expert, on data that never leaves the contributor.
///
/// The base expert's weights are hashed (SHA-256 of `diffusion_pytorch_model.safetensors`) when the job starts
/// and at every resume, and the hash is written into the adapters' metadata, so the adapters name the exact
/// weights they adapt. The loss is the experts' own (`diffusionLoss`: the objective with caption dropout); only
/// the adapters' A and B are trained (AdamW, no EMA). The session (lock, resume, checkpoints, status, stop rule)
/// is `TrainingSession`'s. Writes, in the output folder, PEFT's `adapter_config.json` +
/// `adapter_model.safetensors`, `state/`, `metrics.jsonl`, `status.json` and sample grids of base + adapters.
public enum LoRATrainer {
    public static func train(_ request: LoRAJobRequest, options: TrainOptions = .init()) throws -> TrainResult {
        let layout = RunLayout(request.run)
        let baseFolder = layout.expert(request.expert)
        guard ExpertCheckpoint.exists(in: baseFolder) else {
            throw RunError("expert \(request.expert) has no published weights in \(baseFolder.path); train it first "
                + "(`paris train expert --run \(request.run.path) --expert \(request.expert)`)")
        }
        let base = try ExpertCheckpoint.checkWeights(in: baseFolder)
        let shard: ShardReader
        do {
            shard = try ShardReader(folder: request.data)
            for i in shard.parts.indices { _ = try shard.part(i) }  // every part verified before training starts
        } catch {
            throw RunError("--data \(request.data.path) is not a readable shard (\(error)); make one from an image "
                + "folder with `paris partition --data D --out OUT --k 1 --features text` and pass OUT/shard_0")
        }
        try checkCompatible(shard.info, base: base, data: request.data)
        try request.validate()
        let folder = request.out ?? layout.root.appendingPathComponent("lora_\(request.expert)")
        let training = request.training(base: try layout.config().expert(request.expert), objective: base.objective)
        let job = LoRAJob(name: "lora of expert \(request.expert)", base: base, baseFolder: baseFolder,
                          lora: request.lora, config: training, data: shard, folder: folder)
        let trainer = try LoRATrainerJob(job, prefetch: options.prefetch)
        return try TrainingSession(trainer, options: options).run()
    }

    /// A shard fits a base expert when its images and caption tokens have the expert's shapes and encoder.
    static func checkCompatible(_ info: ShardInfo, base: ExpertCheckpoint, data: URL) throws {
        let m = base.model
        var problems: [String] = []
        if info.channels != m.inChannels || info.imageSize != m.inputSize {
            problems.append("images \(info.channels)×\(info.imageSize)² vs the expert's \(m.inChannels)×\(m.inputSize)²")
        }
        if info.textDim != m.textDim || info.textLength != m.textLength {
            problems.append("caption tokens \(info.textLength)×\(info.textDim) vs \(m.textLength)×\(m.textDim)")
        }
        if info.textEncoder != base.textEncoder {
            problems.append("text encoder \(info.textEncoder) vs \(base.textEncoder)")
        }
        guard problems.isEmpty else {
            throw RunError("\(data.path) does not fit the base expert: " + problems.joined(separator: "; "))
        }
    }
}

/// What the configuration hash of a LoRA job covers besides the training settings: the base and the adapters.
private struct LoRATrajectory: Encodable {
    let base: ParisExpertConfig
    let baseSHA256: String
    let lora: LoRAConfig
}

struct LoRAJob {
    let name: String
    let base: ExpertCheckpoint
    let baseFolder: URL
    let lora: LoRAConfig
    let config: TrainJobConfig
    let data: ShardReader
    let folder: URL
}

/// The LoRA step (a `TrainingJob`): the frozen base with adapters on the target layers; a checkpoint holds the
/// adapters (`model`, PEFT's names) and the optimizer.
final class LoRATrainerJob: TrainingJob {
    let job: LoRAJob
    let device: Device
    let autocast: Bool
    let prefetch: Int
    /// SHA-256 of the base weights file, taken when the job is made.
    let baseSHA256: String
    var name: String { job.name }
    var folder: URL { job.folder }
    var settings: TrainJobConfig { job.config }
    var shards: ShardIdentity { ShardIdentity([job.data.info]) }
    var summary: String {
        "LoRA r = \(job.lora.r), α = \(job.lora.loraAlpha) on \(job.lora.targetModules.joined(separator: ", ")) of "
            + "\(job.baseFolder.lastPathComponent) (\(job.base.model.parameterCount) frozen parameters), "
            + "\(job.data.count) images"
    }
    var outputs: [String] { ["samples", LoRACheckpoint.configName, LoRACheckpoint.weightsName] }

    private var model: ParisExpert!
    private var optimizer: AdamW!
    private var grid: SampleGrid!
    private var dropout: ConditionDropout!
    private var loader: ShardLoader?

    init(_ job: LoRAJob, prefetch: Int) throws {
        self.job = job
        self.prefetch = prefetch
        device = try ModelFactory.device(job.config.device, job: job.name)
        autocast = job.config.precision == .bf16 && device.isCUDA
        baseSHA256 = try Checksum.sha256(file: job.baseFolder.appendingPathComponent(ExpertCheckpoint.weightsName))
    }

    func configHash() throws -> String {
        try TrainingState.configHash(job: job.config, model: LoRATrajectory(base: job.base.model,
                                                                             baseSHA256: baseSHA256, lora: job.lora))
    }

    func makeState() throws {
        let (model, _) = try ExpertCheckpoint.load(from: job.baseFolder, device: device)
        let now = try Checksum.sha256(file: job.baseFolder.appendingPathComponent(ExpertCheckpoint.weightsName))
        guard now == baseSHA256 else {
            throw RunError("\(job.name): the base weights in \(job.baseFolder.path) changed while the job ran")
        }
        try model.requiresGrad(false)
        let adapters = try LoRA.inject(into: model, targets: job.lora.targetModules, rank: job.lora.r,
                                       alpha: job.lora.loraAlpha, dropout: job.lora.loraDropout)
        model.train(true)
        self.model = model
        optimizer = try AdamW(adapters.flatMap { $0.1.parameters() }, lr: job.config.learningRate,
                              weightDecay: job.config.weightDecay)
        grid = try SampleGrid(config: job.base.model, objective: job.base.objective,
                              shard: try TrainingData.captionSource(job.data, count: 8), device: device,
                              seed: job.config.seed)
        dropout = try ConditionDropout(probability: job.config.captionDropout)
    }

    func stateTensors() throws -> [String: [String: Tensor]] {
        ["model": try LoRA.stateDict(of: model), "optimizer": try optimizer.stateDict()]
    }

    func load(_ tensors: [String: [String: Tensor]]) throws {
        try LoRA.load(tensors["model"]!, into: model)
        try optimizer.loadStateDict(tensors["optimizer"]!)
    }

    func step(_ step: Int, at cursor: LoaderCursor, lr: Double) throws -> StepMetrics {
        let l = try ShardLoader.reopened(loader, at: cursor, shard: job.data, config: job.config, prefetch: prefetch,
                                         job: job.name)
        loader = l
        let batch = try l.next()
        let out = try diffusionLoss(model, batch: batch, config: job.config, dropout: dropout, device: device,
                                    autocast: autocast)
        let gradNorm = try descend(out.loss, optimizer: optimizer, lr: lr, gradClip: job.config.gradClip)
        return try StepMetrics(out, gradNorm: gradNorm, cursor: batch.cursor)
    }

    func afterStep(_ step: Int, log: (String) -> Void) throws {
        let every = job.config.sampleEvery
        guard every > 0 && step % every == 0 && step < job.config.steps else { return }
        log("samples: \(try writeSamples(step: step).path)")
    }

    func publish(step: Int) throws {
        var config = job.lora
        config.baseModelNameOrPath = job.baseFolder.lastPathComponent
        try LoRACheckpoint(config: config, baseSHA256: baseSHA256, baseModel: job.base.model, steps: step)
            .write(weights: try LoRA.stateDict(of: model), to: folder)
    }

    func hasFinished(step: Int) -> Bool {
        LoRACheckpoint.exists(in: folder) && (try? LoRACheckpoint.read(from: folder))?.steps == step
    }

    func finish(step: Int, log: (String) -> Void) throws -> String {
        let url = try writeSamples(step: step)
        return "adapters: \(folder.appendingPathComponent(LoRACheckpoint.weightsName).path); samples: \(url.path)"
    }

    private func writeSamples(step: Int) throws -> URL {
        try grid.write(model: model, step: step, to: folder.appendingPathComponent("samples"))
    }

    func close() { loader?.stop() }
}
