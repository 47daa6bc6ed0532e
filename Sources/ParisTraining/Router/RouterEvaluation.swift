import Foundation
import ParisData
import ParisDiffusion
import ParisModels
import Torch

/// The router's held-out evaluation (`router/eval.json`, `eval.md`, `confusion.png`).
///
/// Two passes over the held-out images, with noise from a fixed seed (so two evaluations of the same weights agree):
/// - overall: each image once, at a time drawn from the training time distribution → accuracy, mean routing
///   entropy and the K×K confusion matrix (rows: true cluster, columns: predicted; it sums to the held-out count);
/// - by time: each image once in each of 10 equal buckets of t ∈ [0, 1] (t uniform inside the bucket) → accuracy
///   and mean entropy per bucket. Near t = 1 (pure noise) no router can beat the prior; near t = 0 it should be
///   close to a classifier of clean images.
public struct RouterEvaluation: Codable, Sendable, Equatable {
    /// One bucket [tLow, tHigh) of flow time.
    public struct Bucket: Codable, Sendable, Equatable {
        public var tLow: Double
        public var tHigh: Double
        public var count: Int
        public var accuracy: Double?
        /// Mean entropy of p(k | x_t, t), in nats (0: certain; ln K: uniform).
        public var entropy: Double?
        enum CodingKeys: String, CodingKey { case tLow = "t_low", tHigh = "t_high", count, accuracy, entropy }
    }

    public var numClusters: Int
    public var heldOut: Int
    public var step: Int
    /// How t was drawn in the overall pass (the experts' time sampling).
    public var timeSampling: String
    public var accuracy: Double?
    public var entropy: Double?
    /// ln K, the entropy of a uniform routing.
    public var maxEntropy: Double
    /// confusion[true][predicted]
    public var confusion: [[Int]]
    /// Accuracy of each true cluster (nil for a cluster with no held-out image).
    public var perClusterAccuracy: [Double?]
    public var buckets: [Bucket]

    enum CodingKeys: String, CodingKey {
        case numClusters = "num_clusters", heldOut = "held_out", step, timeSampling = "time_sampling", accuracy
        case entropy, maxEntropy = "max_entropy", confusion, perClusterAccuracy = "per_cluster_accuracy", buckets
    }

    public static let jsonName = "eval.json"
    public static let markdownName = "eval.md"
    public static let confusionPNGName = "confusion.png"

    /// Evaluates `router` on `data`'s held-out images.
    public static func evaluate(router: Router, data: RouterDataset, sampling: TimeSampling, samplingName: String,
                                step: Int, seed: UInt64, device: Device, batchSize: Int = 256,
                                buckets numBuckets: Int = 10) throws -> RouterEvaluation {
        let k = data.numClusters, n = data.heldOutCount
        let wasTraining = router.isTraining
        router.train(false)
        defer { router.train(wasTraining) }
        var confusion = Array(repeating: Array(repeating: 0, count: k), count: k)
        var entropySum = 0.0
        var bucketCorrect = Array(repeating: 0, count: numBuckets), bucketEntropy = Array(repeating: 0.0, count: numBuckets)

        /// Runs the router on held-out rows `range` at times t: [n] → (predictions, per-sample entropy).
        func score(_ range: Range<Int>, t: Tensor) throws -> (pred: [Int64], entropy: [Double], labels: [Int64]) {
            let (x0, labels) = try data.heldOut(range, device: device)
            let noise = try Tensor.randn(x0.shape, device: device)
            let xt = try FlowPath.interpolate(x0: x0, noise: noise, t: t.to(device: device))   // [n, C, H, W]
            let logits = try router(x: xt, t: FlowPath.networkTime(t.to(device: device))).to(dtype: .float32)
            let logp = try logits.logSoftmax(dim: -1)                                            // [n, K]
            let entropy = try ((logp.exp() * logp).sum(dims: [1]) * -1.0)                        // [n]
            return (try logits.argmax(dim: 1).to(device: .cpu).toArray(as: Int64.self),
                    try entropy.to(device: .cpu, dtype: .float64).toArray(as: Double.self),
                    try labels.to(device: .cpu).toArray(as: Int64.self))
        }

        try withNoGrad {
            Runtime.manualSeed(seed ^ 0xE7A1_0000_0000_0001)
            for start in stride(from: 0, to: n, by: batchSize) {
                let range = start..<min(n, start + batchSize)
                let t = try sampling.sample(batch: range.count)
                let r = try score(range, t: t)
                for (p, (e, y)) in zip(r.pred, zip(r.entropy, r.labels)) {
                    confusion[Int(y)][Int(p)] += 1
                    entropySum += e
                }
            }
            for b in 0..<numBuckets {
                Runtime.manualSeed(seed ^ (0xE7A1_0000_0000_0100 &+ UInt64(b)))
                for start in stride(from: 0, to: n, by: batchSize) {
                    let range = start..<min(n, start + batchSize)
                    // t uniform in [b/10, (b+1)/10)
                    let t = try (Tensor.rand([range.count]) + Double(b)) / Double(numBuckets)
                    let r = try score(range, t: t)
                    for (p, (e, y)) in zip(r.pred, zip(r.entropy, r.labels)) {
                        if p == y { bucketCorrect[b] += 1 }
                        bucketEntropy[b] += e
                    }
                }
            }
        }
        let correct = (0..<k).reduce(0) { $0 + confusion[$1][$1] }
        func ratio(_ a: Double, _ b: Int) -> Double? { b > 0 ? a / Double(b) : nil }
        let buckets = (0..<numBuckets).map { b in
            Bucket(tLow: Double(b) / Double(numBuckets), tHigh: Double(b + 1) / Double(numBuckets), count: n,
                   accuracy: ratio(Double(bucketCorrect[b]), n), entropy: ratio(bucketEntropy[b], n))
        }
        return RouterEvaluation(
            numClusters: k, heldOut: n, step: step, timeSampling: samplingName,
            accuracy: ratio(Double(correct), n), entropy: ratio(entropySum, n), maxEntropy: log(Double(k)),
            confusion: confusion,
            perClusterAccuracy: (0..<k).map { c in ratio(Double(confusion[c][c]), confusion[c].reduce(0, +)) },
            buckets: buckets)
    }

    /// Writes `eval.json`, `eval.md` and `confusion.png` into `folder` (each atomically).
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10], to: folder.appendingPathComponent(Self.jsonName))
        try AtomicFile.write(Array(markdown().utf8), to: folder.appendingPathComponent(Self.markdownName))
        let cell = numClusters <= 8 ? 40 : numClusters <= 16 ? 28 : max(6, 640 / numClusters)
        let rowsNormalised = confusion.map { row -> [Double] in
            let s = row.reduce(0, +)
            return row.map { s > 0 ? Double($0) / Double(s) : 0 }
        }
        // Colour by each row's share (so small clusters show as clearly as big ones), label with counts.
        var map = Heatmap(title: "ROUTER CONFUSION, STEP \(step)", rowLabel: "TRUE", columnLabel: "PREDICTED",
                          values: confusion.map { $0.map(Double.init) }, cellSize: cell)
        map.shades = rowsNormalised
        try map.writePNG(to: folder.appendingPathComponent(Self.confusionPNGName))
    }

    /// The report as Markdown: overall numbers, the per-bucket table and the confusion matrix.
    public func markdown() -> String {
        func pct(_ v: Double?) -> String { v.map { String(format: "%.1f %%", 100 * $0) } ?? "–" }
        func nats(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "–" }
        var s = "# Router evaluation (step \(step))\n\n"
        s += "Held-out images: \(heldOut) (K = \(numClusters)); x_t on the flow-matching path, t ~ \(timeSampling).\n\n"
        s += "- accuracy: **\(pct(accuracy))** (chance with a uniform guess: \(pct(1 / Double(numClusters))))\n"
        s += "- routing entropy: \(nats(entropy)) nats (uniform: \(nats(maxEntropy)))\n\n"
        s += "## By time\n\n| t | accuracy | entropy (nats) |\n|---|---|---|\n"
        for b in buckets {
            s += String(format: "| %.1f–%.1f ", b.tLow, b.tHigh) + "| \(pct(b.accuracy)) | \(nats(b.entropy)) |\n"
        }
        s += "\n## Confusion (rows: true cluster, columns: predicted)\n\n"
        s += "| true \\ pred | " + (0..<numClusters).map(String.init).joined(separator: " | ") + " | accuracy |\n"
        s += "|---|" + String(repeating: "---|", count: numClusters + 1) + "\n"
        for (i, row) in confusion.enumerated() {
            s += "| \(i) | " + row.map(String.init).joined(separator: " | ") + " | \(pct(perClusterAccuracy[i])) |\n"
        }
        s += "\n![confusion](\(Self.confusionPNGName))\n"
        return s
    }
}
