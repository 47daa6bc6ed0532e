import Foundation
import ParisDiffusion
import ParisImage
import ParisModels
import ParisRun
import Torch

/// What `paris train router` does with `RouterEvaluation` (ParisRun holds the protocol and the file format): it
/// evaluates on the held-out split of `RouterDataset` and draws the confusion matrix.
extension RouterEvaluation {
    /// Evaluates `router` on `data`'s held-out images (and their captions, for a text-conditioned router), with t
    /// drawn from `sampling` in the overall pass. The held-out rows are gathered from the shards' parts a window at
    /// a time, never all at once.
    static func evaluate(router: Router, data: RouterDataset, sampling: TimeSampling, samplingName: String,
                         step: Int, seed: UInt64, device: Device, batchSize: Int) throws -> RouterEvaluation {
        let captions = router.config.kind == .textConditioned
        return try evaluate(router: router, clusters: data.heldOutClusters, withCaptions: captions,
                            sampling: sampling, samplingName: samplingName, step: step, seed: seed,
                            batchSize: batchSize, device: device) { range in
            let rows = try data.heldOut(range, device: .cpu, captions: captions)
            return (rows.images, rows.text)
        }
    }

    /// Writes `confusion.png`: each row coloured by its share (so small clusters show as clearly as big ones),
    /// labelled with the counts.
    func writeConfusionPNG(to folder: URL) throws {
        let cell = numClusters <= 8 ? 40 : numClusters <= 16 ? 28 : max(6, 640 / numClusters)
        var map = Heatmap(title: "ROUTER CONFUSION, STEP \(step)", rowLabel: "TRUE", columnLabel: "PREDICTED",
                          values: confusion.map { $0.map(Double.init) }, cellSize: cell)
        map.shades = confusion.map { row -> [Double] in
            let s = row.reduce(0, +)
            return row.map { s > 0 ? Double($0) / Double(s) : 0 }
        }
        try map.writePNG(to: folder.appendingPathComponent(Self.confusionPNGName))
    }
}
