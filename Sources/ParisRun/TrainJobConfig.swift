import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// What a scheduler gives one job (Slurm: `--gres=gpu:N --cpus-per-task --mem --time --partition`).
public struct JobResources: Codable, Sendable, Equatable {
    public var gpus: Int
    public var cpus: Int
    /// Slurm memory string, e.g. "4G"; nil asks for the partition's default.
    public var memory: String?
    /// Slurm time limit, e.g. "01:00:00"; nil asks for the partition's default.
    public var time: String?
    /// Slurm partition; nil uses the cluster's default.
    public var partition: String?

    public init(gpus: Int = 0, cpus: Int = 1, memory: String? = nil, time: String? = nil, partition: String? = nil) {
        self.gpus = gpus
        self.cpus = cpus
        self.memory = memory
        self.time = time
        self.partition = partition
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case gpus, cpus, memory, time, partition }

    /// Unknown keys are refused (`UnknownKeyError`: "unknown key 'gpu' in experts[0].resources; did you mean
    /// 'gpus'?"), and a number that is not an integer is a type error at its key.
    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        gpus = try c.decodeIntegerIfPresent(Int.self, forKey: .gpus) ?? 0
        cpus = try c.decodeIntegerIfPresent(Int.self, forKey: .cpus) ?? 1
        memory = try c.decodeIfPresent(String.self, forKey: .memory)
        time = try c.decodeIfPresent(String.self, forKey: .time)
        partition = try c.decodeIfPresent(String.self, forKey: .partition)
    }
}

/// Numeric precision of a training job: fp32 everywhere, or bf16 autocast (CUDA) with fp32 master weights.
public enum Precision: String, Codable, Sendable, CaseIterable {
    case fp32, bf16
}

/// One training job's settings: an expert's, the router's or the monolith's. JSON keys are snake_case; every
/// key but `model` may be left out and takes the default shown in `init`.
public struct TrainJobConfig: Codable, Sendable, Equatable {
    /// A model preset name (`paris-T/4`, `router-T/4`, … see `paris models`).
    public var model: String
    /// The expert's objective (ignored by the router, which is a classifier).
    public var objective: Objective
    public var batchSize: Int
    public var steps: Int
    public var learningRate: Double
    public var warmupSteps: Int
    public var weightDecay: Double
    /// EMA decay of the weights that are saved for sampling (0 turns EMA off: the raw weights are saved).
    public var emaDecay: Double
    /// Gradient-norm clipping threshold (0 turns clipping off).
    public var gradClip: Double
    public var precision: Precision
    /// `cpu`, `cuda`, `cuda:N` or `auto` (the default: CUDA when present, else the CPU), as everywhere in paris.
    public var device: String
    /// Probability of replacing a caption by the null text (classifier-free guidance training).
    public var captionDropout: Double
    public var checkpointEvery: Int
    /// A sample grid every this many steps (0: only at the end).
    public var sampleEvery: Int
    public var logEvery: Int
    public var seed: UInt64
    public var resources: JobResources

    public init(model: String, objective: Objective = .flowMatchingUniform, batchSize: Int = 32, steps: Int = 1000,
                learningRate: Double = 3e-4, warmupSteps: Int = 100, weightDecay: Double = 0, emaDecay: Double = 0.999,
                gradClip: Double = 1, precision: Precision = .fp32, device: String = "auto", captionDropout: Double = 0.1,
                checkpointEvery: Int = 200, sampleEvery: Int = 0, logEvery: Int = 10, seed: UInt64 = 0,
                resources: JobResources = .init()) {
        self.model = model
        self.objective = objective
        self.batchSize = batchSize
        self.steps = steps
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.weightDecay = weightDecay
        self.emaDecay = emaDecay
        self.gradClip = gradClip
        self.precision = precision
        self.device = device
        self.captionDropout = captionDropout
        self.checkpointEvery = checkpointEvery
        self.sampleEvery = sampleEvery
        self.logEvery = logEvery
        self.seed = seed
        self.resources = resources
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, objective, batchSize = "batch_size", steps, learningRate = "learning_rate"
        case warmupSteps = "warmup_steps", weightDecay = "weight_decay", emaDecay = "ema_decay", gradClip = "grad_clip"
        case precision, device, captionDropout = "caption_dropout", checkpointEvery = "checkpoint_every"
        case sampleEvery = "sample_every", logEvery = "log_every", seed, resources
    }

    /// Unknown keys are refused (`UnknownKeyError`: "unknown key 'stepz' in experts[0]; did you mean 'steps'?"),
    /// and a number that is not an integer (`"steps": 4.5`) is a type error at its key.
    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainJobConfig(model: try c.decode(String.self, forKey: .model))
        model = d.model
        objective = try c.decodeIfPresent(Objective.self, forKey: .objective) ?? d.objective
        batchSize = try c.decodeIntegerIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        steps = try c.decodeIntegerIfPresent(Int.self, forKey: .steps) ?? d.steps
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        warmupSteps = try c.decodeIntegerIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? d.weightDecay
        emaDecay = try c.decodeIfPresent(Double.self, forKey: .emaDecay) ?? d.emaDecay
        gradClip = try c.decodeIfPresent(Double.self, forKey: .gradClip) ?? d.gradClip
        precision = try c.decodeIfPresent(Precision.self, forKey: .precision) ?? d.precision
        device = try c.decodeIfPresent(String.self, forKey: .device) ?? d.device
        captionDropout = try c.decodeIfPresent(Double.self, forKey: .captionDropout) ?? d.captionDropout
        checkpointEvery = try c.decodeIntegerIfPresent(Int.self, forKey: .checkpointEvery) ?? d.checkpointEvery
        sampleEvery = try c.decodeIntegerIfPresent(Int.self, forKey: .sampleEvery) ?? d.sampleEvery
        logEvery = try c.decodeIntegerIfPresent(Int.self, forKey: .logEvery) ?? d.logEvery
        seed = try c.decodeIntegerIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        resources = try c.decodeIfPresent(JobResources.self, forKey: .resources) ?? d.resources
    }

    /// Throws a `RunError` naming `what` ("expert 2", "router") for a value out of range.
    public func validate(_ what: String) throws {
        func check(_ ok: Bool, _ why: String) throws { if !ok { throw RunError("\(what): \(why)") } }
        try check(batchSize > 0, "batch_size must be positive, not \(batchSize)")
        try check(steps > 0, "steps must be positive, not \(steps)")
        try check(learningRate > 0 && learningRate.isFinite, "learning_rate must be positive, not \(learningRate)")
        try check(warmupSteps >= 0, "warmup_steps must be ≥ 0, not \(warmupSteps)")
        try check(weightDecay >= 0, "weight_decay must be ≥ 0, not \(weightDecay)")
        try check((0..<1).contains(emaDecay), "ema_decay must be in [0, 1), not \(emaDecay)")
        try check(gradClip >= 0, "grad_clip must be ≥ 0, not \(gradClip)")
        try check((0...1).contains(captionDropout), "caption_dropout must be in [0, 1], not \(captionDropout)")
        try check(checkpointEvery > 0, "checkpoint_every must be positive, not \(checkpointEvery)")
        try check(sampleEvery >= 0, "sample_every must be ≥ 0, not \(sampleEvery)")
        try check(logEvery > 0, "log_every must be positive, not \(logEvery)")
        try check(resources.gpus >= 0 && resources.cpus > 0, "resources need gpus ≥ 0 and cpus ≥ 1")
        do { _ = try Device(parsing: device) } catch { throw RunError("\(what): \(error)") }
        do { try objective.validate() } catch { throw RunError("\(what): \(error)") }
    }
}

/// Why a run could not be set up, loaded or trained.
public struct RunError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
