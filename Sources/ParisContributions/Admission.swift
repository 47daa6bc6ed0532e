import Foundation
import ParisData
import ParisDiffusion
import ParisEnsemble
import ParisEval
import ParisModels
import ParisRun
import ParisTraining
import Torch

/// How strict `paris admit` is.
public struct AdmissionPolicy: Sendable {
    /// The flow times of the held-out check.
    public var times: [Double] = [0.1, 0.3, 0.5, 0.7, 0.9]
    /// A LoRA is refused when its mean held-out loss exceeds its base's by more than this fraction.
    public var maxRegression: Double = 0.02
    /// At most this many held-out images of the cluster are scored.
    public var maxImages: Int = 256
    public var seed: UInt64 = 0
    /// Once admitted, also add the LoRA to `<run>/mixture.json`, so `paris sample` and `paris serve` use it for its
    /// expert (replacing an earlier LoRA entry of that expert).
    public var use = false
    /// For a private LoRA: its contributor's `paris serve lora` and how often to ask for proofs.
    public var remote: RemoteLoRA.Options? = nil
    /// For an expert of a new cluster: that cluster's data, a one-cluster partition with held-out images
    /// (`paris partition --k 1 --held-out N`), on which the router is retrained and the expert scored.
    public var data: URL? = nil
    /// The flow times at which the retrained router must choose the new expert on its held-out images.
    public var routerTimes: [Double] = [0.1, 0.3, 0.5]
    /// The least share of those images (at each of `routerTimes`) the router must give to the new expert.
    public var minRouterShare: Double = 0.5

    public init() {}
}

/// The held-out flow-matching loss of each compared model on the claimed cluster: per t, E‖v̂ − (ε − x0)‖² over
/// the cluster's held-out images (the same seeded ε for every model).
public struct HeldOutLosses: Codable, Equatable, Sendable {
    public var times: [Double]
    public var images: Int
    /// Model name ("candidate", "expert_2" …) → loss per t.
    public var perT: [String: [Double]]

    enum CodingKeys: String, CodingKey { case times, images, perT = "per_t" }

    public func mean(_ name: String) -> Double? { perT[name].map { $0.reduce(0, +) / Double($0.count) } }
}

/// What `paris admit` decided and why; written as `admission.json` beside an admitted bundle.
public struct AdmissionReport: Codable, Sendable {
    public var accepted: Bool
    /// Why it was refused (empty when accepted).
    public var reasons: [String]
    public var kind: ContributionManifest.Kind
    public var cluster: Int
    /// The trusted key's name that signed it.
    public var signer: String
    public var losses: HeldOutLosses
    public var maxRegression: Double
    /// Where the bundle now lives in the run (nil when refused).
    public var admittedAs: String?
    public var date: String
    /// For a private LoRA: the remote deltas used and the proofs verified.
    public var verification: RemoteLoRA.Stats? = nil
    /// For an expert of a new cluster: the retrained router on that cluster's held-out images, per t.
    public var router: [RouterPoint]? = nil

    enum CodingKeys: String, CodingKey {
        case accepted, reasons, kind, cluster, signer, losses, maxRegression = "max_regression"
        case admittedAs = "admitted_as", date, verification, router
    }
}

/// `paris admit --run R BUNDLE --trust KEYS`: verifies a contribution (`ContributionBundle.verify`), checks it
/// fits the run, scores it on the claimed cluster's held-out images against the run's experts, and either copies
/// it into `<run>/contributions/<id>/` with its `admission.json` (staged, then renamed: all or nothing) or refuses
/// it with the reasons, leaving the run exactly as it was.
public enum Admission {
    public static let folderName = "contributions"

    public static func admit(run: URL, bundle: URL, trust: TrustList, policy: AdmissionPolicy = .init(),
                             log: (String) -> Void = { _ in }) throws -> AdmissionReport {
        let layout = RunLayout(run)
        let config = try layout.config()
        let (manifest, signer) = try ContributionBundle.verify(bundle, trust: trust)
        log("signature of \"\(signer.name)\" and \(manifest.files.count) file hashes verified")
        let k = manifest.cluster
        guard k < config.numExperts || manifest.kind == .expert else {
            throw ContributionError("the bundle is for cluster \(k), but the run has \(config.numExperts) experts")
        }
        if manifest.kind == .expert {
            return try admitExpert(layout, config: config, manifest: manifest, signer: signer, bundle: bundle,
                                   trust: trust, policy: policy, log: log)
        }
        let baseFolder = layout.expert(k)
        let base = try ExpertCheckpoint.checkWeights(in: baseFolder)
        guard base.model == manifest.architecture else {
            throw ContributionError("the bundle's architecture differs from expert \(k)'s in \(baseFolder.path)")
        }
        let baseDigest = try Checksum.sha256(file: baseFolder.appendingPathComponent(ExpertCheckpoint.weightsName))
        guard manifest.baseSHA256 == baseDigest else {
            throw ContributionError("the LoRA was trained on other weights than expert \(k)'s (base SHA-256 "
                + "\(manifest.baseSHA256?.prefix(12) ?? "none")… vs \(baseDigest.prefix(12))…)")
        }
        if manifest.privateLoRA != nil {
            guard policy.remote != nil else {
                throw ContributionError("the LoRA is private (its weights are not in the bundle): admitting it needs its "
                    + "contributor's `paris serve lora` (--lora-url) and the owner's zero-knowledge keys (--zk-owner)")
            }
            guard !policy.use else {
                throw ContributionError("a private LoRA cannot be added to mixture.json (--use): the run does not hold "
                    + "its weights")
            }
        }
        let (losses, verification) = try heldOutLosses(layout, config: config, manifest: manifest, bundle: bundle,
                                                       policy: policy)
        log("held-out loss on cluster \(k) (\(losses.images) images): candidate \(fmt(losses.mean("candidate"))), "
            + "expert_\(k) \(fmt(losses.mean("expert_\(k)")))")
        var reasons: [String] = []
        if let c = losses.mean("candidate"), let b = losses.mean("expert_\(k)"), c > b * (1 + policy.maxRegression) {
            reasons.append("the held-out loss on cluster \(k) rises from \(fmt(b)) (expert_\(k)) to \(fmt(c)) with the "
                + "LoRA, more than the allowed "
                + String(format: "%.1f %%", policy.maxRegression * 100))
        }
        var report = AdmissionReport(accepted: reasons.isEmpty, reasons: reasons, kind: manifest.kind, cluster: k,
                                     signer: signer.name, losses: losses, maxRegression: policy.maxRegression,
                                     admittedAs: nil, date: ISO8601DateFormatter().string(from: Date()),
                                     verification: verification)
        guard report.accepted else { return report }
        let (staging, target) = try stage(bundle, manifest: manifest, report: &report, layout: layout, trust: trust)
        defer { try? FileManager.default.removeItem(at: staging) }
        try FileManager.default.moveItem(at: staging, to: target)
        let id = target.lastPathComponent
        if policy.use {
            var mixture = try MixtureFile.read(layout.mixtureJSON)
            mixture.loras.removeAll { $0.expert == k }
            mixture.loras.append(.init(expert: k, path: "\(folderName)/\(id)/\(ContributionBundle.filesName)"))
            try mixture.write(to: layout.mixtureJSON)
            log("mixture.json: expert \(k) now samples with this LoRA")
        }
        return report
    }

    /// Copies a verified bundle to `<run>/contributions/.<id>.partial-…/` with its admission.json (the report, which
    /// gets `admitted_as`) and verifies the copy; the caller renames it to the returned target, the last step.
    static func stage(_ bundle: URL, manifest: ContributionManifest, report: inout AdmissionReport, layout: RunLayout,
                      trust: TrustList) throws -> (staging: URL, target: URL) {
        let digest = Checksum.sha256(try Data(contentsOf: bundle.appendingPathComponent(ContributionBundle.manifestName)))
        let id = "\(manifest.kind.rawValue)-\(manifest.cluster)-\(digest.prefix(12))"
        let root = layout.root.appendingPathComponent(folderName)
        let target = root.appendingPathComponent(id)
        guard !FileManager.default.fileExists(atPath: target.path) else {
            throw ContributionError("this bundle was already admitted as \(target.path)")
        }
        report.admittedAs = "\(folderName)/\(id)"
        let staging = root.appendingPathComponent(".\(id).partial-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        do {
            try FileManager.default.copyItem(at: bundle, to: staging)
            // Re-verify the copy: what lands in the run is what was checked.
            _ = try ContributionBundle.verify(staging, trust: trust)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try AtomicFile.write([UInt8](try encoder.encode(report)), to: staging.appendingPathComponent("admission.json"))
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
        return (staging, target)
    }

    /// The flow-matching loss per t on cluster k's held-out images of the candidate (base + LoRA) and of every
    /// trained expert of the run, through `ExpertAlignment` (x0 error = t²·flow-matching loss, one t at a time).
    /// A private LoRA's candidate is the base with remote adapters (`RemoteLoRA`), whose use and proofs are returned.
    static func heldOutLosses(_ layout: RunLayout, config: RunConfig, manifest: ContributionManifest, bundle: URL,
                              policy: AdmissionPolicy) throws -> (HeldOutLosses, RemoteLoRA.Stats?) {
        let k = manifest.cluster
        guard let heldOut = HeldOut.folder(in: layout.partition(config)) else {
            throw ContributionError("the run's partition has no held-out images (\(HeldOut.folderName)/), so a "
                + "contribution cannot be scored; partition with --held-out N")
        }
        let all = try EvalData.load(partition: heldOut, numClusters: config.numExperts,
                                    limitPerCluster: policy.maxImages, seed: policy.seed)
        let rows = all.clusters.indices.filter { all.clusters[$0] == k }
        guard !rows.isEmpty else { throw ContributionError("cluster \(k) has no held-out images to score on") }
        let data = try all.subset(rows)
        let files = bundle.appendingPathComponent(ContributionBundle.filesName)
        let adapted: ParisExpert, info: ExpertCheckpoint, remote: RemoteLoRA?
        if let hidden = manifest.privateLoRA, let options = policy.remote {
            (adapted, info) = try ExpertCheckpoint.load(from: layout.expert(k))
            let lora = try LoRACheckpoint.readConfig(files.appendingPathComponent(LoRACheckpoint.configName))
            let served = try RemoteLoRA(options, commitments: hidden.commitments)
            guard served.info.baseSHA256 == manifest.baseSHA256 else {
                throw ContributionError("the contributor serves a LoRA of another base (\(served.info.baseSHA256.prefix(12))…) "
                    + "than its manifest names")
            }
            try served.attach(to: adapted, expected: hidden.wireLayers, scaling: lora.loraAlpha / Double(lora.r))
            adapted.train(false)
            remote = served
        } else {
            (adapted, info, _) = try LoRAMerge.adapted(base: layout.expert(k), lora: files)
            remote = nil
        }
        let losses = try score(adapted, objective: info.objective, layout: layout, config: config, data: data,
                               cluster: k, policy: policy)
        return (losses, remote?.counts)
    }

    /// The candidate's and every trained expert's held-out loss per t on `data`'s images of cluster k.
    static func score(_ candidate: ParisExpert, objective: Objective, layout: RunLayout, config: RunConfig,
                      data: EvalData, cluster k: Int, policy: AdmissionPolicy) throws -> HeldOutLosses {
        var members: [(String, MixtureMember)] = [("candidate", try .expert(candidate, objective: objective,
                                                                             name: "candidate"))]
        for e in 0..<config.numExperts where ExpertCheckpoint.exists(in: layout.expert(e)) {
            let (model, ckpt) = try ExpertCheckpoint.load(from: layout.expert(e))
            members.append(("expert_\(e)", try .expert(model, objective: ckpt.objective, name: "expert_\(e)")))
        }
        let mixture = try MixtureOfExperts(members: members.map(\.1), router: nil)
        var perT = [String: [Double]]()
        for t in policy.times {
            let m = try ExpertAlignment.run(mixture: mixture, data: data, times: [t], seed: policy.seed)
            for (i, (name, _)) in members.enumerated() {
                perT[name, default: []].append((m.errors[i][k] ?? .nan) / (t * t))
            }
        }
        return HeldOutLosses(times: policy.times, images: data.clusters.filter { $0 == k }.count, perT: perT)
    }

    static func fmt(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "–" }
}
