import Foundation
import ParisModels
import ParisTestSupport
import Torch
import XCTest

/// `AutoencoderKL.rescaled`: a VAE whose diffusion latents are (z − shift)·s becomes one whose latents are z'·0.18215
/// with the same values for every image, and the same images from them (what `paris export diffusers` writes for
/// the release's constant `vae.decode(x / 0.18215)`). (The class name keeps `AutoencoderKLTests` in it, so
/// `--filter AutoencoderKLTests` runs it too.)
final class AutoencoderKLTestsRescale: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    /// A random vae-tiny with latents ×0.7 after a shift of 0.1 (with or without the 1×1 convolutions), rescaled to
    /// 0.18215: latents, posterior std and decoded images within float32 rounding of the original's (1e-5).
    func testRescaledLatentsAndImagesAreTheOriginals() throws {
        for convs in [true, false] {
            var c = AutoencoderKLConfig.tiny
            (c.scalingFactor, c.shiftFactor, c.useQuantConv, c.usePostQuantConv) = (0.7, 0.1, convs, convs)
            c.latentsMean = [0.1, 0.2, 0.3, 0.4]
            c.latentsStd = [1, 2, 3, 4]
            Runtime.manualSeed(3)
            let vae = try AutoencoderKL(c)
            let (config, weights) = try AutoencoderKL.rescaled(try vae.stateDict(), config: c, to: 0.18215)
            XCTAssertEqual(config.scalingFactor, 0.18215)
            XCTAssertNil(config.shiftFactor)
            XCTAssertTrue(config.useQuantConv && config.usePostQuantConv)
            let a = 0.7 / 0.18215
            XCTAssertEqual(config.latentsMean!, [0.1, 0.2, 0.3, 0.4].map { ($0 - 0.1) * a })
            XCTAssertEqual(config.latentsStd!, [1, 2, 3, 4].map { $0 * a })
            let other = try AutoencoderKL(config)
            try other.loadStateDict(weights)   // strict: every key of the rescaled config, nothing else
            XCTAssertTrue(try weights["decoder.conv_in.weight"]!.equal(try vae.stateDict()["decoder.conv_in.weight"]!))

            let x = try Tensor.rand([2, 3, 8, 8]) * 2.0 - 1.0
            try withNoGrad {
                let p = try vae.encode(x), q = try other.encode(x)
                let z = try vae.scaledLatents(p.mode()), w = try other.scaledLatents(q.mode())
                let y = try vae.decode(try vae.unscaledLatents(z)), y2 = try other.decode(z / 0.18215)
                let d = try [(w, z), (q.std * 0.18215, p.std * 0.7), (y2, y)].map { try ($0 - $1).abs().amax().item() }
                print("rescaled vae-tiny (convs: \(convs)): max |Δ| latents \(d[0]), std \(d[1]), images \(d[2])")
                try assertClose(w, z, rtol: 0, atol: 1e-5, "latents (convs: \(convs))")
                try assertClose(q.std * 0.18215, p.std * 0.7, rtol: 1e-5, atol: 1e-6, "posterior std (convs: \(convs))")
                try assertClose(y2, y, rtol: 0, atol: 1e-5, "decoded images (convs: \(convs))")
                // Without the fold, the release's constant decodes other images.
                XCTAssertGreaterThan(try (vae.decode(z / 0.18215) - y).abs().amax().item(), 1e-2)
            }
        }
        assertThrows({ try AutoencoderKL.rescaled([:], config: .tiny, to: 0) }, contains: "finite positive")
        assertThrows({ try AutoencoderKL.rescaled([:], config: .tiny, to: 1) }, contains: "no post_quant_conv.weight")
    }
}
