import Foundation
import ParisData
import ParisEval
import ParisModels
import ParisRun
import ParisTraining
import Torch

/// Admitting a contributed expert for a new cluster: `paris admit --run R BUNDLE --trust KEYS --data D`.
///
/// The contributor trained the expert on its own data; the owner holds a copy of that cluster's data, D (a
/// one-cluster partition with held-out images), for the two checks the router and the run need:
/// 1. **Held-out quality.** On D's held-out images, at `policy.times`, the candidate's flow-matching loss is
///    compared with every existing expert's: an expert that does no better on its own cluster than one the run has
///    (beyond `maxRegression`) adds nothing and is refused.
/// 2. **The router selects it.** The expert is staged as expert K (`ExpertAddition.prepare`, `.files`), the router
///    is retrained from scratch for K + 1 on all shards, and on D's held-out images it must give the new expert at
///    least `minRouterShare` of them at each of `routerTimes`.
/// Accepted, the addition is committed (shard, expert, router, run.json) and the bundle copied to `contributions/`;
/// refused, the staging run is discarded and the run is exactly as it was.
extension Admission {
    static func admitExpert(_ layout: RunLayout, config: RunConfig, manifest: ContributionManifest, signer: TrustedKey,
                            bundle: URL, trust: TrustList, policy: AdmissionPolicy,
                            log: (String) -> Void) throws -> AdmissionReport {
        let k = config.numExperts
        guard let data = policy.data else {
            throw ContributionError("an expert is admitted as a new cluster, expert \(k): that needs the cluster's data "
                + "(--data: a one-cluster partition with held-out images) to retrain the router and score the expert")
        }
        guard manifest.cluster == k else {
            throw ContributionError("the bundle claims cluster \(manifest.cluster), but a new expert of this run is "
                + "expert \(k) (pack it with --cluster \(k))")
        }
        let files = bundle.appendingPathComponent(ContributionBundle.filesName)
        let (candidate, checkpoint) = try ExpertCheckpoint.load(from: files)
        let reference = try ExpertCheckpoint.checkWeights(in: layout.expert(0)).model
        let a = manifest.architecture
        guard (a.inputSize, a.inChannels, a.textLength, a.textDim)
                == (reference.inputSize, reference.inChannels, reference.textLength, reference.textDim) else {
            throw ContributionError("the expert takes \(a.inChannels)×\(a.inputSize)×\(a.inputSize) inputs with "
                + "\(a.textLength)×\(a.textDim) text, the run's experts \(reference.inChannels)×\(reference.inputSize)×"
                + "\(reference.inputSize) with \(reference.textLength)×\(reference.textDim): incompatible architecture")
        }
        let partition = try PartitionManifest.load(from: layout.partition(config))
        guard checkpoint.textEncoder == partition.captionEncoder else {
            throw ContributionError("the expert was trained on \(checkpoint.textEncoder) caption tokens, the run's "
                + "captions are \(partition.captionEncoder)")
        }
        guard let heldOutFolder = HeldOut.folder(in: data) else {
            throw ContributionError("--data \(data.path) has no held-out images (\(HeldOut.folderName)/) to score on")
        }
        let heldOut = try EvalData.load(partition: heldOutFolder, numClusters: 1, limitPerCluster: policy.maxImages,
                                        seed: policy.seed)
        let losses = try score(candidate, objective: checkpoint.objective, layout: layout, config: config,
                               data: heldOut, cluster: 0, policy: policy)
        let others = (0..<k).compactMap { e in losses.mean("expert_\(e)").map { (e, $0) } }
        let best = others.min { $0.1 < $1.1 }
        log("held-out loss on the new cluster (\(losses.images) images): candidate \(fmt(losses.mean("candidate")))"
            + (best.map { ", best existing expert_\($0.0) \(fmt($0.1))" } ?? ""))
        var report = AdmissionReport(accepted: false, reasons: [], kind: .expert, cluster: k, signer: signer.name,
                                     losses: losses, maxRegression: policy.maxRegression, admittedAs: nil,
                                     date: ISO8601DateFormatter().string(from: Date()))
        if let c = losses.mean("candidate"), let (e, b) = best, c > b * (1 + policy.maxRegression) {
            report.reasons.append("on its own cluster's held-out images the expert's loss is \(fmt(c)), worse than "
                + "expert_\(e)'s \(fmt(b)) by more than the allowed " + String(format: "%.1f %%", policy.maxRegression * 100))
            return report
        }

        // Stage the expert as expert K, retrain the router for K + 1, and ask it where the new cluster goes.
        let digest = Checksum.sha256(try Data(contentsOf: bundle.appendingPathComponent(ContributionBundle.manifestName)))
        let staged = try ExpertAddition.prepare(run: layout.root, data: data,
                                                source: .files(files, note: "contribution expert-\(k)-\(digest.prefix(12))"),
                                                log: log)
        var committed = false
        defer { if !committed { try? ExpertAddition.discard(staged) } }
        guard try ExpertAddition.train(staged, log: log) else { throw ContributionError("the router's training was stopped") }
        let router = try RouterCheckpoint.load(from: staged.staging.router)
        let text = try router.config.kind == .textConditioned ? heldOut.condition(0..<heldOut.clusters.count).pooled() : nil
        let evaluation = try RouterEvaluation.evaluate(router: router, images: heldOut.modelImages(),
                                                       clusters: heldOut.clusters.map { _ in k }, text: text,
                                                       times: policy.routerTimes, seed: policy.seed)
        report.router = evaluation.points
        log("retrained router on the new cluster's held-out images: "
            + evaluation.points.map { String(format: "t = %.2f: %.0f %%", $0.t, $0.accuracy * 100) }.joined(separator: ", "))
        for p in evaluation.points where p.accuracy < policy.minRouterShare {
            report.reasons.append(String(format: "the retrained router gives the new expert %.0f %% of its cluster's "
                + "held-out images at t = %.2f, less than the required %.0f %%", p.accuracy * 100, p.t,
                policy.minRouterShare * 100))
        }
        guard report.reasons.isEmpty else { return report }
        report.accepted = true
        let (staging, target) = try stage(bundle, manifest: manifest, report: &report, layout: layout, trust: trust)
        defer { try? FileManager.default.removeItem(at: staging) }
        try ExpertAddition.commit(staged, log: log)
        committed = true
        try FileManager.default.moveItem(at: staging, to: target)
        return report
    }
}
