import Foundation
import ParisData
import ParisImage
import ParisModels
import ParisRun
import Torch

/// `paris train autoencoder --data P --out DIR`: trains a diffusers `AutoencoderKL` on the images of a partition's
/// shards (every `shard_<k>/`, read part by part in one seeded order; the held-out shards are never read), in the
/// one training skeleton (`TrainingSession`), so it resumes bit for bit, logs `metrics.jsonl` and stops on a signal
/// like every job.
///
/// The data is a partition rather than an image folder because the shards are the images already decoded, resized
/// to the training resolution and checksummed, and `ShardLoader` streams them with a cursor that a checkpoint
/// restores; the autoencoder then learns exactly the images that `paris encode` turns into latents.
///
/// `DIR` afterwards (diffusers' model folder, so `AutoencoderKL.from_pretrained(DIR)` loads it):
/// ```
/// config.json, diffusion_pytorch_model.safetensors   the published weights; sample_size = the images' size,
///                                                     scaling_factor = 1 / std of the first scale_images latents
/// training.json                                       the AutoencoderTrainConfig
/// reconstructions.png                                 8 images (top) and their reconstructions (bottom)
/// state/step_<N>/, metrics.jsonl, status.json, log.txt
/// ```
public enum AutoencoderTraining {
    public static let trainingName = "training.json"
    public static let reconstructionsName = "reconstructions.png"

    /// Trains (or resumes) the autoencoder of `config` on the partition `data` into `folder`.
    public static func train(data: URL, folder: URL, config: AutoencoderTrainConfig,
                             options: TrainOptions = .init()) throws -> TrainResult {
        try config.validate()
        let manifest: PartitionManifest
        do { manifest = try PartitionManifest.load(from: data) } catch { throw RunError("\(error)") }
        if let l = manifest.latents {
            throw RunError("\(data.path) holds latents (\(l.summary)); an autoencoder trains on a pixel partition")
        }
        let shards = manifest.clusters.map { (data.appendingPathComponent($0.shard), $0.index) }
        let reader = try TrainingData.openShards(shards, numClusters: manifest.numClusters)
        let trainer = try AutoencoderTrainer(config: config, data: reader, folder: folder, prefetch: options.prefetch)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(config)) + [10], to: folder.appendingPathComponent(trainingName))
        return try TrainingSession(trainer, options: options).run()
    }
}

/// The autoencoder's step (a `TrainingJob`): encode, sample the posterior (libtorch's generator, which the session
/// seeds and checkpoints), decode, the loss of `AutoencoderTrainConfig`, AdamW with clipping. A checkpoint holds
/// `model` and `optimizer`; the published weights are the raw ones (no EMA).
final class AutoencoderTrainer: TrainingJob {
    let config: AutoencoderTrainConfig
    let modelConfig: AutoencoderKLConfig
    let data: ShardReader
    let folder: URL
    let device: Device
    let prefetch: Int
    var name: String { "autoencoder" }
    var settings: TrainJobConfig { config.jobSettings }
    var summary: String {
        "\(config.model) (\(modelConfig.parameterCount) parameters, \(modelConfig.latentChannels) latent channels at "
            + "1/\(modelConfig.downsamplingFactor)), \(data.count) images of \(data.info.imageSize) px"
    }
    var outputs: [String] {
        [LatentEncoding.configName, LatentEncoding.weightsName, AutoencoderTraining.reconstructionsName]
    }
    var shards: ShardIdentity { ShardIdentity(data.infos) }

    private var model: AutoencoderKL!
    private var optimizer: AdamW!
    private var loader: ShardLoader?

    init(config: AutoencoderTrainConfig, data: ShardReader, folder: URL, prefetch: Int) throws {
        self.config = config
        self.data = data
        self.folder = folder
        self.prefetch = prefetch
        let info = data.info
        guard info.kind == .pixels else { throw RunError("the autoencoder trains on pixel shards, not \(info.contentSummary)") }
        var c: AutoencoderKLConfig
        do { c = try AutoencoderKLConfig.preset(named: config.model) } catch { throw RunError("\(error)") }
        (c.inChannels, c.outChannels, c.sampleSize) = (info.channels, info.channels, info.imageSize)
        guard info.imageSize % c.downsamplingFactor == 0 else {
            throw RunError("\(config.model) downsamples by \(c.downsamplingFactor), which does not divide the "
                + "\(info.imageSize)-px images; choose another preset or partition with another --image-size")
        }
        do { try c.validate() } catch { throw RunError("\(config.model) does not fit the shards: \(error)") }
        modelConfig = c
        device = try ModelFactory.device(config.device, job: "autoencoder")
    }

    func configHash() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var shape = config
        (shape.steps, shape.checkpointEvery, shape.logEvery, shape.device) = (0, 1, 1, "")  // may change on resume
        let bytes = try encoder.encode(shape) + encoder.encode(modelConfig)
        return String(Checksum.sha256(bytes).prefix(16))
    }

    func makeState() throws {
        model = try AutoencoderKL(modelConfig, device: device)
        model.train(true)
        optimizer = try AdamW(model, lr: config.learningRate, weightDecay: 0)
    }

    func stateTensors() throws -> [String: [String: Tensor]] {
        ["model": try model.stateDict(), "optimizer": try optimizer.stateDict()]
    }

    func load(_ tensors: [String: [String: Tensor]]) throws {
        try model.loadStateDict(tensors["model"]!)
        try optimizer.loadStateDict(tensors["optimizer"]!)
    }

    func step(_ step: Int, at cursor: LoaderCursor, lr: Double) throws -> StepMetrics {
        let l = try ShardLoader.reopened(loader, at: cursor, shard: data, config: settings, prefetch: prefetch,
                                         job: name)
        loader = l
        let batch = try l.next()
        let x = try batch.images.to(device: device)                   // [B, C, S, S] in [-1, 1]
        let b = Double(x.size(0))
        let posterior = try model.encode(x)                           // mean, logvar: [B, L, S/f, S/f]
        let reconstruction = try model.decode(try posterior.sample())  // [B, C, S, S]
        let diff = try reconstruction - x
        let rec = try (config.reconstruction == .l1 ? diff.abs() : diff.square()).sum() / b
        let kl = try posterior.kl().mean()                            // [B] → mean over the batch
        let loss = try rec + kl * config.klWeight
        let gradNorm = try descend(loss, optimizer: optimizer, lr: lr, gradClip: config.gradClip)
        return StepMetrics(loss: try loss.item(), gradNorm: gradNorm, images: x.size(0), cursor: batch.cursor)
    }

    /// Writes `config.json` (with the measured scaling factor) and `diffusion_pytorch_model.safetensors`.
    func publish(step: Int) throws {
        var published = modelConfig
        published.scalingFactor = try scalingFactor()
        let fm = FileManager.default
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        try SafeTensors.save(try model.stateDict(), to: folder.appendingPathComponent(LatentEncoding.weightsName),
                             metadata: ["paris_class": "AutoencoderKL", "steps": String(step)])
        try published.save(to: folder.appendingPathComponent(LatentEncoding.configName))
    }

    /// LDM's rescaling: 1 / std of the posterior means of the first `scale_images` images, so the latents a
    /// diffusion model sees have about unit variance.
    private func scalingFactor() throws -> Double {
        let images = try firstImages(config.scaleImages)
        model.train(false)
        defer { model.train(true) }
        // latents(of:) scales by the preset's factor; the std of the raw means is std / that factor.
        let z = try LatentEncoding.latents(of: images, vae: model, batchSize: 64, device: device)
        let std = try z.to(dtype: .float32).std().item() / modelConfig.scalingFactor
        return std > 0 && std.isFinite ? 1 / std : 1
    }

    private func firstImages(_ n: Int) throws -> Tensor {
        var parts: [Tensor] = [], have = 0, i = 0
        while have < n && i < data.parts.count {
            let p = try data.part(i).images
            parts.append(try p.slice(0, 0, min(p.size(0), n - have)))
            have += parts.last!.size(0)
            i += 1
        }
        return try Tensor.cat(parts, dim: 0)                          // [≤n, C, S, S] uint8
    }

    func hasFinished(step: Int) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder.appendingPathComponent(LatentEncoding.weightsName).path)
            && fm.fileExists(atPath: folder.appendingPathComponent(AutoencoderTraining.reconstructionsName).path)
    }

    /// `reconstructions.png`: 8 images above their reconstructions through the posterior mean.
    func finish(step: Int, log: (String) -> Void) throws -> String {
        let x = try firstImages(8)
        let r = try withNoGrad { () -> Tensor in
            model.train(false)
            defer { model.train(true) }
            let input = try x.to(device: device).to(dtype: .float32) / 127.5 - 1
            return try model(input).to(device: .cpu)                  // [n, C, S, S] in about [-1, 1]
        }
        let pixels = try ((r.clamp(min: -1.0, max: 1.0) + 1.0) * 127.5).round().to(dtype: .uint8)
        let url = folder.appendingPathComponent(AutoencoderTraining.reconstructionsName)
        try ImageGrid.grid(try Tensor.cat([x, pixels], dim: 0), columns: x.size(0)).writePNG(to: url)
        return "weights: \(folder.appendingPathComponent(LatentEncoding.weightsName).path); reconstructions: \(url.path)"
    }

    func close() { loader?.stop() }
}
