import ArgumentParser
import Foundation
import ParisData
import Torch

/// `paris encode --partition P --autoencoder DIR --out P2 [--batch-size 64] [--device auto] [--force]`
struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Turn a partition's pixel shards into latent shards with an autoencoder (for latent experts).",
        discussion: """
            Each part's images become the autoencoder's posterior mean × its scaling factor (float16); the \
            clustering, captions, items and grids are the pixel partition's. P2 also gets a copy of the \
            autoencoder (P2/autoencoder/), which sampling decodes with. The autoencoder must have been trained on \
            images of the shards' size. Point a run at P2 (run.json "partition") to train latent experts.
            """)

    @Option(help: "The pixel partition (a `paris partition` folder).")
    var partition: String

    @Option(help: "The autoencoder folder (config.json + diffusion_pytorch_model.safetensors).")
    var autoencoder: String

    @Option(help: "The latent partition to write.")
    var out: String

    @Option(name: .customLong("batch-size"), number: "Images encoded at a time.")
    var batchSize: Int = 64

    @Option(help: "cpu, cuda, cuda:N or auto.")
    var device: String = "auto"

    @Flag(help: "Replace an existing --out.")
    var force = false

    func run() throws {
        let manifest = try LatentEncoding.encode(
            partition: URL(fileURLWithPath: partition), output: URL(fileURLWithPath: out),
            autoencoder: URL(fileURLWithPath: autoencoder), batchSize: batchSize, overwrite: force,
            device: try Device(parsing: device), log: { print($0) })
        print("wrote \(out): \(manifest.numClusters) latent shards of \(manifest.channels)×\(manifest.imageSize)² "
            + "(\(manifest.latents!.summary))")
    }
}
