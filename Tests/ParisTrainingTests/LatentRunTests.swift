import Foundation
import ParisData
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTraining
import Torch
import XCTest

/// Latent experts of our own: `paris train autoencoder` on a partition's pixel shards (in the one session
/// skeleton), `paris encode` into latent shards, experts and the router on the latents, sampling that decodes.
final class LatentRunTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    /// The tiny autoencoder settings: vae-tiny (f = 2, 4 latent channels) on the 8-px squares.
    func aeConfig(steps: Int = 12) -> AutoencoderTrainConfig {
        var c = try! AutoencoderTrainConfig.preset(named: "tiny")
        (c.steps, c.checkpointEvery, c.logEvery, c.batchSize, c.device) = (steps, 4, 2, 6, "cpu")
        return c
    }

    /// The metrics lines without what depends on the clock and the machine.
    func trajectory(_ folder: URL) throws -> [MetricsRecord] {
        try MetricsLog.read(folder.appendingPathComponent(MetricsFile.fileName)).map {
            var r = $0
            (r.imagesPerSecond, r.rssMB, r.cudaUsedMB, r.elapsedSeconds) = (0, nil, nil, 0)
            return r
        }
    }

    func testAutoencoderLossGoesDownAndResumesBitForBit() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = try ColourPartitions.run(in: root)
        let partition = run.appendingPathComponent("partition")
        let whole = root.appendingPathComponent("vae-whole"), split = root.appendingPathComponent("vae-split")
        var config = aeConfig(steps: 40)
        config.learningRate = 3e-3
        let done = try AutoencoderTraining.train(data: partition, folder: whole, config: config)
        XCTAssertEqual(done.outcome, .finished)
        let losses = try trajectory(whole).map(\.loss)
        print("autoencoder losses: \(losses)")
        let tail = losses.suffix(3).reduce(0, +) / 3  // the posterior samples make single lines noisy
        XCTAssertLessThan(tail, 0.7 * losses.first!, "\(losses)")

        // Stopped after 6 steps (mid-interval, between checkpoints), resumed: the same end, bit for bit.
        let first = try AutoencoderTraining.train(data: partition, folder: split, config: config,
                                                  options: TrainOptions(stopAfterSteps: 6))
        XCTAssertEqual(first.outcome, .stopped)
        let second = try AutoencoderTraining.train(data: partition, folder: split, config: config)
        XCTAssertEqual(second.resumedFrom, 6)
        try TinyRun.assertIdentical(whole.appendingPathComponent(LatentEncoding.weightsName),
                                    split.appendingPathComponent(LatentEncoding.weightsName))
        XCTAssertEqual(try trajectory(whole), try trajectory(split))
        // Other settings are refused on resume.
        var changed = config
        changed.klWeight = 1e-3
        changed.steps = 50
        XCTAssertThrowsError(try AutoencoderTraining.train(data: partition, folder: split, config: changed)) {
            XCTAssertTrue("\($0)".contains("different settings"), "\($0)")
        }

        // diffusers' layout: config.json (sample_size = the images', a measured scaling factor) + weights that load.
        let c = try AutoencoderKLConfig.load(from: whole.appendingPathComponent(LatentEncoding.configName))
        XCTAssertEqual(c.sampleSize, 8)
        XCTAssertEqual(c.inChannels, 3)
        XCTAssertNotEqual(c.scalingFactor, AutoencoderKLConfig.tiny.scalingFactor)
        let vae = try AutoencoderKL.pretrained(directory: whole)
        let x = try Tensor.zeros([1, 3, 8, 8])
        XCTAssertEqual(try withNoGrad { try vae(x) }.shape, [1, 3, 8, 8])
        let png = try Image(contentsOf: whole.appendingPathComponent(AutoencoderTraining.reconstructionsName))
        XCTAssertEqual([png.width, png.height], [8 * (8 + 2), 2 * (8 + 2)])  // 8 images above their 8 reconstructions
    }

    /// A run of the colour squares whose partition is encoded: returns (run, autoencoder folder).
    func latentRun(_ root: URL) throws -> (run: URL, vae: URL) {
        let run = try ColourPartitions.run(in: root)
        let vae = root.appendingPathComponent("vae")
        try AutoencoderTraining.train(data: run.appendingPathComponent("partition"), folder: vae, config: aeConfig())
        let manifest = try LatentRun.encode(run: run, autoencoder: vae)
        XCTAssertEqual(manifest.channels, 4)
        XCTAssertEqual(manifest.imageSize, 4)
        return (run, vae)
    }

    func testTinyLatentRunTrainsExpertsAndSamplesDecodedImages() throws {
        let root = try TinyRun.temporaryFolder(self)
        let (run, vae) = try latentRun(root)
        let layout = RunLayout(run)
        let space = try LatentEncoding.space(of: vae)
        // The latent shards: same rows and captions as the pixel ones, float16 latents, the autoencoder named.
        let pixels = try Shard.load(from: run.appendingPathComponent("partition/shard_0"))
        let latents = try Shard.load(from: run.appendingPathComponent("latent/shard_0"))
        XCTAssertEqual(latents.info.latents, space)
        XCTAssertEqual(latents.items, pixels.items)
        XCTAssertEqual(latents.images.shape, [pixels.info.count, 4, 4, 4])
        XCTAssertEqual(latents.images.dtype, .float16)
        XCTAssertEqual(try Shard.info(at: run.appendingPathComponent("latent/held_out/shard_1")).latents, space)
        XCTAssertEqual(try LatentEncoding.space(of: run.appendingPathComponent("latent/autoencoder")), space)

        for k in 0..<2 { XCTAssertEqual(try ExpertTrainer.train(run: run, expert: k).outcome, .finished) }
        XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions()).outcome, .finished)
        let expert = try ExpertCheckpoint.read(from: layout.expert(0))
        XCTAssertEqual(expert.model.inChannels, 4)
        XCTAssertEqual(expert.model.inputSize, 4)
        XCTAssertEqual(expert.latents, space)
        // The training sample grid is decoded: 8-px RGB images, upscaled to 64.
        let grid = try Image(contentsOf: layout.expert(0).appendingPathComponent("samples/step_6.png"))
        XCTAssertEqual(grid.channels, 3)

        let job = SampleJob(run: layout, name: "latent", prompts: ["a red square", "a blue square"],
                            imagesPerPrompt: 2, strategy: .top2, sampler: try SamplerConfig(steps: 3, guidanceScale: 1),
                            seed: 3, strict: true, device: .cpu)
        let result = try job.run(encode: ColourPartitions.encoder)
        XCTAssertEqual(result.images.count, 4)
        for url in result.images {
            let image = try Image(contentsOf: url)
            XCTAssertEqual([image.width, image.height, image.channels], [8, 8, 3], url.path)
        }
    }

    func testLatentsOfAnotherAutoencoderAreRefused() throws {
        let root = try TinyRun.temporaryFolder(self)
        let (run, _) = try latentRun(root)
        let layout = RunLayout(run)
        try ExpertTrainer.train(run: run, expert: 0)
        try ExpertTrainer.train(run: run, expert: 1)
        // The partition's autoencoder with another scale: sampling would decode wrongly, so it is refused.
        let copy = run.appendingPathComponent("latent/autoencoder/config.json")
        var c = try AutoencoderKLConfig.load(from: copy)
        c.scalingFactor *= 2
        try JSONEncoder().encode(c).write(to: copy)
        let job = SampleJob(run: layout, name: "x", prompts: ["a red square"], strategy: .oracle,
                            sampler: try SamplerConfig(steps: 2, guidanceScale: 1), device: .cpu)
        XCTAssertThrowsError(try job.run(encode: ColourPartitions.encoder)) { error in
            XCTAssertTrue("\(error)".contains("is not the autoencoder the latents were made with: scaling factor"),
                          "\(error)")
        }
        // The run pointed back at its pixel partition: latent experts do not read pixel shards.
        var config = try layout.config()
        config.partition = "partition"
        try config.write(to: layout.runJSON)
        XCTAssertThrowsError(try job.run(encode: ColourPartitions.encoder)) { error in
            XCTAssertTrue("\(error)".contains("but the run's shards"), "\(error)")
            XCTAssertTrue("\(error)".contains("pixels"), "\(error)")
        }
        // ...nor does training continue on them.
        XCTAssertThrowsError(try ExpertTrainer.train(run: run, expert: 0, options: TrainOptions())) { error in
            XCTAssertTrue("\(error)".contains("was trained on latents of autoencoder"), "\(error)")
            XCTAssertTrue("\(error)".contains("pass --restart"), "\(error)")
        }
    }

    func testPixelExpertsDoNotReadLatentShards() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = try ColourPartitions.run(in: root)
        let layout = RunLayout(run)
        try ExpertTrainer.train(run: run, expert: 0)
        let vae = root.appendingPathComponent("vae")
        try AutoencoderTraining.train(data: run.appendingPathComponent("partition"), folder: vae, config: aeConfig(steps: 2))
        try LatentEncoding.encode(partition: run.appendingPathComponent("partition"),
                                  output: run.appendingPathComponent("latent"), autoencoder: vae)
        var config = try layout.config()
        config.partition = "latent"
        try config.write(to: layout.runJSON)
        XCTAssertThrowsError(try ExpertTrainer.train(run: run, expert: 0)) { error in
            XCTAssertTrue("\(error)".contains("was trained on pixels, but its shard holds 4×4×4 latents"), "\(error)")
        }
        let job = SampleJob(run: layout, name: "x", prompts: ["a red square"], strategy: .oracle,
                            sampler: try SamplerConfig(steps: 2, guidanceScale: 1), device: .cpu)
        XCTAssertThrowsError(try job.run(encode: ColourPartitions.encoder)) { error in
            XCTAssertTrue("\(error)".contains("expert 0 was trained on pixels, but the run's shards"), "\(error)")
        }
        // An autoencoder cannot train on latents, and encoding twice is refused.
        XCTAssertThrowsError(try AutoencoderTraining.train(data: run.appendingPathComponent("latent"),
                                                           folder: root.appendingPathComponent("v2"), config: aeConfig())) {
            XCTAssertTrue("\($0)".contains("holds latents"), "\($0)")
        }
        XCTAssertThrowsError(try LatentEncoding.encode(partition: run.appendingPathComponent("latent"),
                                                       output: root.appendingPathComponent("l2"), autoencoder: vae)) {
            XCTAssertTrue("\($0)".contains("already holds latents"), "\($0)")
        }
    }

    func testAutoencoderOfAnotherResolutionIsRefused() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = try ColourPartitions.run(in: root)
        // An autoencoder trained on 16-px images (sample_size 16) for 8-px shards.
        let vae = root.appendingPathComponent("vae16")
        try FileManager.default.createDirectory(at: vae, withIntermediateDirectories: true)
        var c = AutoencoderKLConfig.tiny
        c.sampleSize = 16
        try JSONEncoder().encode(c).write(to: vae.appendingPathComponent(LatentEncoding.configName))
        try SafeTensors.save(try AutoencoderKL(c).stateDict(), to: vae.appendingPathComponent(LatentEncoding.weightsName))
        let out = run.appendingPathComponent("latent")
        XCTAssertThrowsError(try LatentEncoding.encode(partition: run.appendingPathComponent("partition"), output: out,
                                                       autoencoder: vae)) { error in
            XCTAssertTrue("\(error)".contains("was trained on 16-px images (its sample_size), but the shards"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // A folder that is not an autoencoder.
        XCTAssertThrowsError(try LatentEncoding.encode(partition: run.appendingPathComponent("partition"), output: out,
                                                       autoencoder: root)) {
            XCTAssertTrue("\($0)".contains("no diffusion_pytorch_model.safetensors"), "\($0)")
        }
    }
}
