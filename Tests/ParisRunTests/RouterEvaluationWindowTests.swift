import Foundation
import ParisDiffusion
import ParisModels
@testable import ParisRun
import Torch
import XCTest

/// The router evaluation reads its images a window of rows at a time (`evaluate(router:clusters:withCaptions:rows:)`)
/// and draws each window's noise on its own, yet its numbers are those of one noise tensor of all N images.
final class RouterEvaluationWindowTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func testNoiseDrawnWindowByWindowIsTheNoiseOfOneDraw() throws {
        // (batch size, sample shape): a multiple of 16 values per image, an odd batch of a sample that is not, one
        // whose batches are, and a sample of fewer than 16 values (one window).
        for (b, sample) in [(256, [3, 16, 16]), (7, [1, 6, 6]), (5, [3, 5, 5]), (3, [1, 3, 3]), (4, [2, 3, 3])] {
            let e = sample.reduce(1, *), n = 203
            let window = RouterEvaluation.noiseWindow(batchSize: b, elements: e, count: n)
            XCTAssertTrue(window % b == 0 || window == n, "\(b), \(sample): window \(window)")
            Runtime.manualSeed(11)
            let whole = try Tensor.randn([n] + sample)  // [N, C, H, W]
            Runtime.manualSeed(11)
            let windows = try stride(from: 0, to: n, by: window).map { try Tensor.randn([min(window, n - $0)] + sample) }
            XCTAssertTrue(try whole.equal(try Tensor.cat(windows)), "batch \(b), sample \(sample), window \(window)")
        }
    }

    /// The by-time points equal the ones computed from one draw of the noise of all images, with batches of 7.
    func testWindowedEvaluationEqualsOneNoiseTensorOfAllImages() throws {
        for (size, patch) in [(8, 4), (6, 2)] {
            let config = RouterConfig(inputSize: size, inChannels: 1, patchSize: patch, hiddenSize: 32, depth: 1,
                                      numHeads: 2, numExperts: 3)
            Runtime.manualSeed(3)
            let router = try Router(config)
            // Random weights everywhere (a new router's zero-initialised head would score every x_t alike).
            try router.loadStateDict(try router.stateDict().mapValues { try Tensor.randn($0.shape) * 0.3 })
            let n = 50
            let images = try Tensor.rand([n, 1, size, size]) * 2 - 1                     // [N, 1, S, S]
            let clusters = (0..<n).map { $0 % 3 }
            let truth = try Tensor(clusters.map { Int64($0) })                            // [N]
            let times = [0.3, 0.9]
            let e = try RouterEvaluation.evaluate(router: router, images: images, clusters: clusters, times: times,
                                                  seed: 8, batchSize: 7)
            router.train(false)
            try withNoGrad {
                Runtime.manualSeed(8)
                let noise = try Tensor.randn(images.shape)                                // [N, 1, S, S]
                for (i, t) in times.enumerated() {
                    var parts: [Tensor] = []
                    for s in stride(from: 0, to: n, by: 7) {
                        let end = min(n, s + 7), tb = try Tensor.full([end - s], t)
                        let xt = try FlowPath.interpolate(x0: images.slice(0, s, end), noise: noise.slice(0, s, end), t: tb)
                        parts.append(try router(x: xt, t: FlowPath.networkTime(tb)).logSoftmax(dim: -1)
                            .to(dtype: .float64))                                        // [b, K]
                    }
                    let logp = try Tensor.cat(parts)                                      // [N, K]
                    let accuracy: Double = try logp.argmax(dim: 1).eq(truth).to(dtype: .float64).mean().item()
                    let entropy: Double = try ((logp.exp() * logp).sum(dims: [1]) * -1.0).mean().item()
                    XCTAssertEqual(e.points[i].accuracy, accuracy, "size \(size), t = \(t)")
                    XCTAssertEqual(e.points[i].entropy, entropy, "size \(size), t = \(t)")
                    XCTAssertGreaterThan(entropy, 0.1)
                    XCTAssertLessThan(entropy, log(3.0) - 1e-3, "a router that tells the images apart")
                }
            }
        }
    }
}
