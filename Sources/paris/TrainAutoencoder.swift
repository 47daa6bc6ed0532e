import ArgumentParser
import Foundation
import ParisTraining

/// `paris train autoencoder --data P --out DIR`
struct TrainAutoencoder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoencoder",
        abstract: "Train a diffusers AutoencoderKL on a partition's pixel shards (resumable), for latent experts.",
        discussion: """
            Reads every shard_<k>/ of the partition P (never held_out/) and writes DIR in diffusers' model layout \
            (config.json + diffusion_pytorch_model.safetensors), with state/, metrics.jsonl, status.json and \
            reconstructions.png. Loss: L1 (or MSE) reconstruction summed per image + kl_weight × KL, LDM's. \
            Restarting the same command resumes; then `paris encode --partition P --autoencoder DIR --out P2`.
            """)

    @Option(help: "The pixel partition to train on (a `paris partition` folder).")
    var data: String

    @Option(help: "The output folder (diffusers' AutoencoderKL layout).")
    var out: String

    @Option(help: "Settings preset: cpu-small (vae-f4, 2000 steps of 16) or tiny (vae-tiny, 20 steps; tests).")
    var preset = "cpu-small"

    @Option(help: "AutoencoderKL preset (`paris models`): vae-f4, vae-tiny, sd-vae-ft-mse.")
    var model: String?

    @Option(help: "Reconstruction term: l1 (LDM's) or mse.")
    var reconstruction: String?

    @Option(name: .customLong("kl-weight"), number: "β of the KL term (LDM: 1e-6).")
    var klWeight: Double?

    @Option(number: "Optimizer steps.")
    var steps: Int?

    @Option(name: .customLong("batch-size"), number: "Images per step.")
    var batchSize: Int?

    @Option(name: .customLong("learning-rate"), number: "AdamW peak learning rate (warmup, then cosine).")
    var learningRate: Double?

    @Option(name: .customLong("checkpoint-every"), number: "Steps between checkpoints.")
    var checkpointEvery: Int?

    @Option(number: "Seed of the initialisation, the posterior samples and the data order.")
    var seed: Int?

    @Option(help: "cpu, cuda, cuda:N or auto.")
    var device: String?

    @OptionGroup var flags: SessionFlags

    func run() throws {
        var c = try AutoencoderTrainConfig.preset(named: preset)
        if let model { c.model = model }
        if let reconstruction {
            guard let r = AutoencoderTrainConfig.Reconstruction(rawValue: reconstruction) else {
                throw ValidationError("--reconstruction must be l1 or mse, not \(reconstruction)")
            }
            c.reconstruction = r
        }
        if let klWeight { c.klWeight = klWeight }
        if let steps { c.steps = steps }
        if let batchSize { c.batchSize = batchSize }
        if let learningRate { c.learningRate = learningRate }
        if let checkpointEvery { c.checkpointEvery = checkpointEvery }
        if let seed {
            guard seed >= 0 else { throw ValidationError("seed must be ≥ 0, not \(seed)") }
            c.seed = UInt64(seed)
        }
        if let device { c.device = device }
        let config = c
        try flags.session { options in
            try AutoencoderTraining.train(data: URL(fileURLWithPath: data), folder: URL(fileURLWithPath: out),
                                          config: config, options: options)
        }
    }
}
