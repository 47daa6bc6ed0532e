import ArgumentParser
import Foundation
import ParisRun
import ParisDiffusion
import ParisEnsemble
import Torch

/// `paris sample --run R --prompt "..." [--strategy top2] [--steps 50] [--cfg 7.5] [--seed 0] [--n 1]`, or
/// `paris sample --release DIR --prompt "..." [--output OUT]` on a released Paris folder loaded in place.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample images from a run's router-weighted mixture of experts.",
        discussion: """
            At every step the router scores the current x_t, the strategy picks experts (\(RoutingStrategy.syntax)), \
            each picked expert predicts a velocity with its own classifier-free guidance (DDPM ε experts are \
            converted), and the velocities are mixed with the router's weights. A text-conditioned router \
            (a -text router preset) also reads the prompt. --strategy prompt calls no router: each prompt goes to \
            the expert of its nearest caption centroid (partitions clustered on text or both features only). \
            Writes <run>/samples/<name>/ img_<i>.png, grid.png and trace.json (the router weights at every step, \
            and what the router read). A missing expert is skipped with a warning and its weight renormalised \
            over the rest, unless --strict. A NaN or ∞ from the router or an expert stops the job naming it, the \
            step and the cause (guidance or weights), and leaves an existing folder as it was; an expert or router \
            trained on another partition is used, with a warning naming it.

            --release DIR samples the released Paris model (bageldotcom/paris: model_index.json, expert_<k>/, \
            router/, vae/, text_encoder/, tokenizer/) where it lies, instead of a run: CLIP ViT-L/14 prompts, \
            the release's flow-matching Euler grid, CFG 7.5 per expert (unconditional = ""), latents / 0.18215 \
            decoded by its VAE. Writes --output (default samples/<strategy>-s<seed>): img_<i>.png, grid.png, \
            trace.json and latents.safetensors.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String?

    @Option(help: "A released Paris folder (model_index.json, expert_<k>/, router/, ...), sampled in place.")
    var release: String?

    @Option(help: "With --release: the output folder (default samples/<strategy>-s<seed>).")
    var output: String?

    @Option(name: .customLong("prompt"), help: "A prompt (repeat for several).")
    var prompts: [String] = []

    @Option(help: "A text file with one prompt per line.")
    var promptsFile: String?

    @Option(help: "Routing: \(RoutingStrategy.syntax) (prompt: nearest caption centroid, no router).")
    var strategy: String = "top2"

    @Option(number: "Sampling steps.")
    var steps: Int = 50

    @Option(name: [.customLong("cfg"), .customLong("guidance")],
            number: "Classifier-free guidance scale, applied per expert (1 = none; at most ±100; default 4, 7.5 with --release).")
    var cfg: Double?

    @Option(help: "euler or heun.")
    var solver: String = "euler"

    @Option(number: "Image i uses noise seed seed + i; the same seed gives the same image.")
    var seed: UInt64 = 0

    @Option(name: .customLong("n"), number: "Images per prompt.")
    var imagesPerPrompt: Int = 1

    @Option(number: "Images per forward batch.")
    var batchSize: Int = 16

    @Option(help: "Output folder name under <run>/samples/ (default: <strategy>-s<seed>).")
    var name: String?

    @Option(help: "cpu, cuda, cuda:N or auto (CUDA when present).")
    var device: String = "auto"

    @Flag(help: "Fail when an expert is missing or cannot be loaded, instead of renormalising over the rest.")
    var strict = false

    @Flag(help: "Replace an existing samples/<name>/ (swapped in only once the new one is complete).")
    var force = false

    @OptionGroup var remote: RemoteOptions

    @OptionGroup var threads: ThreadsOption

    func validate() throws {
        do { _ = try RoutingStrategy(parsing: strategy) } catch { throw ValidationError("\(error)") }
        guard ODESolver(rawValue: solver) != nil else { throw ValidationError("--solver must be euler or heun") }
        guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1, not \(steps)") }
        guard imagesPerPrompt >= 1 else { throw ValidationError("--n must be ≥ 1, not \(imagesPerPrompt)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be ≥ 1, not \(batchSize)") }
        if prompts.isEmpty && promptsFile == nil { throw ValidationError("give --prompt or --prompts-file") }
        guard (runFolder == nil) != (release == nil) else { throw ValidationError("give exactly one of --run and --release") }
        if release == nil && output != nil { throw ValidationError("--output goes with --release (a run samples into <run>/samples/)") }
        if release != nil && (solver != "euler" || strict || !remote.remote.isEmpty || name != nil) {
            throw ValidationError("--release samples with the release's Euler sampler and its own experts: "
                + "--solver, --strict, --remote and --name go with --run")
        }
        if let cfg { do { try SamplerConfig.checkGuidance(cfg) } catch { throw ValidationError("\(error)") } }
    }

    func run() throws {
        try threads.apply()
        let routing = try RoutingStrategy(parsing: strategy)
        let file = try promptsFile.map { try PromptEncoding.prompts(file: URL(fileURLWithPath: $0)) } ?? []
        let folderName = "\(routing.description.replacingOccurrences(of: ":", with: "_"))-s\(seed)"
        if let release {
            let job = ReleaseSampleJob(release: URL(fileURLWithPath: release),
                                       output: URL(fileURLWithPath: output ?? "samples/\(folderName)"),
                                       prompts: prompts + file, imagesPerPrompt: imagesPerPrompt, strategy: routing,
                                       steps: steps, guidance: cfg ?? 7.5, seed: seed, batchSize: batchSize,
                                       overwrite: force, device: try Device(parsing: device))
            let result = try job.run(log: { print($0) })
            print("wrote \(result.images.count) images to \(result.folder.path)/ (img_0.png …), grid "
                + "\(result.grid.lastPathComponent), trace \(result.trace.lastPathComponent), latents "
                + result.latents.lastPathComponent)
            return
        }
        let sampler = try SamplerConfig(solver: ODESolver(rawValue: solver)!, steps: steps, guidanceScale: cfg ?? 4)
        var job = SampleJob(run: RunLayout(URL(fileURLWithPath: runFolder!)),
                            name: name ?? folderName,
                            prompts: prompts + file, imagesPerPrompt: imagesPerPrompt, strategy: routing,
                            sampler: sampler, seed: seed, batchSize: batchSize, strict: strict, overwrite: force,
                            device: try Device(parsing: device))
        job.remotes = try remote.configs()
        let result = try job.run(packageCache: CachePaths.packages, log: { print($0) })
        print("wrote \(result.images.count) images to \(result.folder.path)/ (img_0.png …), "
            + "grid \(result.grid.lastPathComponent), trace \(result.trace.lastPathComponent)")
    }
}
