import ArgumentParser
import Foundation
import ParisTools
import Torch

/// `paris doctor`: reports libtorch, CPU and CUDA, so a broken setup is visible before training starts.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show libtorch's path, version and ABI, the CPU's capability, threads, and CUDA devices.")

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Also print libtorch's build configuration.")
    var verbose = false

    func run() throws {
        let report = RuntimeReport.collect()
        if json {
            print(try report.json())
        } else {
            report.lines.forEach { print($0) }
            if verbose { print(Runtime.buildConfig) }
        }
    }
}
