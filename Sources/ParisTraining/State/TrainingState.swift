import Foundation
import ParisRun
import ParisData
import ParisDiffusion
import Torch

/// `state.json` of one training checkpoint (`<job>/state/step_<N>/state.json`): everything besides the tensors
/// that a resumed job needs to continue exactly where the checkpoint was taken.
public struct TrainingState: CheckpointState, Equatable {
    public static let currentFormat = "paris-train-state-v1"
    public var format: String
    /// Optimizer steps completed.
    public var step: Int
    /// The job's `steps` when the checkpoint was written.
    public var totalSteps: Int
    /// Where the shard loader stands (the next batch is read from here).
    public var cursor: LoaderCursor
    /// libtorch's CPU generator state, base64.
    public var rngCPU: String
    /// The CUDA generator state of the job's device, base64 (CUDA jobs only).
    public var rngCUDA: String?
    /// The hash of the settings that shape the training trajectory (see `TrainingState.configHash`).
    public var configHash: String
    /// The shards the job trains on (`ShardIdentity`): a resume on shards that changed since is refused. nil in a
    /// checkpoint written before they were recorded (resumed with a warning).
    public var shards: ShardIdentity?
    public var imagesSeen: Int
    /// Training time so far, in seconds, over every session.
    public var elapsedSeconds: Double
    /// The smoothed loss at the checkpoint (for the progress line).
    public var lossEMA: Double?
    /// The partly done logging interval (so its averages survive an interruption).
    public var interval: IntervalStats?
    /// Byte size of each tensor file in the checkpoint folder, checked before loading.
    public var files: [String: Int]
    /// ISO 8601 time of writing.
    public var written: String

    public init(step: Int, totalSteps: Int, cursor: LoaderCursor, rngCPU: [UInt8], rngCUDA: [UInt8]?,
                configHash: String, shards: ShardIdentity? = nil, imagesSeen: Int, elapsedSeconds: Double,
                lossEMA: Double?, interval: IntervalStats? = nil) {
        self.format = Self.currentFormat
        self.step = step
        self.totalSteps = totalSteps
        self.cursor = cursor
        self.rngCPU = Data(rngCPU).base64EncodedString()
        self.rngCUDA = rngCUDA.map { Data($0).base64EncodedString() }
        self.configHash = configHash
        self.shards = shards
        self.imagesSeen = imagesSeen
        self.elapsedSeconds = elapsedSeconds
        self.lossEMA = lossEMA
        self.interval = interval
        self.files = [:]
        self.written = ISO8601DateFormatter().string(from: Date())
    }

    enum CodingKeys: String, CodingKey {
        case format, step, totalSteps = "total_steps", cursor, rngCPU = "rng_cpu", rngCUDA = "rng_cuda"
        case configHash = "config_hash", shards, imagesSeen = "images_seen", elapsedSeconds = "elapsed_seconds"
        case lossEMA = "loss_ema", interval, files, written
    }

    /// The generator states decode.
    public func validate() throws {
        _ = try cpuGeneratorState()
        _ = try cudaGeneratorState()
    }

    /// The decoded CPU generator state.
    public func cpuGeneratorState() throws -> [UInt8] {
        guard let d = Data(base64Encoded: rngCPU) else { throw RunError("state.json: rng_cpu is not base64") }
        return [UInt8](d)
    }

    /// The decoded CUDA generator state, if any.
    public func cudaGeneratorState() throws -> [UInt8]? {
        guard let s = rngCUDA else { return nil }
        guard let d = Data(base64Encoded: s) else { throw RunError("state.json: rng_cuda is not base64") }
        return [UInt8](d)
    }

    /// A short hash of the settings that shape the trajectory: the model config, objective, batch size, learning
    /// rate, warmup, weight decay, EMA decay, clipping, precision, caption dropout and seed. `steps`, the logging,
    /// sampling and checkpoint intervals, the device and the resources may change between sessions.
    public static func configHash(job: TrainJobConfig, model: some Encodable) throws -> String {
        let shape = TrajectorySettings(model: model, objective: job.objective,
                          batchSize: job.batchSize, learningRate: job.learningRate, warmupSteps: job.warmupSteps,
                          weightDecay: job.weightDecay, emaDecay: job.emaDecay, gradClip: job.gradClip,
                          precision: job.precision.rawValue, captionDropout: job.captionDropout, seed: job.seed)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(Checksum.sha256(try encoder.encode(shape)).prefix(16))
    }
}

/// What `TrainingState.configHash` hashes.
private struct TrajectorySettings<M: Encodable>: Encodable {
    let model: M
    let objective: Objective
    let batchSize: Int, learningRate: Double, warmupSteps: Int, weightDecay: Double
    let emaDecay: Double, gradClip: Double, precision: String, captionDropout: Double, seed: UInt64
}

/// The trainers' checkpoint store: `state/step_<N>/` folders whose `state.json` is a `TrainingState`.
public typealias TrainingCheckpoints = CheckpointStore<TrainingState>
