import Foundation
import ParisContributions
import ParisData
import ParisEnsemble
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// Keys, signed bundles and admission on tiny runs: an honest LoRA is admitted; every cheat is refused with its
/// reason and leaves the run byte for byte as it was.
final class AdmissionTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    struct Setup {
        let root: URL, run: URL, alice: ContributorKey, trust: TrustList, lora: URL, data: URL
    }

    /// A run with both experts trained and held-out shards, Alice's key (trusted), and her LoRA of expert 0.
    func setup(model: String = "paris-T/4") throws -> Setup {
        let root = try TinyRun.temporaryFolder(self)
        let run = try TinyRun.make(root.appendingPathComponent("run"), k: 2) { c in
            for i in c.experts.indices { c.experts[i].model = model }
        }
        for k in 0..<2 {
            try FileManager.default.copyItem(at: run.appendingPathComponent("partition/shard_\(k)"),
                                             to: run.appendingPathComponent("partition/held_out/shard_\(k)"))
            _ = try ExpertTrainer.train(run: run, expert: k)
        }
        let data = root.appendingPathComponent("alice/shard_0")
        try TinyRun.shard(0, of: 2).write(to: data)
        var request = LoRAJobRequest(run: run, expert: 0, data: data,
                                     lora: LoRAConfig(r: 2, loraAlpha: 4, targetModules: LoRAConfig.expertTargets),
                                     out: root.appendingPathComponent("alice/lora"))
        request.steps = 4
        request.learningRate = 1e-4
        _ = try LoRATrainer.train(request)
        let alice = try ContributorKey(name: "alice")
        return Setup(root: root, run: run, alice: alice, trust: TrustList(keys: [alice.publicKey]),
                     lora: root.appendingPathComponent("alice/lora"), data: data)
    }

    func pack(_ s: Setup, cluster: Int = 0, key: ContributorKey? = nil, source: URL? = nil,
              name: String = "bundle") throws -> URL {
        let out = s.root.appendingPathComponent(name)
        try ContributionBundle.pack(source: source ?? s.lora, cluster: cluster, key: key ?? s.alice,
                                    description: "tiny squares", data: s.data, out: out)
        return out
    }

    /// Every file under the run with its SHA-256: what "unchanged" means.
    func snapshot(_ run: URL) throws -> [String: String] { try TinyRun.fileHashes(run) }

    func assertRefused(_ s: Setup, _ bundle: URL, trust: TrustList? = nil, policy: AdmissionPolicy = .init(),
                       _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try snapshot(s.run)
        do {
            let report = try Admission.admit(run: s.run, bundle: bundle, trust: trust ?? s.trust, policy: policy)
            XCTAssertFalse(report.accepted, "admitted, expected a refusal: \(expected)", file: file, line: line)
            XCTAssertTrue(report.reasons.joined().contains(expected), "\(report.reasons)", file: file, line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
        }
        XCTAssertEqual(try snapshot(s.run), before, "a refusal changed the run", file: file, line: line)
    }

    func testKeysRoundTripAndAreNeverOverwritten() throws {
        let folder = try TinyRun.temporaryFolder(self)
        let key = try ContributorKey(name: "bob")
        let (priv, pub) = try key.write(to: folder)
        let mode = try FileManager.default.attributesOfItem(atPath: priv.path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        let read = try ContributorKey.read(priv)
        XCTAssertEqual(read.publicKey, try TrustedKey.read(pub))
        let message = Data("hello".utf8)
        XCTAssertTrue(try TrustedKey.read(pub).verifies(try read.sign(message), of: message))
        XCTAssertFalse(try TrustedKey.read(pub).verifies(try read.sign(message), of: Data("hellp".utf8)))
        XCTAssertThrowsError(try key.write(to: folder)) { XCTAssertTrue("\($0)".contains("never overwritten")) }
        XCTAssertThrowsError(try ContributorKey(name: "../x"))
        XCTAssertEqual(try TrustList.read(pub).keys, [key.publicKey])
    }

    func testAnHonestLoRAIsAdmittedOnce() throws {
        let s = try setup()
        let bundle = try pack(s)
        let expert0 = try Checksum.sha256(file: s.run.appendingPathComponent("expert_0/diffusion_pytorch_model.safetensors"))
        var policy = AdmissionPolicy()
        policy.maxRegression = 1  // 4 steps at a small learning rate: within noise of the base either way
        let report = try Admission.admit(run: s.run, bundle: bundle, trust: s.trust, policy: policy)
        XCTAssertTrue(report.accepted, "\(report.reasons)")
        XCTAssertEqual(report.signer, "alice")
        XCTAssertEqual(report.losses.images, TinyRun.perShard)
        XCTAssertEqual(Set(report.losses.perT.keys), ["candidate", "expert_0", "expert_1"])
        let c = try XCTUnwrap(report.losses.mean("candidate")), b = try XCTUnwrap(report.losses.mean("expert_0"))
        XCTAssertLessThan(abs(c - b) / b, 0.2, "a barely trained LoRA stays close to its base")
        let admitted = s.run.appendingPathComponent(try XCTUnwrap(report.admittedAs))
        for f in ["manifest.json", "manifest.sig", "files/adapter_model.safetensors", "files/adapter_config.json",
                  "admission.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: admitted.appendingPathComponent(f).path), f)
        }
        XCTAssertEqual(try Checksum.sha256(file: s.run.appendingPathComponent("expert_0/diffusion_pytorch_model.safetensors")),
                       expert0, "admission never touches the experts")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: s.run.appendingPathComponent("contributions").path),
                       [admitted.lastPathComponent], "no staging folder left behind")
        try assertRefused(s, bundle, policy: policy, "already admitted")
    }

    func testWithUseTheMixtureSamplesWithTheAdmittedLoRA() throws {
        let s = try setup()
        var policy = AdmissionPolicy()
        policy.maxRegression = 1
        policy.use = true
        let report = try Admission.admit(run: s.run, bundle: try pack(s), trust: s.trust, policy: policy)
        let layout = RunLayout(s.run)
        let file = try MixtureFile.read(layout.mixtureJSON)
        XCTAssertEqual(file.loras, [.init(expert: 0, path: try XCTUnwrap(report.admittedAs) + "/files")])
        var lines: [String] = []
        let mixture = try RunMixture.load(run: layout, requireRouter: false) { lines.append($0) }
        XCTAssertTrue(lines.contains { $0.contains("expert 0: expert_0 + LoRA") }, "\(lines)")
        // Slot 0 is base + adapters, slot 1 the plain expert.
        let (adapted, _, _) = try LoRAMerge.adapted(base: layout.expert(0), lora: s.lora)
        let (plain, _) = try ExpertCheckpoint.load(from: layout.expert(0))
        Runtime.manualSeed(5)
        let x = try Tensor.randn([2, 3, 8, 8]), t = try Tensor([300.0, 700.0] as [Float])
        let text = try TextCondition(tokens: Tensor.randn([2, TinyRun.textLength, TinyRun.textDim]),
                                     mask: Tensor.ones([2, TinyRun.textLength], dtype: .bool))
        let member = try XCTUnwrap(mixture.mixture.members[0])
        let v = try member.guided(x, t, text, 1)
        try assertClose(v, try adapted(x: x, t: t, text: text.tokens, textMask: text.mask), rtol: 1e-5, atol: 1e-6,
                        "slot 0 = base + LoRA")
        XCTAssertGreaterThan(try (v - plain(x: x, t: t, text: text.tokens, textMask: text.mask)).abs().amax().item(), 0)
        // A LoRA entry that points outside the run, or shares a slot with a remote, is refused.
        try MixtureFile(loras: [.init(expert: 0, path: "../elsewhere")]).write(to: layout.mixtureJSON)
        XCTAssertThrowsError(try RunMixture.load(run: layout, requireRouter: false)) {
            XCTAssertTrue("\($0)".contains("inside the run folder"), "\($0)")
        }
        try MixtureFile(remote: [.init(expert: 0, url: "http://127.0.0.1:9")], loras: file.loras).write(to: layout.mixtureJSON)
        XCTAssertThrowsError(try RunMixture.load(run: layout, requireRouter: false)) {
            XCTAssertTrue("\($0)".contains("both a remote and a LoRA"), "\($0)")
        }
    }

    func testTamperingAndUntrustedKeysAreRefused() throws {
        let s = try setup()
        let fm = FileManager.default
        // A changed file.
        let file = try pack(s, name: "file")
        let weights = file.appendingPathComponent("files/adapter_model.safetensors")
        var bytes = try Data(contentsOf: weights)
        bytes[bytes.count - 1] ^= 0x01
        try bytes.write(to: weights)
        try assertRefused(s, file, "SHA-256 differs from the signed manifest")
        // A changed manifest.
        let manifest = try pack(s, name: "manifest")
        let url = manifest.appendingPathComponent("manifest.json")
        try String(decoding: try Data(contentsOf: url), as: UTF8.self)
            .replacingOccurrences(of: "tiny squares", with: "huge squares").write(to: url, atomically: true, encoding: .utf8)
        try assertRefused(s, manifest, "signature does not match")
        // A file added after signing.
        let extra = try pack(s, name: "extra")
        try Data("x".utf8).write(to: extra.appendingPathComponent("files/notes.txt"))
        try assertRefused(s, extra, "files/notes.txt is not in the signed manifest")
        // Unsigned.
        let unsigned = try pack(s, name: "unsigned")
        try fm.removeItem(at: unsigned.appendingPathComponent("manifest.sig"))
        try assertRefused(s, unsigned, "unsigned")
        // Signed by a key nobody trusts.
        let mallory = try ContributorKey(name: "mallory")
        try assertRefused(s, try pack(s, key: mallory, name: "mallory"), "not in the trust list")
        // Naming Alice's key but signed with Mallory's.
        let forged = try pack(s, name: "forged")
        try AtomicFile.write([UInt8](try mallory.sign(Data(contentsOf: forged.appendingPathComponent("manifest.json")))
            .base64EncodedString().utf8), to: forged.appendingPathComponent("manifest.sig"))
        try assertRefused(s, forged, "signature does not match")
    }

    func testIncompatibleAndHarmfulContributionsAreRefused() throws {
        let s = try setup()
        // A LoRA of expert 0 claimed for expert 1: other base weights.
        try assertRefused(s, try pack(s, cluster: 1, name: "other-base"), "trained on other weights")
        // A LoRA of another architecture (a run of paris-S/2 experts).
        let other = try setup(model: "paris-S/2")
        try assertRefused(s, try pack(other, name: "other-arch").self, trust: other.trust, "architecture differs")
        // A cluster the run does not have.
        try assertRefused(s, try pack(s, cluster: 5, name: "cluster-5"), "the run has 2 experts")
        // Weights that hurt: A and B random N(0, 1), a large change of every adapted layer.
        let bad = s.root.appendingPathComponent("bad-lora")
        try FileManager.default.copyItem(at: s.lora, to: bad)
        let url = bad.appendingPathComponent(LoRACheckpoint.weightsName)
        let file = try SafeTensors.load(url)
        var tensors: [String: Tensor] = [:]
        Runtime.manualSeed(7)
        for (name, t) in file.tensors.sorted(by: { $0.key < $1.key }) { tensors[name] = try Tensor.randn(t.shape) }
        try SafeTensors.save(tensors, to: url, metadata: file.metadata)
        try assertRefused(s, try pack(s, source: bad, name: "harmful"), "held-out loss on cluster 0 rises")
        // A full expert is a new cluster: without that cluster's data it cannot be scored or routed to
        // (ExpertAdmissionTests admits one).
        try assertRefused(s, try pack(s, source: s.run.appendingPathComponent("expert_1"), name: "expert"),
                          "needs the cluster's data")
    }
}
