import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// The router's accuracy and routing entropy at one flow time t.
public struct RouterPoint: Codable, Sendable, Equatable {
    public var t: Double
    /// The fraction of held-out x_t whose router argmax is the image's true cluster.
    public var accuracy: Double
    /// The mean entropy (nats) of p(k | x_t, t): 0 is certain, ln K is a uniform router.
    public var entropy: Double
    /// The mean probability the router gives the true cluster.
    public var trueClusterProbability: Double

    public init(t: Double, accuracy: Double, entropy: Double, trueClusterProbability: Double) {
        self.t = t
        self.accuracy = accuracy
        self.entropy = entropy
        self.trueClusterProbability = trueClusterProbability
    }

    enum CodingKeys: String, CodingKey {
        case t, accuracy, entropy, trueClusterProbability = "true_cluster_probability"
    }
}

/// The router's held-out evaluation, the one protocol for `paris train router` (`router/eval.json`, `eval.md`) and
/// `paris eval` (the report's router section).
///
/// Held-out images x0 [N, C, H, W] (pixels in [−1, 1]) with true clusters c:
/// - by time: at each t of `times`, x_t = (1 − t)·x0 + t·ε with ε from `Runtime.manualSeed(seed)` (the same ε at
///   every t, so the points differ by t alone); the router scores x_t at network time t·1000 → accuracy, mean
///   entropy −Σ_k p_k log p_k (log p from log-softmax) and the mean p(c);
/// - overall: each image once at a t drawn from the training time distribution (seed `seed + 1`) → accuracy, mean
///   entropy and the K×K confusion matrix (rows: true cluster, columns: predicted; it sums to N).
///
/// Near t = 1 (pure noise) no text-free router can beat the cluster prior; near t = 0 it is a classifier of clean
/// images.
///
/// Every router kind goes through this one protocol. A text-conditioned router is given each image's pooled caption
/// (`text`, [N, D]) in both passes, and is scored a second time by time with the null caption
/// (`unconditionalPoints`: how it routes samples without a prompt). Given no captions it is scored with the null
/// caption, and `withCaptions` says so.
public struct RouterEvaluation: Codable, Sendable, Equatable {
    public static let jsonName = RouterCheckpoint.evaluationName
    public static let markdownName = "eval.md"
    public static let confusionPNGName = "confusion.png"
    /// t = 0.05, 0.15, …, 0.95: the middles of ten equal bins of the flow path.
    public static let defaultTimes = (0..<10).map { (Double($0) + 0.5) / 10 }

    public var numClusters: Int
    public var heldOut: Int
    /// Training steps behind the router's weights.
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
    /// Accuracy and entropy at each evaluated t.
    public var points: [RouterPoint]
    /// Which router was evaluated (nil in files from before text-conditioned routers: text-free).
    public var kind: RouterKind?
    /// Whether a text-conditioned router was given the images' captions (nil for a text-free router).
    public var withCaptions: Bool?
    /// A text-conditioned router's points with the null caption instead (nil for a text-free router).
    public var unconditionalPoints: [RouterPoint]?

    enum CodingKeys: String, CodingKey {
        case numClusters = "num_clusters", heldOut = "held_out", step, timeSampling = "time_sampling", accuracy
        case entropy, maxEntropy = "max_entropy", confusion, perClusterAccuracy = "per_cluster_accuracy", points
        case kind = "router_kind", withCaptions = "with_captions", unconditionalPoints = "unconditional_points"
    }

    /// The router kind (files without one are text-free).
    public var routerKind: RouterKind { kind ?? .textFree }

    /// Evaluates `router` (K outputs) on `images` [N, C, H, W] with true clusters `clusters` (N values in 0..<K) and,
    /// for a text-conditioned router, their pooled captions `text` [N, D] (ignored by a text-free router).
    public static func evaluate(router: Router, images x0: Tensor, clusters: [Int], text: Tensor? = nil,
                                times: [Double] = defaultTimes,
                                sampling: TimeSampling = .uniform, samplingName: String = "uniform", step: Int = 0,
                                seed: UInt64 = 0, batchSize: Int = 256, device: Device = .cpu) throws
        -> RouterEvaluation {
        let n = clusters.count
        guard x0.rank == 4, x0.size(0) == n else {
            throw RunError("router evaluation: \(n) clusters for images of shape \(x0.shape)")
        }
        let images = try x0.to(device: .cpu, dtype: .float32)
        let captions = router.config.kind == .textConditioned ? text : nil                // [N, D] or nil
        if let captions, captions.rank != 2 || captions.size(0) != n {
            throw RunError("router evaluation: captions of shape \(captions.shape) for \(n) images")
        }
        return try evaluate(router: router, clusters: clusters, withCaptions: captions != nil, times: times,
                            sampling: sampling, samplingName: samplingName, step: step, seed: seed,
                            batchSize: batchSize, device: device) { r in
            (try images.slice(0, r.lowerBound, r.upperBound), try captions?.slice(0, r.lowerBound, r.upperBound))
        }
    }

    /// The same evaluation of `clusters.count` images that are read a window of rows at a time (the router's
    /// held-out split, gathered from the shards' parts), so that no tensor of all N images (nor of their noise) is
    /// ever made: `rows(range)` gives images [r, C, H, W] float32 (pixels in [−1, 1]) and, when `withCaptions`
    /// (a text-conditioned router), pooled captions [r, D]. The results are those of one tensor of all N images:
    /// the noise of each window is drawn in order from the same generator, windows hold whole batches, and each
    /// pass keeps only the per-row log-probabilities [N, K].
    public static func evaluate(router: Router, clusters: [Int], withCaptions: Bool, times: [Double] = defaultTimes,
                                sampling: TimeSampling = .uniform, samplingName: String = "uniform", step: Int = 0,
                                seed: UInt64 = 0, batchSize: Int = 256, device: Device = .cpu,
                                rows: (Range<Int>) throws -> (images: Tensor, text: Tensor?)) throws
        -> RouterEvaluation {
        let k = router.config.numExperts, n = clusters.count
        guard clusters.allSatisfy({ (0..<k).contains($0) }) else {
            throw RunError("router evaluation: a cluster index is outside 0..<\(k)")
        }
        guard times.allSatisfy({ $0.isFinite && (0...1).contains($0) }) else {
            throw RunError("router evaluation: times must lie in [0, 1], got \(times)")
        }
        guard batchSize >= 1 else { throw RunError("router evaluation: batch size \(batchSize) must be positive") }
        let wasTraining = router.isTraining
        router.train(false)
        defer { router.train(wasTraining) }
        let truth = try Tensor(clusters.map { Int64($0) })                                // [N]
        let kind = router.config.kind
        let withText = kind == .textConditioned && withCaptions
        let sample = [router.config.inChannels, router.config.inputSize, router.config.inputSize]
        let window = noiseWindow(batchSize: batchSize, elements: sample.reduce(1, *), count: n)

        /// log p(k | x_t, t[, c]) [N, K] (float64, CPU) for x_t = (1 − t)·x0 + t·ε, t: [N], with ε drawn window by
        /// window from the generator as it stands; `text` false: the null caption (text-conditioned) or no caption
        /// input (text-free).
        func logProbabilities(t: Tensor, text: Bool = withText) throws -> Tensor {
            var parts: [Tensor] = []
            for w in stride(from: 0, to: n, by: window) {
                let we = min(n, w + window)
                let (x0, c) = try rows(w..<we)                                           // [w, C, H, W], [w, D]
                guard x0.shape == [we - w] + sample else {
                    throw RunError("router evaluation: images of shape \(x0.shape) for a router of \(sample) inputs")
                }
                if text, let c, c.rank != 2 || c.size(0) != we - w {
                    throw RunError("router evaluation: captions of shape \(c.shape) for \(we - w) images")
                }
                let images = try x0.to(device: .cpu, dtype: .float32)
                let noise = try Tensor.randn(images.shape)                                 // [w, C, H, W]
                for s in stride(from: 0, to: we - w, by: batchSize) {
                    let e = min(we - w, s + batchSize)
                    let tb = try t.slice(0, w + s, w + e).to(device: device)
                    let xt = try FlowPath.interpolate(x0: images.slice(0, s, e).to(device: device),
                                                      noise: noise.slice(0, s, e).to(device: device), t: tb)
                    let cb = text ? try c.map { try $0.slice(0, s, e).to(device: device) } : nil  // [b, D]
                    let logits = try router(x: xt, t: FlowPath.networkTime(tb), text: cb).to(dtype: .float32)  // [b, K]
                    parts.append(try logits.logSoftmax(dim: -1).to(device: .cpu, dtype: .float64))
                }
            }
            return try Tensor.cat(parts)
        }
        func entropy(_ logp: Tensor) throws -> Tensor { try (logp.exp() * logp).sum(dims: [1]) * -1.0 }  // [N]

        return try withNoGrad {
            var points: [RouterPoint] = [], unconditional: [RouterPoint] = []
            if n > 0 {
                func point(_ t: Double, _ logp: Tensor) throws -> RouterPoint {
                    RouterPoint(
                        t: t, accuracy: try logp.argmax(dim: 1).eq(truth).to(dtype: .float64).mean().item(),
                        entropy: try entropy(logp).mean().item(),
                        trueClusterProbability: try logp.gather(dim: 1, index: truth.unsqueeze(1)).exp().mean().item())
                }
                // The same ε at every t: each pass draws it again from the same seed.
                for t in times {
                    Runtime.manualSeed(seed)
                    points.append(try point(t, try logProbabilities(t: try Tensor.full([n], t))))
                    if kind == .textConditioned {
                        Runtime.manualSeed(seed)
                        unconditional.append(try point(t, try logProbabilities(t: try Tensor.full([n], t), text: false)))
                    }
                }
            }
            var confusion = Array(repeating: Array(repeating: 0, count: k), count: k)
            var entropySum = 0.0
            if n > 0 {
                Runtime.manualSeed(seed &+ 1)
                let t = try sampling.sample(batch: n)
                let logp = try logProbabilities(t: t)
                let predicted = try logp.argmax(dim: 1).toArray(as: Int64.self)
                for (c, p) in zip(clusters, predicted) { confusion[c][Int(p)] += 1 }
                entropySum = try entropy(logp).sum().item()
            }
            func ratio(_ a: Double, _ b: Int) -> Double? { b > 0 ? a / Double(b) : nil }
            let correct = (0..<k).reduce(0) { $0 + confusion[$1][$1] }
            return RouterEvaluation(
                numClusters: k, heldOut: n, step: step, timeSampling: samplingName,
                accuracy: ratio(Double(correct), n), entropy: ratio(entropySum, n), maxEntropy: log(Double(k)),
                confusion: confusion,
                perClusterAccuracy: (0..<k).map { c in ratio(Double(confusion[c][c]), confusion[c].reduce(0, +)) },
                points: points, kind: kind, withCaptions: kind == .textConditioned ? withText : nil,
                unconditionalPoints: kind == .textConditioned ? unconditional : nil)
        }
    }

    /// Rows per noise window: whole batches whose noise has a multiple of 16 values. libtorch fills a normal
    /// tensor 16 values at a time (Box–Muller on 16 uniforms drawn in order) and redraws the last 16 of a tensor
    /// whose size is not a multiple of 16, so windows of that size, drawn one after another, give exactly the
    /// numbers of one draw of all N; a sample of fewer than 16 values is drawn in one window.
    static func noiseWindow(batchSize b: Int, elements e: Int, count n: Int) -> Int {
        guard e >= 16 else { return max(1, n) }
        var m = 1
        while (b * m * e) % 16 != 0 { m *= 2 }
        return b * m
    }

    /// The point nearest to flow time t.
    public func point(nearest t: Double) -> RouterPoint? { points.min { abs($0.t - t) < abs($1.t - t) } }

    /// Writes `eval.json` and `eval.md` into `folder` (each atomically).
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10], to: folder.appendingPathComponent(Self.jsonName))
        try AtomicFile.write(Array(markdown().utf8), to: folder.appendingPathComponent(Self.markdownName))
    }

    /// Reads `folder/eval.json`.
    public static func read(from folder: URL) throws -> RouterEvaluation {
        let url = folder.appendingPathComponent(jsonName)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw RunError("\(url.path): not found") }
        do { return try JSONDecoder().decode(RouterEvaluation.self, from: data) } catch {
            throw RunError("\(url.path): malformed router evaluation (\(error))")
        }
    }

    /// The report as Markdown: overall numbers, the table by t and the confusion matrix.
    public func markdown() -> String {
        func pct(_ v: Double?) -> String { v.map { String(format: "%.1f %%", 100 * $0) } ?? "–" }
        func nats(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "–" }
        var s = "# Router evaluation (step \(step))\n\n"
        s += "Router: \(routerKind) (p(k | \(routerKind.inputs)))"
            + (withCaptions == false ? "; scored without captions (the null caption)" : "") + ".\n"
        s += "Held-out images: \(heldOut) (K = \(numClusters)); x_t on the flow-matching path, t ~ \(timeSampling).\n\n"
        s += "- accuracy: **\(pct(accuracy))** (chance with a uniform guess: \(pct(1 / Double(numClusters))))\n"
        s += "- routing entropy: \(nats(entropy)) nats (uniform: \(nats(maxEntropy)))\n\n"
        if let u = unconditionalPoints, u.count == points.count {
            s += "## By time\n\n| t | accuracy | p(true cluster) | entropy (nats) | accuracy without the prompt |\n"
                + "|---|---|---|---|---|\n"
            for (p, q) in zip(points, u) {
                s += String(format: "| %.2f ", p.t) + "| \(pct(p.accuracy)) | \(nats(p.trueClusterProbability)) | "
                    + "\(nats(p.entropy)) | \(pct(q.accuracy)) |\n"
            }
        } else {
            s += "## By time\n\n| t | accuracy | p(true cluster) | entropy (nats) |\n|---|---|---|---|\n"
            for p in points {
                s += String(format: "| %.2f ", p.t) + "| \(pct(p.accuracy)) | \(nats(p.trueClusterProbability)) | "
                    + "\(nats(p.entropy)) |\n"
            }
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
