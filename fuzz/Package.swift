// swift-tools-version:6.0
// The libFuzzer harnesses of Paris's parsers: one executable per parser, each feeding the fuzzer's bytes to the public
// entry point a user's file reaches. A separate package, so that the main build and the CI test build never see
// `-sanitize=fuzzer`. Built and run by `scripts/fuzz.sh` (which passes `--sanitize=fuzzer`); see docs/reliability.md.
import Foundation
import PackageDescription

/// The main package, by path. SwiftPM names a path dependency after its folder (`main`, `wt-fuzz`, ...), so the
/// identity that `.product(package:)` needs is read from the folder rather than written here.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let paris = root.lastPathComponent

func product(_ name: String) -> Target.Dependency { .product(name: name, package: paris) }

/// One fuzz target: `fuzz-<name>` built from `Sources/<name>/`.
func fuzzTarget(_ name: String, _ dependencies: [String]) -> Target {
    .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzSupport"] + dependencies.map(product),
                      path: "Sources/\(name)")
}

let package = Package(
    name: "ParisFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: root.path)],
    targets: [
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        fuzzTarget("safetensors", ["Torch"]),
        fuzzTarget("pickle", ["Torch"]),
        fuzzTarget("png", ["ParisImage"]),
        fuzzTarget("jpeg", ["ParisImage"]),
        fuzzTarget("tar", ["ParisData"]),
        fuzzTarget("config", ["ParisRun", "ParisModels", "ParisDiffusion"]),
        fuzzTarget("wordpiece", ["ParisModels"]),
        fuzzTarget("clip", ["ParisModels"]),
    ]
)
