import Foundation
import ParisContributions
import ParisData
import ParisDiffusion
import ParisEnsemble
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTraining
import Torch
import XCTest

/// Admitting a contributed expert as a new cluster: the contributor trains it on its own data and signs it; the
/// owner scores it on the cluster's held-out images, retrains the router for K + 1 and checks that it selects the
/// new expert there, then commits the addition; the mixture samples with it. Refusals leave the run as it was.
final class ExpertAdmissionTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    struct World { let root: URL, run: URL, data: URL, alice: ContributorKey, trust: TrustList, expert: URL }

    /// The owner's K = 2 colour run, trained; Alice's yellow squares (a one-cluster partition) and her expert,
    /// trained on them in a run of her own.
    func world() throws -> World {
        let root = try TinyRun.temporaryFolder(self)
        let run = try ColourPartitions.run(in: root, steps: 40, routerSteps: 60)
        for k in 0..<2 { _ = try ExpertTrainer.train(run: run, expert: k) }
        _ = try RouterTrainer.train(run: run, options: .init())
        let data = try ColourPartitions.newCluster(in: root)
        let mine = root.appendingPathComponent("alice-run")
        try FileManager.default.createDirectory(at: mine, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: data, to: mine.appendingPathComponent("partition"))
        try RunConfig(name: "alice", dataset: "yellow", numExperts: 1, experts: [TinyRun.job(seed: 77, steps: 60)],
                      router: TrainJobConfig(model: "router-T/4")).write(to: mine.appendingPathComponent("run.json"))
        _ = try ExpertTrainer.train(run: mine, expert: 0)
        let alice = try ContributorKey(name: "alice")
        return World(root: root, run: run, data: data, alice: alice, trust: TrustList(keys: [alice.publicKey]),
                     expert: mine.appendingPathComponent("expert_0"))
    }

    func pack(_ w: World, source: URL? = nil, cluster: Int = 2, name: String) throws -> URL {
        let out = w.root.appendingPathComponent(name)
        try ContributionBundle.pack(source: source ?? w.expert, cluster: cluster, key: w.alice,
                                    description: "yellow squares", data: w.data.appendingPathComponent("shard_0"), out: out)
        return out
    }

    func policy(_ w: World) -> AdmissionPolicy {
        var p = AdmissionPolicy()
        p.data = w.data
        return p
    }

    func snapshot(_ run: URL) throws -> [String: String] { try TinyRun.fileHashes(run) }

    func assertRefused(_ w: World, _ bundle: URL, _ policy: AdmissionPolicy, _ expected: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try snapshot(w.run)
        do {
            let report = try Admission.admit(run: w.run, bundle: bundle, trust: w.trust, policy: policy)
            XCTAssertFalse(report.accepted, "admitted, expected a refusal: \(expected)", file: file, line: line)
            XCTAssertTrue(report.reasons.joined().contains(expected), "\(report.reasons)", file: file, line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
        }
        XCTAssertEqual(try snapshot(w.run), before, "a refusal changed the run", file: file, line: line)
    }

    func testAContributedExpertIsAdmittedWithARetrainedRouterThatSelectsIt() throws {
        let w = try world()
        let bundle = try pack(w, name: "bundle")

        // Refused, each with the run unchanged: no data for the router; the wrong cluster; an untrained expert
        // (worse on the new cluster than the run's experts); a router that cannot reach an impossible share.
        try assertRefused(w, bundle, AdmissionPolicy(), "needs the cluster's data")
        try assertRefused(w, try pack(w, cluster: 1, name: "wrong-cluster"), policy(w), "pack it with --cluster 2")
        let untrained = w.root.appendingPathComponent("untrained")
        let checkpoint = try ExpertCheckpoint.read(from: w.expert)
        try checkpoint.write(weights: try ParisExpert(checkpoint.model).stateDict(), to: untrained)
        try assertRefused(w, try pack(w, source: untrained, name: "untrained-bundle"), policy(w), "worse than expert_")
        var strict = policy(w)
        strict.minRouterShare = 1.01
        try assertRefused(w, bundle, strict, "the retrained router gives the new expert")

        let before = try (0..<2).map { try Checksum.sha256(file: RunLayout(w.run).expert($0)
            .appendingPathComponent(ExpertCheckpoint.weightsName)) }
        let report = try Admission.admit(run: w.run, bundle: bundle, trust: w.trust, policy: policy(w))
        XCTAssertTrue(report.accepted, "\(report.reasons)")
        let layout = RunLayout(w.run)
        let config = try layout.config()
        XCTAssertEqual(config.numExperts, 3)
        XCTAssertEqual(try (0..<2).map { try Checksum.sha256(file: layout.expert($0)
            .appendingPathComponent(ExpertCheckpoint.weightsName)) }, before)
        // The admitted expert is the contributor's weights, recorded as cluster 2 and finished; the router selects it.
        try TinyRun.assertIdentical(layout.expert(2).appendingPathComponent(ExpertCheckpoint.weightsName),
                                    w.expert.appendingPathComponent(ExpertCheckpoint.weightsName))
        XCTAssertEqual(try ExpertCheckpoint.read(from: layout.expert(2)).cluster, 2)
        XCTAssertEqual(try JobStatusFile.read(from: layout.expert(2))?.state, .finished)
        XCTAssertEqual(try RouterCheckpoint.checkWeights(in: layout.router).numExperts, 3)
        let router = try XCTUnwrap(report.router)
        print("admitted expert 2: losses \(report.losses.perT), router \(router.map { ($0.t, $0.accuracy) })")
        XCTAssertTrue(router.allSatisfy { $0.accuracy >= 0.5 }, "\(router)")
        let admitted = try XCTUnwrap(report.admittedAs)
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.run.appendingPathComponent(admitted)
            .appendingPathComponent("admission.json").path))
        // The same bundle again: the run now has 3 experts, so it is no longer a new cluster.
        try assertRefused(w, bundle, policy(w), "pack it with --cluster 3")

        // The mixture samples with all three; a yellow prompt's top-1 routing goes to the new expert.
        var job = SampleJob(run: layout, name: "grown", prompts: ["a yellow square"], imagesPerPrompt: 2, strategy: .full,
                            sampler: try SamplerConfig(steps: 3, guidanceScale: 1), seed: 3, device: .cpu)
        job.strict = true
        let result = try job.run(encode: ColourPartitions.encoder)
        XCTAssertEqual(result.images.count, 2)
    }
}
