import Foundation
import ParisData
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import Torch
import XCTest

/// `paris export diffusers` on a latent run: two paris-T/4 experts and a router-T/4 on 8×8×4 latents (random weights,
/// MiniLM tokens, as `DiffusersExportTests.makeRun` writes them), whose autoencoder (an untrained vae-tiny at 16 px,
/// f = 2, in the latent partition's `autoencoder/`) has latents ×0.7 after a shift of 0.1, as a scale measured by
/// `paris train autoencoder` would be, not the release's 0.18215. The export writes vae/ rescaled to 0.18215, so
/// that the release's `vae.decode(x / 0.18215)` (our release loader, and the Python reference pipeline,
/// scripts/fixtures/paris_export_reference.py) turns the run's latents into the images the run itself decodes.
final class DiffusersExportLatentTests: XCTestCase {
    /// Stand-ins for a measured scale and shift.
    static let scalingFactor = 0.7, shiftFactor = 0.1
    static let latentSize = 8, imageSize = 16
    /// Python (float32, CPU) and our release loader, against our run's decoded images in about [−1, 1].
    static let tolerance = 1e-4

    override func setUp() { Runtime.threads = 1 }

    /// The latent run in `<root>/run`.
    func makeRun(_ root: URL) throws -> RunLayout {
        let folder = root.appendingPathComponent("run")
        let space = try LatentRun.autoencoder(folder.appendingPathComponent("\(LatentRun.partition)/autoencoder"),
                                              sampleSize: Self.imageSize, scalingFactor: Self.scalingFactor,
                                              shiftFactor: Self.shiftFactor)
        return try DiffusersExportTests.makeRun(folder, latent: (space, Self.latentSize))
    }

    func export(_ run: RunLayout, to out: URL, vae: URL? = nil) throws -> DiffusersExport.Result {
        try DiffusersExport(run: run, output: out, textEncoder: try DiffusersExportTests.miniLM(), vae: vae).write()
    }

    /// What `paris sample --run` computes before writing PNGs: the run's mixture (`RunMixture`, decoding with the
    /// partition's autoencoder), MiniLM prompts, the class's prompt, seed, steps and CFG. Returns the final latents
    /// and the decoded images.
    func runSample(_ run: RunLayout, strategy: RoutingStrategy) throws -> (latents: Tensor, images: Tensor, decoder: AutoencoderKL) {
        let loaded = try RunMixture.load(run: run, device: .cpu, strict: true)
        let encode = try PromptEncoding.miniLM(cache: DiffusersExportTests.packages)
        let sampler = try MixtureSampler(config: try SamplerConfig(steps: DiffusersExportTests.steps,
                                                                   guidanceScale: DiffusersExportTests.guidance),
                                         strategy: strategy)
        let seed = DiffusersExportTests.seed, prompt = DiffusersExportTests.prompt
        let noise = try MixtureSampler.noise(seeds: [seed], channels: loaded.channels, size: loaded.imageSize)
        let (x, _) = try sampler.sample(loaded.mixture, noise: noise, text: try encode([prompt], loaded.textLength),
                                        prompts: [prompt], seeds: [seed], routingSeed: seed)
        XCTAssertEqual([loaded.decodedSize, loaded.decodedChannels], [Self.imageSize, 3])
        return (x, try loaded.images(x), try XCTUnwrap(loaded.decoder))
    }

    func testLatentExportRescalesTheVAEAndSamplesWhatTheRunSamples() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = try makeRun(root)
        let out = root.appendingPathComponent("export")
        // No --vae: the partition's autoencoder, the one the experts record.
        let result = try export(run, to: out)
        XCTAssertTrue(result.latent)
        XCTAssertTrue(result.files.contains("vae/config.json") && result.files.contains("vae/diffusion_pytorch_model.safetensors"),
                      "\(result.files)")
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("model_index.json")))
            as! [String: Any]
        XCTAssertEqual(index["vae"] as? [String], ["diffusers", "AutoencoderKL"])
        let source = try AutoencoderKLConfig.load(from: run.root.appendingPathComponent("latent/autoencoder/config.json"))
        let written = try AutoencoderKLConfig.load(from: out.appendingPathComponent("vae/config.json"))
        XCTAssertEqual(source.scalingFactor, Self.scalingFactor)
        XCTAssertEqual(written.scalingFactor, ParisRelease.latentScale)
        XCTAssertNil(written.shiftFactor)
        // Our release loader: no notes (the VAE is at the release's scale), 8×8×4 latents decoded to 16 px.
        let release = try ParisRelease.load(from: out)
        XCTAssertEqual(release.notes, [])
        XCTAssertEqual([release.latentChannels, release.latentSize, release.imageSize], [4, Self.latentSize, Self.imageSize])
        let ours = try runSample(run, strategy: .top2)
        let noise = try MixtureSampler.noise(seeds: [DiffusersExportTests.seed], channels: 4, size: Self.latentSize)
        let g = try release.generate(prompts: [DiffusersExportTests.prompt], noise: noise, strategy: .top2,
                                     steps: DiffusersExportTests.steps, guidance: DiffusersExportTests.guidance,
                                     seeds: [DiffusersExportTests.seed])
        let dLatents = try ParisReleaseTests.maxDiff(g.latents, ours.latents)
        let dImages = try ParisReleaseTests.maxDiff(g.images, ours.images)
        print("latent export: release loader vs the run: latents max |Δ| = \(dLatents), images max |Δ| = \(dImages)")
        XCTAssertLessThanOrEqual(dLatents, Self.tolerance)
        XCTAssertLessThanOrEqual(dImages, Self.tolerance)
        // Not trivial: the run's VAE with the release's constant (what copying it would have given) decodes otherwise.
        let unscaled = try withNoGrad { try ours.decoder.decode(ours.latents / ParisRelease.latentScale) }
        let dUnscaled = try ParisReleaseTests.maxDiff(unscaled, ours.images)
        print("latent export: the run's VAE unrescaled, decoding x / 0.18215: images max |Δ| = \(dUnscaled)")
        XCTAssertGreaterThan(dUnscaled, 1e-2)

        // Another autoencoder than the experts': refused, nothing written.
        let other = root.appendingPathComponent("other-vae")
        try LatentRun.autoencoder(other, sampleSize: Self.imageSize, scalingFactor: Self.scalingFactor,
                                  shiftFactor: Self.shiftFactor, seed: 1)
        let refused = root.appendingPathComponent("refused")
        XCTAssertThrowsError(try export(run, to: refused, vae: other)) { error in
            XCTAssertTrue("\(error)".contains("is not the autoencoder the experts' latents were made with: weights"),
                          "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: refused.path))
        // No autoencoder in the partition and no --vae: refused, saying what to give.
        try FileManager.default.removeItem(at: run.root.appendingPathComponent("latent/autoencoder"))
        XCTAssertThrowsError(try export(run, to: refused)) { error in
            XCTAssertTrue("\(error)".contains("give that autoencoder's folder with --vae"), "\(error)")
        }
    }

    /// The Python reference pipeline (diffusers' AutoencoderKL.from_pretrained on vae/, `vae.decode(x / 0.18215)`)
    /// on the latent export reproduces the run's decoded images, and `paris sample --run`'s PNG.
    func testPythonReferenceReproducesTheLatentExport() throws {
        guard let python = try DiffusersExportTests.referencePython() else { return }
        let root = try TinyRun.temporaryFolder(self)
        let run = try makeRun(root)
        let out = root.appendingPathComponent("export")
        _ = try export(run, to: out)
        let noise = try MixtureSampler.noise(seeds: [DiffusersExportTests.seed], channels: 4, size: Self.latentSize)
        guard let ref = try DiffusersExportTests.runReference(python, export: out, noise: noise, scratch: root) else { return }
        for (name, strategy) in [("top1", RoutingStrategy.top(1)), ("top2", .top2), ("full", .full)] {
            let theirs = try XCTUnwrap(ref["\(name).image"])
            XCTAssertEqual(theirs.shape, [1, 3, Self.imageSize, Self.imageSize])
            let d = try ParisReleaseTests.maxDiff(try runSample(run, strategy: strategy).images, theirs)
            print("latent export \(name): decoded image max |Δ| = \(d) (Python reference vs the run)")
            XCTAssertLessThanOrEqual(d, Self.tolerance, name)
        }
        let top1 = try XCTUnwrap(ref["top1.image"]), full = try XCTUnwrap(ref["full.image"])
        XCTAssertGreaterThan(try ParisReleaseTests.maxDiff(top1, full), 1e-3, "the strategies give one image")
        // `paris sample --run` (SampleJob): its PNG is the Python top-2 image as 8 bits, within one level.
        let job = SampleJob(run: run, name: "ref", prompts: [DiffusersExportTests.prompt], strategy: .top2,
                            sampler: try SamplerConfig(steps: DiffusersExportTests.steps,
                                                       guidanceScale: DiffusersExportTests.guidance),
                            seed: DiffusersExportTests.seed, strict: true, device: .cpu)
        let png = try Image(contentsOf: try job.run(packageCache: DiffusersExportTests.packages).images[0])
        XCTAssertEqual([png.width, png.height, png.channels], [Self.imageSize, Self.imageSize, 3])
        let python8 = try Image(tensor: try XCTUnwrap(ref["top2.image"]).select(0, 0), range: .minusOneToOne).pixels
        let levels = zip(png.pixels, python8).map { abs(Int($0) - Int($1)) }.max() ?? 255
        print("latent export top2: paris sample --run PNG vs the Python image: max \(levels) levels")
        XCTAssertLessThanOrEqual(levels, 1)
    }
}
