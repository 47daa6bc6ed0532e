import ArgumentParser
import Foundation
import ParisModels

/// `paris convert ...`: reference checkpoints to this project's safetensors + config.json.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert reference checkpoints to safetensors + config.json.",
        subcommands: [ConvertDiT.self])
}

/// `paris convert dit IN.pt OUT.safetensors`
struct ConvertDiT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dit",
        abstract: "Convert a facebookresearch/DiT checkpoint (.pt) to OUT.safetensors and config.json beside it.",
        discussion: """
            Takes a raw state dict or a train.py checkpoint (EMA weights by default). The configuration is read \
            from the tensor shapes and the weights are loaded strictly into the Swift DiT before writing. \
            Existing files are not replaced without --force.
            """)

    @Argument(help: "The reference checkpoint (.pt).")
    var input: String

    @Argument(help: "The .safetensors file to write; config.json is written in the same folder.")
    var output: String

    @Option(help: "Which weights of a train.py checkpoint: auto (ema, else model), ema or model.")
    var weights: String = "auto"

    @Option(number: "Attention heads, needed only when the hidden size matches no reference preset.")
    var numHeads: Int?

    @Flag(help: "Replace existing output files.")
    var force = false

    func run() throws {
        guard let which = DiTConverter.Weights(rawValue: weights) else {
            throw ValidationError("--weights must be auto, ema or model, not '\(weights)'")
        }
        let result = try DiTConverter.convert(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output),
                                              overwrite: force, weights: which, numHeads: numHeads)
        let c = result.config
        print("converted \(input) (\(result.source) weights): DiT input \(c.inputSize)×\(c.inputSize)×\(c.inChannels), "
              + "patch \(c.patchSize), hidden \(c.hiddenSize), depth \(c.depth), heads \(c.numHeads), "
              + "\(c.numClasses) classes, learn_sigma \(c.learnSigma), \(result.parameterCount) parameters")
        print("wrote \(result.weightsURL.path)")
        print("wrote \(result.configURL.path)")
    }
}
