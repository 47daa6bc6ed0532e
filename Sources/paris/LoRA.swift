import ArgumentParser
import Foundation
import ParisEnsemble
import ParisRun
import ParisTraining
import Torch

/// `paris train lora --run R --expert K --data SHARD --rank r`
struct TrainLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora",
        abstract: "Train low-rank adapters (LoRA) on a frozen expert, on your own shard (resumable).",
        discussion: """
            The base expert <run>/expert_K/ is frozen and hash-checked; only the adapters' A and B train, on the \
            shard --data (make one from an image folder with `paris partition --data D --out OUT --k 1 --features \
            text`; pass OUT/shard_0). Writes PEFT's adapter_config.json and adapter_model.safetensors \
            (base_model.model.<layer>.lora_A.weight / lora_B.weight) to --out (default <run>/lora_K/), with the \
            base weights' SHA-256 in the safetensors metadata. Batch size, caption dropout, precision and device \
            default to the base expert's run.json entry. Restarting the same command resumes.
            """)

    @OptionGroup var session: TrainSessionOptions

    @Option(number: "The base expert k.")
    var expert: Int

    @Option(help: "The contributor's shard folder (holds shard.json).")
    var data: String

    @Option(number: "The adapters' rank r.")
    var rank: Int = 4

    @Option(number: "lora_alpha: the adapters' output is scaled by alpha / rank (default: 2 × rank).")
    var alpha: Double?

    @Option(number: "lora_dropout on the adapters' input.")
    var dropout: Double = 0

    @Option(help: "Comma-separated target layers, by PEFT's rule (a layer path or its last components).")
    var targets: String = LoRAConfig.expertTargets.joined(separator: ",")

    @Option(number: "Optimizer steps.")
    var steps: Int = 500

    @Option(name: .customLong("lr"), number: "Peak learning rate.")
    var learningRate: Double = 1e-3

    @Option(name: .customLong("batch-size"), number: "Batch size (default: the base expert's).")
    var batchSize: Int?

    @Option(number: "Seed of the adapters' initialisation and the data order.")
    var seed: UInt64 = 0

    @Option(help: "Device: auto, cpu, cuda, cuda:N (default: the base expert's).")
    var device: String?

    @Option(name: .customLong("sample-every"), number: "Write a sample grid every N steps (0: only at the end).")
    var sampleEvery: Int = 0

    @Option(help: "The adapters' folder (default <run>/lora_K).")
    var out: String?

    func validate() throws {
        guard rank > 0 else { throw ValidationError("--rank must be positive, not \(rank)") }
        guard steps > 0 else { throw ValidationError("--steps must be positive, not \(steps)") }
        guard learningRate > 0 else { throw ValidationError("--lr must be positive, not \(learningRate)") }
        if let alpha, alpha <= 0 { throw ValidationError("--alpha must be positive, not \(alpha)") }
        guard (0..<1).contains(dropout) else { throw ValidationError("--dropout must be in [0, 1), not \(dropout)") }
        if let batchSize, batchSize <= 0 { throw ValidationError("--batch-size must be positive, not \(batchSize)") }
        guard sampleEvery >= 0 else { throw ValidationError("--sample-every must be ≥ 0, not \(sampleEvery)") }
        guard !targetList.isEmpty else { throw ValidationError("--targets must name at least one layer") }
    }

    var targetList: [String] {
        targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        let lora = LoRAConfig(r: rank, loraAlpha: alpha ?? Double(2 * rank), loraDropout: dropout,
                              targetModules: targetList)
        var request = LoRAJobRequest(run: URL(fileURLWithPath: session.run), expert: expert,
                                     data: URL(fileURLWithPath: data), lora: lora,
                                     out: out.map { URL(fileURLWithPath: $0) })
        request.steps = steps
        request.learningRate = learningRate
        request.batchSize = batchSize
        request.seed = seed
        request.device = device
        request.sampleEvery = sampleEvery
        try session.session { options in try LoRATrainer.train(request, options: options) }
    }
}

/// `paris lora ...`: working with trained adapters.
struct LoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora", abstract: "Work with LoRA adapters of an expert.", subcommands: [LoRAMergeCommand.self])
}

/// `paris lora merge --run R --expert K --lora DIR --out DIR`
struct LoRAMergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold a LoRA into its base expert's weights (W + alpha/r · B·A) and write an expert folder.",
        discussion: """
            Checks that the adapters were trained on exactly <run>/expert_K/'s weights (SHA-256) and architecture, \
            then writes config.json + diffusion_pytorch_model.safetensors to --out, which must not exist.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String

    @Option(number: "The base expert k.")
    var expert: Int

    @Option(help: "The LoRA folder (adapter_config.json + adapter_model.safetensors).")
    var lora: String

    @Option(help: "The merged expert's folder (must not exist).")
    var out: String

    func run() throws {
        let url = try LoRAMerge.merge(base: RunLayout(URL(fileURLWithPath: runFolder)).expert(expert),
                                      lora: URL(fileURLWithPath: lora), out: URL(fileURLWithPath: out))
        print("wrote the merged expert to \(url.path)")
    }
}
