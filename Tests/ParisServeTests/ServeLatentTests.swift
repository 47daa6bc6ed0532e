import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisRun
import ParisRunTestSupport
import ParisServe
import Torch
import XCTest

/// `paris serve --run R` on a latent run (`LatentRun.untrained`: the colour squares encoded by an untrained
/// vae-tiny into 4×4×4 latents, untrained latent experts and router), against a real server on loopback: the
/// served images are decoded by the partition's autoencoder, 8-px RGB, the pixels `paris sample --run` writes; the
/// image size a request names is the decoded one, and the latent size is a 400 that says which.
final class ServeLatentTests: XCTestCase {
    var run: RunLayout!
    var live: LiveServer!

    override func setUp() async throws {
        Runtime.threads = 1
        run = RunLayout(try LatentRun.untrained(in: try TinyRun.temporaryFolder(self)).run)
        live = try await LiveServer.start(engine: try MixtureEngine(run: run, device: .cpu,
                                                                     encode: ColourPartitions.encoder))
    }

    override func tearDown() async throws { live?.stop() }

    func testALatentRunServesDecodedImagesAtThePixelSize() async throws {
        let health = try await live.get("/healthz").json()
        XCTAssertEqual(health["image_size"] as? Int, 8, "\(health)")

        let answer = try await live.post("/sdapi/v1/txt2img", ["prompt": "a red square", "seed": 5, "steps": 3,
                                                               "cfg_scale": 2, "batch_size": 2, "width": 8, "height": 8])
        XCTAssertEqual(answer.status, 200, answer.text)
        let images = try pngs(try answer.json()).map { try Image(decoding: [UInt8]($0)) }
        XCTAssertEqual(images.count, 2)
        guard images.count == 2 else { return }
        for image in images { XCTAssertEqual([image.width, image.height, image.channels], [8, 8, 3]) }
        XCTAssertNotEqual(images[0].pixels, images[1].pixels, "two seeds, one image")
        let parameters = try XCTUnwrap(try answer.json()["parameters"] as? [String: Any])
        XCTAssertEqual([parameters["width"] as? Int, parameters["height"] as? Int], [8, 8])
        // The same pixels as `paris sample --run` (SampleJob decodes with the partition's autoencoder).
        let job = SampleJob(run: run, name: "ref", prompts: ["a red square"], imagesPerPrompt: 2, strategy: .top2,
                            sampler: try SamplerConfig(steps: 3, guidanceScale: 2), seed: 5, batchSize: 2, device: .cpu)
        let reference = try job.run(encode: ColourPartitions.encoder)
        for (served, file) in zip(images, reference.images) {
            XCTAssertEqual(served.pixels, try Image(contentsOf: file).pixels, "\(file.lastPathComponent) differs")
        }

        // The latents' size (4) is not the image size: a 400 naming the field and the decoded size.
        for field in ["width", "height"] {
            let refused = try await live.post("/sdapi/v1/txt2img", ["prompt": "a red square", "steps": 1, field: 4])
            XCTAssertEqual(refused.status, 400, refused.text)
            let error = try refused.json()
            XCTAssertEqual(error["field"] as? String, field)
            XCTAssertTrue((error["error"] as? String ?? "").contains("the run's image size, 8, not 4"), refused.text)
        }
    }
}
