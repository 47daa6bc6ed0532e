import Foundation
import ParisData
import ParisModels
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
        let run = try ColourPartitions.run(in: root)
        // An untrained vae-tiny for the 8-px squares (f = 2: 4×4×4 latents).
        let vae = root.appendingPathComponent("vae")
        try FileManager.default.createDirectory(at: vae, withIntermediateDirectories: true)
        Runtime.manualSeed(0)
        try JSONEncoder().encode(AutoencoderKLConfig.tiny).write(to: vae.appendingPathComponent(LatentEncoding.configName))
        try SafeTensors.save(try AutoencoderKL(.tiny).stateDict(), to: vae.appendingPathComponent(LatentEncoding.weightsName))
        let manifest = try LatentEncoding.encode(partition: run.appendingPathComponent("partition"),
                                                 output: run.appendingPathComponent("latent"), autoencoder: vae)
        XCTAssertEqual(manifest.pixelPartition, run.appendingPathComponent("partition").standardizedFileURL.path)
        let layout = RunLayout(run)
        var config = try layout.config()
        config.partition = "latent"
        try config.write(to: layout.runJSON)
        // Untrained latent experts and router, published as the trainers would.
        let space = try LatentEncoding.space(of: vae)
        var ec = ParisExpertConfig.cpuTiny
        (ec.inputSize, ec.inChannels, ec.textLength, ec.textDim) = (4, 4, 5, 8)
        for k in 0..<2 {
            try ExpertCheckpoint(model: ec, objective: .flowMatchingUniform, cluster: k, textEncoder: "fake-tokens",
                                 steps: 0, latents: space)
                .write(weights: try ParisExpert(ec).stateDict(), to: layout.expert(k))
        }
        var rc = RouterConfig.cpuTiny
        (rc.inputSize, rc.inChannels, rc.numExperts) = (4, 4, 2)
        try RouterCheckpoint.write(config: rc, weights: try Router(rc).stateDict(), steps: 0, to: layout.router)

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
