import ArgumentParser
import Foundation
import ParisTools

/// `paris inspect FILE`: what a checkpoint holds.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's tensors (name, dtype, shape, parameters) and metadata.",
        discussion: """
            Reads .safetensors files (header only) and torch.save .pt/.pth files (without running any code from \
            them). Exits non-zero with a message naming the problem when the file is missing or corrupt.
            """)

    @Argument(help: "The checkpoint: a .safetensors file, or a torch.save .pt/.pth file.")
    var file: String

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func run() throws {
        let summary = try CheckpointSummary.read(URL(fileURLWithPath: file))
        print(json ? try summary.json() : summary.render())
    }
}
