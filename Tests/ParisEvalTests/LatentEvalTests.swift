import Foundation
import ParisData
import ParisRun
import ParisRunTestSupport
@testable import ParisEval
import Torch
import XCTest

/// `paris eval` on a latent run: the real side is the pixel partition's images, the samples are decoded by the
/// partition's autoencoder, and the router and x0 checks see latents.
final class LatentEvalTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func testEvalOfALatentRunComparesDecodedSamplesWithPixels() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("paris-latent-eval-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        // An untrained vae-tiny for the 8-px squares (f = 2: 4×4×4 latents), untrained latent experts and router.
        let (run, _) = try LatentRun.untrained(in: root)
        let manifest = try PartitionManifest.load(from: run.appendingPathComponent(LatentRun.partition))
        XCTAssertEqual(manifest.pixelPartition, run.appendingPathComponent("partition").standardizedFileURL.path)
        let layout = RunLayout(run)

        let job = EvalJob(run: layout, samples: 4, fidSamples: 4, steps: 2, guidance: 2, strategies: [.top1, .oracle],
                          classifierSteps: 3, alignmentPerCluster: 2, routerTimes: [0.5], alignmentTimes: [0.5],
                          device: .cpu)
        var lines: [String] = []
        let report = try job.run(inception: nil, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.hasPrefix("latent run: real images from") }, "\(lines)")
        XCTAssertEqual(report.strategies.count, 2)
        XCTAssertFalse(report.router.isEmpty)
        // The real side: 8-px RGB pixels; the samples' grid: decoded 8-px images.
        let data = try EvalData.load(partition: run.appendingPathComponent("latent/held_out"), numClusters: 2,
                                     pixels: run.appendingPathComponent("partition/held_out"))
        XCTAssertEqual(data.images.shape.dropFirst(), [3, 8, 8])
        XCTAssertEqual(data.latents?.shape.dropFirst(), [4, 4, 4])
        XCTAssertThrowsError(try EvalData.load(partition: run.appendingPathComponent("latent"), numClusters: 2)) {
            XCTAssertTrue("\($0)".contains("holds latents"), "\($0)")
        }
    }
}
