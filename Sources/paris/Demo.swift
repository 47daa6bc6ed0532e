import ArgumentParser
import Torch

/// `paris demo`: a tiny training loop that shows the stack working end to end.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit a small MLP to sin(x) + noise with AdamW on the CPU and print the falling loss.")

    @Option(help: "Training steps.")
    var steps = 300

    @Option(help: "Random seed (same seed, same numbers as PyTorch's generator).")
    var seed: UInt64 = 0

    func run() throws {
        var config = SineRegression.Config()
        config.steps = steps
        config.seed = seed
        try SineRegression.run(config) { print($0) }
    }
}
