import Foundation
import ParisTestSupport
import XCTest

/// Bad command-line inputs through the built `paris` binary (issue #18's probe): each must end with a clear
/// message and a non-zero status, never a crash or a silently wrong result.
final class CLIInputTests: XCTestCase {
    /// Runs `paris args…` and returns its exit status and its stdout and stderr together (a crash fails the test).
    func paris(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws
        -> (status: Int32, output: String) {
        try runProcess(try parisBinary(self), args, file: file, line: line)
    }

    /// Tests/TorchTests/Fixtures/<name>.
    func torchFixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TorchTests/Fixtures/\(name)").path
    }

    /// Issue #18: `--steps -1` and `--seed -1` were "Missing value" (swift-argument-parser took -1 for a flag).
    /// Every numeric option takes a negative value as its value, so the library's own check says what is wrong.
    func testNegativeAndOutOfRangeNumbersGetTheLibrarysMessages() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let sample = ["sample", "--run", tmp.path, "--prompt", "a cat"]
        let train = ["train", "expert", "--run", tmp.path]
        let cases: [([String], String)] = [
            (sample + ["--steps", "-1"], "steps must be ≥ 1, not -1"),
            (sample + ["--steps=-1"], "steps must be ≥ 1, not -1"),
            (sample + ["--steps", "1000000000000"], "steps must be ≤ 10000 (SamplerConfig.maxSteps)"),
            (sample + ["--seed", "-1"], "seed must be ≥ 0, not -1"),
            (sample + ["--n", "-2"], "--n must be ≥ 1, not -2"),
            (sample + ["--batch-size", "-16"], "--batch-size must be ≥ 1, not -16"),
            (sample + ["--cfg", "x"], "'x' is not a number"),
            (sample + ["--cfg", "1e30"], "the guidance scale (--cfg, guidance_scale) must be finite and within ±100"),
            (["eval", "--run", tmp.path, "--cfg", "-1e30"], "(--cfg, guidance_scale) must be finite and within ±100"),
            (sample + ["--steps", "abc"], "'abc' is not an integer"),
            (sample + ["--release", tmp.path], "give exactly one of --run and --release"),
            (sample + ["--output", tmp.path], "--output goes with --release"),
            (["sample", "--release", tmp.path, "--prompt", "a", "--solver", "heun"], "--solver, --strict, --remote and --name go with --run"),
            (["sample", "--release", tmp.path, "--prompt", "a", "--guidance", "1e30"], "must be finite and within ±100"),
            (["sample", "--release", tmp.appendingPathComponent("none").path, "--prompt", "a"], "no such release folder"),
            (["eval", "--run", tmp.path, "--steps", "-1"], "--steps must be ≥ 1, not -1"),
            (["eval", "--run", tmp.path, "--seed", "-7"], "seed must be ≥ 0, not -7"),
            (["eval", "--run", tmp.path, "--samples", "-64"], "--samples must be ≥ 2"),
            (["run", "init", "--run", tmp.appendingPathComponent("r").path, "--data", tmp.path, "--k", "-5"],
             "--k must be at least 1, not -5"),
            (["run", "init", "--run", tmp.appendingPathComponent("r").path, "--data", tmp.path, "--k", "1000000000"],
             "--k must be ≤ 1024 (RouterConfig.maxExperts)"),
            (["partition", "--data", tmp.path, "--out", tmp.appendingPathComponent("p").path, "--k", "-3"],
             "--k must be at least 1, not -3"),
            (["partition", "--data", tmp.path, "--out", tmp.appendingPathComponent("p").path, "--k", "4",
              "--held-out", "-1"], "--held-out must be ≥ 0, not -1"),
            (train + ["--threads", "-1"], "threads must be ≥ 1, not -1"),
            (train + ["--stop-after", "-4"], "--stop-after must be positive, not -4"),
            (train + ["--prefetch", "-2"], "--prefetch must be ≥ 0, not -2"),
            (["train", "router", "--run", tmp.path, "--held-out", "-0.5"], "--held-out must be in [0, 1), not -0.5"),
            (["launch", "--run", tmp.path, "--parallel", "-2"], "--parallel must be at least 1"),
            (["serve", "--run", tmp.path, "--threads", "0"], "threads must be ≥ 1, not 0"),
            (["serve", "--run", tmp.path, "--batch-window", "-5"], "--batch-window must be within 0…10000 ms"),
            (["serve", "--run", tmp.path, "--remote", "x=y"], "expected K=URL"),
            (["serve", "expert", "--run", tmp.path, "--expert", "-1"], "--expert must be ≥ 0, not -1"),
            (["serve", "--run", tmp.path, "--release", tmp.path], "give exactly one of --run R and --release DIR"),
            (["serve", "--release", tmp.path, "--remote", "1=http://h"], "--remote fills a run's expert slots"),
            (["serve", "--release", tmp.appendingPathComponent("none").path, "--device", "cpu"], "no such release folder"),
            (["export", "diffusers", "--run", tmp.path, tmp.appendingPathComponent("out").path], "run.json: not found"),
            (["sample", "--run", tmp.path, "--prompt", "a", "--threads", "-3"], "threads must be ≥ 1, not -3"),
            (["sample", "--run", tmp.path, "--prompt", "a", "--remote", "1=ftp://h"], "not an http(s) URL"),
            (["data", "import", "emoji", "--out", tmp.path, "--limit", "-1"], "--limit must be positive, not -1"),
        ]
        for (args, expected) in cases {
            let r = try paris(args)
            XCTAssertNotEqual(r.status, 0, "\(args): \(r.output)")
            XCTAssertTrue(r.output.contains(expected), "\(args): expected '\(expected)' in:\n\(r.output)")
            XCTAssertFalse(r.output.contains("Missing value"), "\(args): \(r.output)")
        }
    }

    /// Issue #18: `--threads 1000` was accepted; libtorch starts one OS thread each.
    func testThreadsAreBoundedByTheCores() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let r = try paris(["train", "expert", "--run", "/nonexistent", "--threads", "\(4 * cores + 1)"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("threads must be ≤ \(4 * cores) (4 per core, Runtime.maxThreadsPerCore, "
            + "on this machine's \(cores) core"), r.output)
        // Within the bound, --threads is accepted and the command goes on to the missing run.
        let ok = try paris(["train", "expert", "--run", "/nonexistent", "--expert", "0", "--threads", "\(4 * cores)"])
        XCTAssertNotEqual(ok.status, 0, ok.output)
        XCTAssertTrue(ok.output.contains("/nonexistent"), ok.output)
        XCTAssertFalse(ok.output.contains("threads must be"), ok.output)
    }

    /// Issue #18: `paris inspect` of a .pt holding an os.system call printed "object of class os.system" and exited 0.
    func testInspectWarnsAndFailsOnUnsafeGlobals() throws {
        for json in [false, true] {
            let r = try paris(["inspect", torchFixture("io_unsafe.pt")] + (json ? ["--json"] : []))
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("WARNING: "), r.output)
            XCTAssertTrue(r.output.contains("__builtin__.eval, os.system"), r.output)
            XCTAssertTrue(r.output.contains("weight"), r.output)  // the listing is still printed
        }
        let safe = try paris(["inspect", torchFixture("io_namespace.pt")])
        XCTAssertEqual(safe.status, 0, safe.output)
        XCTAssertFalse(safe.output.contains("WARNING"), safe.output)
    }

    /// `paris train autoencoder` and `paris encode`: bad settings and folders end with the library's message.
    func testAutoencoderAndEncodeInputs() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-cli-ae-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let ae = ["train", "autoencoder", "--data", tmp.path, "--out", tmp.appendingPathComponent("vae").path]
        let cases: [([String], String)] = [
            (ae + ["--kl-weight", "-1"], "kl_weight must be ≥ 0, not -1.0"),
            (ae + ["--steps", "-1"], "steps must be positive, not -1"),
            (ae + ["--model", "vae-huge"], "unknown AutoencoderKL preset 'vae-huge'"),
            (ae + ["--reconstruction", "l3"], "--reconstruction must be l1 or mse, not l3"),
            (ae + ["--preset", "gpu"], "unknown autoencoder training preset 'gpu'"),
            (ae, "manifest.json: missing; run `paris partition` first"),
            (["encode", "--partition", tmp.path, "--autoencoder", tmp.path, "--out", tmp.appendingPathComponent("l").path],
             "manifest.json: missing"),
            (["encode", "--partition", tmp.path, "--autoencoder", tmp.path, "--out", tmp.path],
             "--out must differ from --partition"),
        ]
        for (args, want) in cases {
            let (status, output) = try paris(args)
            XCTAssertNotEqual(status, 0, "\(args): exited 0")
            XCTAssertTrue(output.contains(want), "\(args.joined(separator: " ")): wanted '\(want)', got:\n\(output)")
        }
    }
}
