import Foundation
import ParisEnsemble
import ParisImage
import ParisServe
import Torch
import XCTest

/// `paris serve --release DIR` against a real server on loopback, on the synthetic release of
/// scripts/fixtures/paris_release.py (Tests/ParisEnsembleTests/Fixtures/paris_release/: 3 experts, a router, a tiny
/// VAE decoding 32×32×4 latents to 64-px images, a tiny CLIP text tower and the real CLIP tokenizer): the served
/// pixels are those of `ParisRelease.generate` for the same prompt, seed, strategy, steps and CFG; requests default
/// to the release's 50 steps and CFG 7.5; what a release cannot do is a 400 and the server keeps serving.
final class ServeReleaseTests: XCTestCase {
    var live: LiveServer!
    var release: ParisRelease!

    /// The fixture folder of ParisEnsembleTests (this target has no resources of its own).
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ParisEnsembleTests/Fixtures/paris_release")

    override func setUp() async throws {
        Runtime.threads = 1
        guard FileManager.default.fileExists(atPath: Self.folder.appendingPathComponent("model_index.json").path) else {
            throw XCTSkip("missing \(Self.folder.path): run scripts/make_fixtures.sh paris_release")
        }
        release = try ParisRelease.load(from: Self.folder)
        live = try await LiveServer.start(engine: MixtureEngine(model: ReleaseModel(release: release, device: .cpu)))
    }

    override func tearDown() async throws { live?.stop() }

    /// `ParisRelease.generate`'s images for prompts[i] with seeds[i], as the PNGs' pixels.
    func reference(_ prompts: [String], seeds: [UInt64], strategy: RoutingStrategy, steps: Int,
                   guidance: Double) throws -> [[UInt8]] {
        let noise = try MixtureSampler.noise(seeds: seeds, channels: release.latentChannels, size: release.latentSize)
        let g = try release.generate(prompts: prompts, noise: noise, strategy: strategy, steps: steps,
                                     guidance: guidance, seeds: seeds, routingSeed: seeds[0])
        return try (0..<g.images.size(0)).map {
            try Image(tensor: g.images.select(0, $0), range: .minusOneToOne).pixels
        }
    }

    func testTxt2ImgServesTheReleasePipelinesImages() async throws {
        let prompt = "a watercolor painting of a lighthouse at dawn"
        let answer = try await live.post("/sdapi/v1/txt2img", ["prompt": prompt, "seed": 42, "steps": 6,
                                                               "cfg_scale": 7.5, "width": 64, "height": 64])
        XCTAssertEqual(answer.status, 200, answer.text)
        let images = pngs(try answer.json())
        XCTAssertEqual(images.count, 1)
        let served = try Image(decoding: [UInt8](try XCTUnwrap(images.first)))
        XCTAssertEqual([served.width, served.height, served.channels], [64, 64, 3])
        let expected = try reference([prompt], seeds: [42], strategy: .top2, steps: 6, guidance: 7.5)
        XCTAssertEqual(served.pixels, expected[0], "the served image differs from ParisRelease.generate's")

        // top-1 and full, two images in one batch through the jobs API: each the pipeline's for its seed.
        for strategy in [RoutingStrategy.top(1), .full] {
            let created = try await live.post("/v1/jobs", ["prompt": "a red boat", "seed": 3, "steps": 4,
                                                           "cfg_scale": 3, "batch_size": 2,
                                                           "strategy": strategy.description])
            XCTAssertEqual(created.status, 202, created.text)
            let job = try await live.waitForJob(try XCTUnwrap(try created.json()["id"] as? String))
            XCTAssertEqual(job["state"] as? String, "done", "\(job)")
            let got = try pngs(job).map { try Image(decoding: [UInt8]($0)).pixels }
            let want = try reference(["a red boat", "a red boat"], seeds: [3, 4], strategy: strategy, steps: 4,
                                     guidance: 3)
            XCTAssertEqual(got.count, 2)
            XCTAssertEqual(got, want, "\(strategy): the served images differ from ParisRelease.generate's")
            XCTAssertNotEqual(got[0], got[1], "two seeds, one image")
        }
    }

    func testRequestsStartFromTheReleaseSettingsAndBadOnesAre400() async throws {
        let health = try await live.get("/healthz").json()
        XCTAssertEqual(health["num_experts"] as? Int, 3)
        XCTAssertEqual(health["image_size"] as? Int, 64)
        XCTAssertEqual(health["default_steps"] as? Int, 50)
        XCTAssertEqual(health["default_cfg_scale"] as? Double, 7.5)
        XCTAssertTrue((health["source"] as? String ?? "").hasPrefix("release "), "\(health)")
        let experts = try await live.get("/v1/experts").json()
        XCTAssertEqual((experts["experts"] as? [[String: Any]])?.map { $0["health"] as? String }, ["ok", "ok", "ok"])

        for (body, field) in [(["prompt": "x", "solver": "heun"], "solver"), (["prompt": "x", "strategy": "prompt"], "strategy"),
                              (["prompt": "x", "width": 32], "width"), (["prompt": "x", "strategy": "topk:4"], "strategy"),
                              (["prompt": "x", "steps": 0], "steps")] as [([String: Any], String)] {
            let answer = try await live.post("/sdapi/v1/txt2img", body)
            XCTAssertEqual(answer.status, 400, "\(body): \(answer.text)")
            XCTAssertTrue(answer.text.contains(field), "\(body): \(answer.text)")
        }
        // Still serving; a request without steps or cfg_scale gets the release's.
        let created = try await live.post("/v1/jobs", ["prompt": "a cat", "seed": 1])
        XCTAssertEqual(created.status, 202, created.text)
        let id = try XCTUnwrap(try created.json()["id"] as? String)
        let job = try await live.get("/v1/jobs/\(id)").json()
        let parameters = try XCTUnwrap(job["parameters"] as? [String: Any])
        XCTAssertEqual(parameters["steps"] as? Int, 50)
        XCTAssertEqual(parameters["cfg_scale"] as? Double, 7.5)
        _ = try await live.call("DELETE", "/v1/jobs/\(id)")
        let done = try await live.waitForJob(id)
        XCTAssertTrue(["done", "cancelled"].contains(done["state"] as? String ?? ""), "\(done)")
    }
}
