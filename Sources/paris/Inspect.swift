import ArgumentParser
import Foundation
import ParisTools

/// `paris inspect FILE`: what a checkpoint holds.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's tensors (name, dtype, shape, parameters) and metadata.",
        discussion: """
            Reads .safetensors files (header only) and torch.save .pt/.pth files (without running any code from \
            them). Exits non-zero with a message naming the problem when the file is missing or corrupt, and with \
            a WARNING naming them when a torch.save file's pickle names globals that are not known-safe \
            reconstructors (os.system, builtins.eval...): Python's torch.load would run them.
            """)

    @Argument(help: "The checkpoint: a .safetensors file, or a torch.save .pt/.pth file.")
    var file: String

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func run() throws {
        let summary = try CheckpointSummary.read(URL(fileURLWithPath: file))
        print(json ? try summary.json() : summary.render())
        if let warning = summary.warning {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
            throw ExitCode.failure
        }
    }
}
