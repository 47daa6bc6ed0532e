import Foundation
import ParisDiffusion
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import Torch
import XCTest

/// The one router evaluation (router/eval.json and `paris eval`) tells routers apart: a router trained on a
/// separable toy problem scores high at low t, the same router read against permuted clusters (a router that sends
/// every image to the wrong expert) scores near zero, and a constant router scores exactly its cluster's share.
final class RouterEvaluationTests: XCTestCase {
    static let config = RouterConfig(inputSize: 8, inChannels: 1, patchSize: 4, hiddenSize: 32, depth: 1, numHeads: 2,
                                     numExperts: 2)

    override func setUp() { Runtime.threads = 1 }

    /// 32 images per cluster: cluster 0 bright (≈ +0.8), cluster 1 dark (≈ −0.8), with pixel noise. [64, 1, 8, 8]
    func toyImages() throws -> (images: Tensor, clusters: [Int]) {
        Runtime.manualSeed(1)
        let bright = try Tensor.randn([32, 1, 8, 8]) * 0.1 + 0.8
        let dark = try Tensor.randn([32, 1, 8, 8]) * 0.1 - 0.8
        return (try Tensor.cat([bright, dark]), Array(repeating: 0, count: 32) + Array(repeating: 1, count: 32))
    }

    /// A router trained for 80 AdamW steps on x_t of the toy images at t ~ U(0, 0.5).
    func trainedRouter(images: Tensor, clusters: [Int]) throws -> Router {
        Runtime.manualSeed(2)
        let router = try Router(Self.config)
        let optimizer = try AdamW(router, lr: 3e-3, weightDecay: 0)
        let truth = try Tensor(clusters.map { Int64($0) })                                    // [N]
        for _ in 0..<80 {
            let t = try Tensor.rand([clusters.count]) * 0.5                                    // [N]
            let xt = try FlowPath.interpolate(x0: images, noise: Tensor.randn(images.shape), t: t)
            let logits = try router(x: xt, t: FlowPath.networkTime(t))                          // [N, K]
            let loss = try crossEntropy(logits: logits, target: truth)
            try optimizer.zeroGrad()
            try loss.backward()
            try optimizer.step()
        }
        return router
    }

    func testTrainedRouterPassesAndPermutedRouterFails() throws {
        let (images, clusters) = try toyImages()
        let router = try trainedRouter(images: images, clusters: clusters)
        let good = try RouterEvaluation.evaluate(router: router, images: images, clusters: clusters, times: [0.05, 0.95])
        let goodLow = try XCTUnwrap(good.point(nearest: 0.05))
        XCTAssertGreaterThan(goodLow.accuracy, 0.9, "a router trained on a separable problem must score at t=0.05")
        XCTAssertGreaterThan(goodLow.trueClusterProbability, 0.8)

        // The same router, with every image's cluster swapped: what a router that routes to the wrong expert gets.
        let permuted = try RouterEvaluation.evaluate(router: router, images: images, clusters: clusters.map { 1 - $0 },
                                                     times: [0.05, 0.95])
        let badLow = try XCTUnwrap(permuted.point(nearest: 0.05))
        XCTAssertLessThan(badLow.accuracy, 0.1, "a permuted router must fail")
        XCTAssertLessThan(badLow.trueClusterProbability, 0.2)
        XCTAssertEqual(goodLow.accuracy + badLow.accuracy, 1, accuracy: 1e-12, "K = 2: the two readings are complements")

        // The confusion matrix over random t puts the trained router's mass on the diagonal, the permuted one's off it.
        let diagonal = good.confusion[0][0] + good.confusion[1][1]
        let offDiagonal = permuted.confusion[0][0] + permuted.confusion[1][1]
        XCTAssertGreaterThan(diagonal, 2 * (clusters.count - diagonal), "\(good.confusion)")
        XCTAssertEqual(offDiagonal, clusters.count - diagonal, "\(permuted.confusion)")
        XCTAssertEqual(good.heldOut, 64)
        XCTAssertEqual(good.maxEntropy, log(2), accuracy: 1e-12)
    }

    /// A router that always answers cluster 0 with certainty: accuracy is exactly cluster 0's share at every t,
    /// entropy ≈ 0, per-cluster accuracy [1, 0].
    func testConstantRouterScoresExactlyItsClusterShare() throws {
        let (images, _) = try toyImages()
        let clusters = Array(repeating: 0, count: 16) + Array(repeating: 1, count: 48)   // cluster 0's share: 0.25
        let router = try Router(Self.config)
        try TinyRun.makeConstant(router, cluster: 0)
        let e = try RouterEvaluation.evaluate(router: router, images: images, clusters: clusters, times: [0.05, 0.5, 0.95])
        for p in e.points {
            XCTAssertEqual(p.accuracy, 0.25, accuracy: 1e-12, "t=\(p.t)")
            XCTAssertLessThan(p.entropy, 1e-3, "t=\(p.t)")
        }
        XCTAssertEqual(e.accuracy ?? -1, 0.25, accuracy: 1e-12)
        XCTAssertEqual(e.confusion, [[16, 0], [48, 0]])
        XCTAssertEqual(e.perClusterAccuracy, [1, 0])
    }

    func testBadInputsAreRefusedByName() throws {
        let router = try Router(Self.config)
        let (images, clusters) = try toyImages()
        assertThrows({ try RouterEvaluation.evaluate(router: router, images: images, clusters: Array(clusters.prefix(3))) },
                     contains: "3 clusters for images of shape")
        assertThrows({ try RouterEvaluation.evaluate(router: router, images: images, clusters: clusters.map { $0 + 1 }) },
                     contains: "outside 0..<2")
        assertThrows({ try RouterEvaluation.evaluate(router: router, images: images, clusters: clusters, times: [1.5]) },
                     contains: "times must lie in [0, 1]")
    }

    func testWriteReadRoundTrip() throws {
        let (images, clusters) = try toyImages()
        let router = try Router(Self.config)
        let e = try RouterEvaluation.evaluate(router: router, images: images, clusters: clusters, times: [0.5], step: 7)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paris-routereval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try e.write(to: folder)
        XCTAssertEqual(try RouterEvaluation.read(from: folder), e)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(RouterEvaluation.markdownName).path))
    }
}
