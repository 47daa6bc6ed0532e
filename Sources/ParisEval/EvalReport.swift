import Foundation
import ParisRun
import ParisImage
import ParisModels
import ParisData
import ParisEnsemble
import Torch

/// Everything `paris eval` measured, with the sample counts; written as `report.json`, `report.md` and plots.
public struct EvalReport: Codable, Sendable {
    /// One row of sample metrics: the mixture with one routing strategy, or the run's compute-matched monolith.
    public struct StrategyResult: Codable, Sendable {
        /// The routing strategy (nil for the monolith).
        public var strategy: RoutingStrategy?
        /// The row's name: the strategy (`top1`, …) or `monolith`.
        public var name: String
        public var samples: Int
        /// FID against the reference set with TF-Inception features (nil when skipped).
        public var fid: Double?
        /// Fréchet distance in the dataset classifier's penultimate features.
        public var classifierFD: Double?
        /// The fraction of samples the classifier puts in the class of their prompt's image.
        public var promptAccuracy: Double?
        /// The sample grid's file name in eval/.
        public var grid: String
        /// The compared router that routed this row (`EvalJob.compareRouters`, by folder name); nil: the run's own
        /// router, or none.
        public var router: String?
        /// The cost of one image, measured while sampling this row.
        public var cost: SamplingCost?

        public init(strategy: RoutingStrategy?, samples: Int, grid: String, router: String? = nil) {
            self.strategy = strategy
            self.name = (strategy?.description ?? "monolith") + (router.map { " (\($0))" } ?? "")
            self.samples = samples
            self.grid = grid
            self.router = router
        }

        enum CodingKeys: String, CodingKey {
            case strategy, name, samples, fid, classifierFD = "classifier_fd", promptAccuracy = "prompt_accuracy", grid
            case router, cost
        }
    }

    /// What one image of a row cost: expert and router evaluations per sampling step, counted from the routing
    /// weights actually used, and the measured wall-clock time. An expert evaluation is one guided velocity: with
    /// CFG it is a forward pass on the prompt and one on the null caption, for every strategy alike.
    public struct SamplingCost: Codable, Sendable, Equatable {
        /// The mean number of experts evaluated per sample per model evaluation: 1 for top-1, sample-1, oracle,
        /// prompt and the monolith whatever K is; up to 2 for top-2; up to K for full (experts below
        /// `RoutingStrategy.fullMinimumWeight` are skipped).
        public var expertEvaluationsPerStep: Double
        /// Router forward passes per sample per model evaluation (0 when it was not called: prompt, the monolith).
        public var routerEvaluationsPerStep: Double
        /// Model evaluations per sample (the solver's: the step count for Euler).
        public var modelEvaluations: Int
        /// Sampling wall-clock seconds per image on the evaluation's device, in batches of `batchSize`.
        public var secondsPerImage: Double
        public var batchSize: Int

        public init(expertEvaluationsPerStep: Double, routerEvaluationsPerStep: Double, modelEvaluations: Int,
                    secondsPerImage: Double, batchSize: Int) {
            self.expertEvaluationsPerStep = expertEvaluationsPerStep
            self.routerEvaluationsPerStep = routerEvaluationsPerStep
            self.modelEvaluations = modelEvaluations
            self.secondsPerImage = secondsPerImage
            self.batchSize = batchSize
        }

        /// Counts from the traces of a row's batches (one `RoutingTrace` per batch) and the time they took.
        public init(traces: [RoutingTrace], seconds: Double, batchSize: Int) {
            var samples = 0, entries = 0, experts = 0, routed = 0
            for trace in traces {
                samples += trace.seeds.count
                for step in trace.steps {
                    entries += step.weights.count
                    experts += step.weights.reduce(0) { $0 + $1.filter { $0 > 0 }.count }
                    if step.probabilities != nil { routed += step.weights.count }
                }
            }
            self.init(expertEvaluationsPerStep: Double(experts) / Double(max(entries, 1)),
                      routerEvaluationsPerStep: Double(routed) / Double(max(entries, 1)),
                      modelEvaluations: samples > 0 ? entries / samples : 0,
                      secondsPerImage: seconds / Double(max(samples, 1)), batchSize: batchSize)
        }

        enum CodingKeys: String, CodingKey {
            case expertEvaluationsPerStep = "expert_evaluations_per_step"
            case routerEvaluationsPerStep = "router_evaluations_per_step", modelEvaluations = "model_evaluations"
            case secondsPerImage = "seconds_per_image", batchSize = "batch_size"
        }
    }

    /// Another router scored beside the run's (`EvalJob.compareRouters`), with the same protocol and images.
    public struct ComparedRouter: Codable, Sendable {
        public var folder: String
        public var kind: RouterKind
        public var points: [RouterPoint]
        /// A text-conditioned router's points with the null caption.
        public var unconditional: [RouterPoint]?

        public init(folder: String, kind: RouterKind, points: [RouterPoint], unconditional: [RouterPoint]?) {
            self.folder = folder
            self.kind = kind
            self.points = points
            self.unconditional = unconditional
        }
    }

    /// The dataset classifier behind FD_classifier and prompt accuracy.
    public struct ClassifierInfo: Codable, Sendable {
        public var classes: Int
        public var steps: Int
        public var heldOutAccuracy: Double
        public var trainImages: Int

        enum CodingKeys: String, CodingKey {
            case classes, steps, heldOutAccuracy = "held_out_accuracy", trainImages = "train_images"
        }

        /// Whether its held-out accuracy reaches `threshold`, so that the prompt accuracy it scores means something.
        public func trustedForPromptAccuracy(_ threshold: Double) -> Bool { heldOutAccuracy >= threshold }
    }

    public var run: String
    public var numExperts: Int
    public var missingExperts: [Int]
    public var dataSource: String
    /// The classifier's folder (shared between runs when `paris eval --classifier` names one).
    public var classifierFolder: String?
    /// True when the held-out images come from the experts' own training shards.
    public var sharedWithTraining: Bool
    public var samples: Int
    public var fidReference: Int
    public var steps: Int
    public var guidance: Double
    public var seed: UInt64
    public var strategies: [StrategyResult] = []
    public var classifier: ClassifierInfo?
    public var router: [RouterPoint] = []
    /// The run's router kind (nil when it has none).
    public var routerKind: RouterKind?
    /// A text-conditioned router's points with the null caption (no prompt); nil for a text-free router.
    public var routerUnconditional: [RouterPoint]?
    /// Other routers scored on the same images (`paris eval --compare-router`).
    public var comparedRouters: [ComparedRouter] = []
    public var routerImages: Int = 0
    public var alignment: AlignmentMatrix?
    public var notes: [String] = []
    /// The classifier accuracy below which prompt accuracy is withheld (`EvalJob.minClassifierAccuracy`).
    public var minClassifierAccuracy: Double?

    enum CodingKeys: String, CodingKey {
        case run, numExperts = "num_experts", missingExperts = "missing_experts", dataSource = "data_source"
        case classifierFolder = "classifier_folder"
        case sharedWithTraining = "shared_with_training", samples, fidReference = "fid_reference", steps, guidance
        case seed, strategies, classifier, router, routerKind = "router_kind"
        case routerUnconditional = "router_unconditional", comparedRouters = "compared_routers"
        case routerImages = "router_images", alignment, notes
        case minClassifierAccuracy = "min_classifier_accuracy"
    }

    /// Writes report.json, report.md, router.png and alignment.png into `folder`.
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10], to: folder.appendingPathComponent("report.json"))
        var plots: [String] = []
        if !router.isEmpty {
            var acc = LinePlot(title: "router accuracy and entropy by t", xLabel: "t (1 = noise)", yLabel: "value")
            acc.add(.init(name: "accuracy", points: router.map { (x: $0.t, y: $0.accuracy) }))
            acc.add(.init(name: "p(true cluster)", points: router.map { (x: $0.t, y: $0.trueClusterProbability) }))
            acc.add(.init(name: "entropy / log K", points: router.map {
                (x: $0.t, y: numExperts > 1 ? $0.entropy / Foundation.log(Double(numExperts)) : 0)
            }))
            try acc.writePNG(to: folder.appendingPathComponent("router.png"))
            plots.append("router.png")
        }
        if let a = alignment, !a.errors.isEmpty {
            let values = a.errors.map { $0.map { $0 ?? 0 } }
            try Heatmap(title: "x0 error: expert (row) x cluster (column)", rowLabel: "EXPERT", columnLabel: "CLUSTER",
                        values: values).writePNG(to: folder.appendingPathComponent("alignment.png"))
            plots.append("alignment.png")
        }
        try AtomicFile.write(Array(markdown(plots: plots).utf8), to: folder.appendingPathComponent("report.md"))
    }

    /// Each router's accuracy at the noisiest and the cleanest evaluated t (0.95 and 0.05 by default), with and, for
    /// a text-conditioned router, without the prompt, as a Markdown table: the run's router, then the compared ones
    /// (empty without router points).
    public func routerSummary() -> String {
        guard let hi = router.max(by: { $0.t < $1.t }), let lo = router.min(by: { $0.t < $1.t }) else { return "" }
        func acc(_ points: [RouterPoint]?, _ t: Double) -> String {
            points?.first { $0.t == t }.map { String(format: "%.3f", $0.accuracy) } ?? "–"
        }
        var md = String(format: "| router | accuracy at t = %.2f | accuracy at t = %.2f |\n|---|---|---|\n", hi.t, lo.t)
        func rows(_ name: String, _ kind: RouterKind, _ points: [RouterPoint], _ unconditional: [RouterPoint]?) {
            md += "| \(name)\(kind)\(kind == .textConditioned ? ", with the prompt" : "") | \(acc(points, hi.t)) | "
                + "\(acc(points, lo.t)) |\n"
            if let u = unconditional {
                md += "| \(name)\(kind), no prompt (null caption) | \(acc(u, hi.t)) | \(acc(u, lo.t)) |\n"
            }
        }
        rows("", routerKind ?? .textFree, router, routerUnconditional)
        for r in comparedRouters { rows("`\(r.folder)`: ", r.kind, r.points, r.unconditional) }
        return md + "\n"
    }

    /// The report as Markdown.
    public func markdown(plots: [String] = []) -> String {
        func f(_ v: Double?, _ digits: Int = 2) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "–" }
        var md = "# Evaluation of \(run)\n\n"
        md += "K = \(numExperts) experts"
        md += missingExperts.isEmpty ? ".\n" : "; missing: \(missingExperts.map(String.init).joined(separator: ", ")) "
            + "(their routing weight is renormalised over the rest).\n"
        md += "Held-out images from `\(dataSource)`"
        md += sharedWithTraining ? " — the experts' own training shards: held out from the classifier only, not "
            + "from the experts, so FID here measures fit, not generalisation.\n" : ".\n"
        md += "\nSampling: \(steps) Euler steps, CFG \(f(guidance, 1)) per expert, seed \(seed); prompts are the "
            + "captions of the first \(samples) held-out images.\n\n"
        md += "## Samples by routing strategy\n\n"
        md += "| strategy or model | samples | FID (vs \(fidReference) real) | FD_classifier | prompt→class accuracy "
            + "| expert evaluations per step | router evaluations per step | s per image | grid |\n"
        md += "|---|---|---|---|---|---|---|---|---|\n"
        let withheld = classifier.map { !$0.trustedForPromptAccuracy(minClassifierAccuracy ?? 0) } ?? false
        for s in strategies {
            let accuracy = withheld ? "withheld" : f(s.promptAccuracy, 3)
            md += "| \(s.name) | \(s.samples) | \(f(s.fid)) | \(f(s.classifierFD)) | \(accuracy) | "
                + "\(f(s.cost?.expertEvaluationsPerStep)) | \(f(s.cost?.routerEvaluationsPerStep)) | "
                + "\(f(s.cost?.secondsPerImage, 3)) | ![\(s.name)](\(s.grid)) |\n"
        }
        if let c = strategies.lazy.compactMap(\.cost).first {
            md += "\nCost per image: experts and router evaluated per sample at each of the \(c.modelEvaluations) "
                + "model evaluations, counted from the routing weights used (each expert evaluation is CFG's "
                + "conditional and unconditional pass), and the measured sampling time per image in batches of "
                + "\(c.batchSize) on this machine.\n"
        }
        md += "\nFID: \(InceptionFeatures.name), 2048-d pool3, images upsampled bilinearly to 299×299. With "
            + "\(samples) samples against \(fidReference) references the small-sample bias is large, and on 32-px "
            + "images the number is not comparable with published FIDs; compare strategies and runs with the same "
            + "counts only.\n"
        if let c = classifier {
            md += "\nFD_classifier and prompt accuracy use a small CNN trained for \(c.steps) steps on "
                + "\(c.trainImages) images with the dataset's \(c.classes) labels (held-out accuracy "
                + "\(f(c.heldOutAccuracy, 3))); prompt accuracy is our offline stand-in for CLIP score, shown only "
                + "when that accuracy is at least \(f(minClassifierAccuracy ?? 0))" + (withheld ? " (withheld here)" : "") + ".\n"
            if let folder = classifierFolder { md += "The classifier is `\(folder)`.\n" }
        }
        if !router.isEmpty {
            let kind = routerKind ?? .textFree
            md += "\n## Router\n\nRouter: \(kind), p(k | \(kind.inputs)). \(routerImages) held-out images noised to "
                + "each t (seeded ε)" + (kind == .textConditioned ? ", each with its caption" : "") + ".\n\n"
            md += routerSummary()
            let logK = f(Foundation.log(Double(numExperts)), 3)
            if let u = routerUnconditional, u.count == router.count {
                md += "| t | accuracy | mean p(true cluster) | entropy (nats, log K = \(logK)) | accuracy without the prompt |\n"
                md += "|---|---|---|---|---|\n"
                for (p, q) in zip(router, u) {
                    md += "| \(f(p.t)) | \(f(p.accuracy, 3)) | \(f(p.trueClusterProbability, 3)) | \(f(p.entropy, 3)) | "
                        + "\(f(q.accuracy, 3)) |\n"
                }
            } else {
                md += "| t | accuracy | mean p(true cluster) | entropy (nats, log K = \(logK)) |\n"
                md += "|---|---|---|---|\n"
                for p in router { md += "| \(f(p.t)) | \(f(p.accuracy, 3)) | \(f(p.trueClusterProbability, 3)) | \(f(p.entropy, 3)) |\n" }
            }
        }
        if let a = alignment {
            md += "\n## Expert-data alignment: x0 error (MSE, [−1, 1] pixels)\n\n"
            md += "Rows: experts; columns: clusters (\(a.imagesPerCluster.map(String.init).joined(separator: ", ")) "
                + "images); t ∈ {\(a.times.map { f($0) }.joined(separator: ", "))}; caption-conditioned, no CFG. "
                + "An aligned expert is best on its own cluster (diagonal).\n\n"
            md += "| expert | " + (0..<(a.errors.first?.count ?? 0)).map { "c\($0)" }.joined(separator: " | ") + " |\n"
            md += "|---|" + String(repeating: "---|", count: a.errors.first?.count ?? 0) + "\n"
            for (k, row) in a.errors.enumerated() {
                md += "| \(k) | " + row.enumerated().map { c, v in c == k ? "**\(f(v, 4))**" : f(v, 4) }
                    .joined(separator: " | ") + " |\n"
            }
            md += "\nOwn expert best on \(a.diagonalBest.count) of \(a.errors.first?.count ?? 0) clusters.\n"
        }
        if !plots.isEmpty { md += "\n## Plots\n\n" + plots.map { "![\($0)](\($0))\n" }.joined() }
        if !notes.isEmpty { md += "\n## Notes\n\n" + notes.map { "- \($0)\n" }.joined() }
        return md
    }
}
