import Foundation
import ParisContributions
import ParisData
import ParisEnsemble
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisServe
import ParisTraining
import ParisZK
import Torch
import XCTest

/// A private LoRA end to end, with real processes and a real server: the owner's `paris zk setup`, the
/// contributor's commitments in the signed manifest, `paris serve lora` on loopback with zklora.py proving, and
/// admission measuring base + remote deltas and verifying the proofs. Every cheat is refused, the run unchanged.
/// The zero-knowledge venv is scripts/setup.sh's `.zk-venv`; without it these tests fail (CI installs it).
final class PrivateLoRATests: XCTestCase {
    static let layer = "layers.0.mlp.0"
    var tasks: [Task<Void, Error>] = []

    override func setUp() { Runtime.threads = 1 }
    override func tearDown() async throws { for t in tasks { t.cancel() } }

    static var clone: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func tool() throws -> ZKLoRATool {
        try ZKLoRATool(python: clone.appendingPathComponent(".zk-venv/bin/python"),
                       script: clone.appendingPathComponent("scripts/zk/zklora.py"))
    }

    struct World {
        let root: URL, run: URL, alice: ContributorKey, trust: TrustList, lora: URL, other: URL, owner: URL
    }

    /// A run with two trained experts and held-out shards; Alice's LoRA of layer 0's first MLP Linear of expert 0
    /// (64 → 256, r = 2) and a second one trained differently (the weights a cheat would use; far enough from the
    /// first that its deltas differ by more than the proofs' quantisation tolerance); the owner's keys.
    func world(ownerKeys: Bool = true) throws -> World {
        let root = try TinyRun.temporaryFolder(self)
        let run = try TinyRun.make(root.appendingPathComponent("run"), k: 2)
        for k in 0..<2 {
            try FileManager.default.copyItem(at: run.appendingPathComponent("partition/shard_\(k)"),
                                             to: run.appendingPathComponent("partition/held_out/shard_\(k)"))
            _ = try ExpertTrainer.train(run: run, expert: k)
        }
        let data = root.appendingPathComponent("alice/shard_0")
        try TinyRun.shard(0, of: 2).write(to: data)
        func train(_ name: String, seed: UInt64, learningRate: Double) throws -> URL {
            var request = LoRAJobRequest(run: run, expert: 0, data: data,
                                         lora: LoRAConfig(r: 2, loraAlpha: 4, targetModules: [Self.layer]),
                                         out: root.appendingPathComponent("alice/\(name)"))
            request.steps = 4
            request.learningRate = learningRate
            request.seed = seed
            _ = try LoRATrainer.train(request)
            return request.out!
        }
        let alice = try ContributorKey(name: "alice")
        let owner = root.appendingPathComponent("owner-keys")
        if ownerKeys {
            let shapes = try PrivateLoRA.ownerSetup(run: run, expert: 0, targets: [Self.layer], rank: 2,
                                                    tool: try Self.tool(), out: owner)
            XCTAssertEqual(shapes, [ZKLoRATool.Shape(dIn: 64, dOut: 256, rank: 2)])
        }
        return World(root: root, run: run, alice: alice, trust: TrustList(keys: [alice.publicKey]),
                     lora: try train("lora", seed: 1, learningRate: 1e-3),
                     other: try train("other", seed: 2, learningRate: 2e-2), owner: owner)
    }

    /// Commits `lora` under the owner's keys into `<root>/<name>-zk/` and packs a private bundle `<root>/<name>`.
    func packPrivately(_ w: World, _ lora: URL, name: String) throws -> (bundle: URL, circuits: URL) {
        let circuits = w.root.appendingPathComponent("\(name)-zk")
        let hidden = try PrivateLoRA.commit(lora: lora, owner: w.owner, tool: try Self.tool(), contributor: circuits)
        let bundle = w.root.appendingPathComponent(name)
        try ContributionBundle.pack(source: lora, cluster: 0, key: w.alice, description: "tiny squares",
                                    privately: hidden, out: bundle)
        return (bundle, circuits)
    }

    /// `paris serve lora` in process on a free port, serving the deltas of `lora` and proving with `circuits`.
    func serve(_ w: World, _ lora: URL, circuits: URL?) async throws -> (LoRAServer, String, Task<Void, Error>) {
        let proving = try circuits.map { LoRAServer.Proving(tool: try Self.tool(), owner: w.owner, contributor: $0) }
        let server = try LoRAServer(lora: lora, proving: proving, token: nil, port: 0)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task { try await server.run { port in continuation.yield(port); continuation.finish() } }
        tasks.append(task)
        var port = 0
        for await p in ports { port = p }
        return (server, "http://127.0.0.1:\(port)", task)
    }

    func policy(_ w: World, url: String, proofRate: Double) throws -> AdmissionPolicy {
        var policy = AdmissionPolicy()
        policy.times = [0.3, 0.7]
        policy.maxImages = 8
        policy.maxRegression = 1
        var remote = RemoteLoRA.Options(url: url)
        remote.proofRate = proofRate
        remote.zk = (try Self.tool(), w.owner)
        remote.timeoutSeconds = 60
        policy.remote = remote
        return policy
    }

    /// Admission refuses (a thrown error or a refused report naming `expected`) and leaves the run as it was.
    func assertRefused(_ w: World, _ bundle: URL, _ policy: AdmissionPolicy, _ expected: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let before = TinyRun.listing(w.run)
        do {
            let report = try Admission.admit(run: w.run, bundle: bundle, trust: w.trust, policy: policy)
            XCTFail("admitted (\(report.accepted)), expected a refusal: \(expected)", file: file, line: line)
        } catch {
            print("refused as expected: \(error)")
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
        }
        XCTAssertEqual(TinyRun.listing(w.run), before, "a refusal changed the run", file: file, line: line)
    }

    func testAnHonestPrivateLoRAIsMeasuredRemotelyAndEveryCheatIsCaught() async throws {
        let w = try world()
        let (bundle, circuits) = try packPrivately(w, w.lora, name: "private-bundle")
        // The weights never enter the bundle; the manifest publishes one commitment per adapted layer, signed.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: bundle.appendingPathComponent("files").path),
                       [LoRACheckpoint.configName])
        let (manifest, _) = try ContributionBundle.verify(bundle, trust: w.trust)
        XCTAssertEqual(manifest.privateLoRA?.layers.map(\.path), [Self.layer])

        // Honest: the held-out loss of base + remote deltas equals that of the LoRA held locally, and every query's
        // challenged row verifies.
        let (server, url, _) = try await serve(w, w.lora, circuits: circuits)
        let report = try Admission.admit(run: w.run, bundle: bundle, trust: w.trust, policy: try policy(w, url: url, proofRate: 1))
        XCTAssertTrue(report.accepted, "\(report.reasons)")
        let v = try XCTUnwrap(report.verification)
        print("honest private LoRA: \(v)")
        XCTAssertGreaterThan(v.deltas, 0)
        XCTAssertEqual(v.proofs, v.deltas, "proof rate 1 challenges every query")
        XCTAssertEqual(server.counts.proofs, v.proofs)
        let local = try ContributionBundle.pack(source: w.lora, cluster: 0, key: w.alice, description: "same, public",
                                                out: w.root.appendingPathComponent("public-bundle"))
        XCTAssertEqual(local.kind, .lora)
        var open = try policy(w, url: url, proofRate: 0)
        open.remote = nil
        let reference = try Admission.admit(run: w.run, bundle: w.root.appendingPathComponent("public-bundle"),
                                            trust: w.trust, policy: open)
        for (a, b) in zip(try XCTUnwrap(report.losses.perT["candidate"]), try XCTUnwrap(reference.losses.perT["candidate"])) {
            XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, b), "remote deltas give another held-out loss than local weights")
        }
        // The same LoRA's bundle was admitted once; a second admission is refused by name.
        try assertRefused(w, bundle, try policy(w, url: url, proofRate: 0), "already admitted")

        // A contributor that answers with other weights than it committed to, proving with the committed circuit:
        // the proved delta differs from the one returned.
        let (cheat1, _) = try packPrivately(w, w.lora, name: "cheat-1")
        let (_, url1, _) = try await serve(w, w.other, circuits: circuits)
        try assertRefused(w, cheat1, try policy(w, url: url1, proofRate: 1), "differs from the proved one")

        // A proof made with other weights than the published commitment: it does not verify once swapped.
        let (cheat2, _) = try packPrivately(w, w.lora, name: "cheat-2")
        let otherCircuits = w.root.appendingPathComponent("other-zk")
        _ = try PrivateLoRA.commit(lora: w.other, owner: w.owner, tool: try Self.tool(), contributor: otherCircuits)
        let (_, url2, _) = try await serve(w, w.other, circuits: otherCircuits)
        try assertRefused(w, cheat2, try policy(w, url: url2, proofRate: 1), "does not verify")

        // A contributor that stops answering mid-check: named as such, the run unchanged.
        let (cheat3, _) = try packPrivately(w, w.lora, name: "cheat-3")
        let (quitter, url3, task) = try await serve(w, w.lora, circuits: nil)
        let watcher = Thread {
            while quitter.counts.deltas < 1 { usleep(1000) }
            task.cancel()
        }
        watcher.start()
        var many = try policy(w, url: url3, proofRate: 0)
        many.times = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        many.remote?.timeoutSeconds = 5
        try assertRefused(w, cheat3, many, "stopped answering")
    }

    /// The same protocol through the commands, each party a separate `paris` process: `zk setup`, `keys new`,
    /// `contribute pack --private`, `serve lora`, `admit --lora-url`.
    func testTheCommandsRunThePrivateProtocol() async throws {
        let paris = try parisBinary(self)
        let w = try world(ownerKeys: false)
        func run(_ args: [String]) throws -> String {
            let (status, output) = try runProcess(paris, args)
            XCTAssertEqual(status, 0, "paris \(args.joined(separator: " ")): \(output)")
            return output
        }
        let p = { (name: String) in w.root.appendingPathComponent(name).path }
        _ = try run(["zk", "setup", "--run", w.run.path, "--expert", "0", "--targets", Self.layer, "--rank", "2",
                     "--out", p("owner-keys")])
        _ = try run(["keys", "new", "--name", "bob", "--out", p("keys")])
        _ = try run(["contribute", "pack", "--key", p("keys/bob.key"), "--source", w.lora.path, "--cluster", "0",
                     "--description", "tiny squares", "--out", p("bundle"), "--private", "--zk-owner", p("owner-keys"),
                     "--zk-out", p("bob-zk")])
        let (server, base) = try await startServer(paris, ["serve", "lora", "--lora", w.lora.path, "--zk-owner",
                                                           p("owner-keys"), "--zk", p("bob-zk"), "--port", "0"],
                                                   log: w.root.appendingPathComponent("serve-lora.log"))
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        let output = try run(["admit", "--run", w.run.path, p("bundle"), "--trust", p("keys/bob.pub"), "--lora-url", base,
                              "--zk-owner", p("owner-keys"), "--proof-rate", "1", "--max-regression", "1"])
        XCTAssertTrue(output.contains("proofs verified") && output.contains("admitted as"), output)
    }

    /// `paris serve lora`'s bad input: 4xx naming what is wrong, and the next good request is still answered, with
    /// the delta B·A·x of the LoRA's own weights.
    func testTheLoRAServerRefusesBadRequestsAndKeepsServing() async throws {
        let w = try world(ownerKeys: false)
        let server = try LoRAServer(lora: w.lora, proving: nil, token: "s3cret", port: 0)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        tasks.append(Task { try await server.run { port in continuation.yield(port); continuation.finish() } })
        var port = 0
        for await p in ports { port = p }
        let base = URL(string: "http://127.0.0.1:\(port)")!
        let anonymous = HTTPExchange(base: base, token: nil, timeoutSeconds: 10)
        let owner = HTTPExchange(base: base, token: "s3cret", timeoutSeconds: 10)
        XCTAssertEqual(try anonymous.call("GET", "/v1/info", body: nil).status, 401)
        XCTAssertEqual(try HTTPExchange(base: base, token: "guess", timeoutSeconds: 10).call("GET", "/v1/info", body: nil).status, 401)
        let info = try JSONDecoder().decode(LoRAWire.Info.self, from: Data(try owner.call("GET", "/v1/info", body: nil).body))
        XCTAssertEqual(info.layers, [LoRAWire.Layer(path: Self.layer, dIn: 64, dOut: 256, rank: 2)])
        XCTAssertNil(info.proofRows)
        Runtime.manualSeed(3)
        let x = try Tensor.randn([5, 64])
        let good = try LoRAWire.encode(LoRAWire.x, x)
        func refused(_ query: [String: String], _ body: [UInt8], _ path: String = "/v1/delta") throws -> (Int, String) {
            let (status, answer) = try owner.call("POST", path, query: query, body: body)
            return (status, String(decoding: answer, as: UTF8.self))
        }
        XCTAssertEqual(try refused([:], good).0, 400)
        let unknown = try refused(["layer": "layers.9.mlp.0"], good)
        XCTAssertEqual(unknown.0, 404)
        XCTAssertTrue(unknown.1.contains("layers.9.mlp.0"), unknown.1)
        let narrow = try refused(["layer": Self.layer], try LoRAWire.encode(LoRAWire.x, try Tensor.zeros([5, 63])))
        XCTAssertEqual(narrow.0, 400)
        XCTAssertTrue(narrow.1.contains("[N, 64]"), narrow.1)
        XCTAssertEqual(try refused(["layer": Self.layer], Array("not safetensors".utf8)).0, 400)
        XCTAssertEqual(try refused(["layer": Self.layer], try LoRAWire.encode("y", x)).0, 400)
        XCTAssertEqual(try refused(["layer": Self.layer], good, "/v1/prove").0, 404, "no proofs without --zk")
        // Still serving, and the answer is B·A·x for the LoRA's A and B.
        let (status, body) = try owner.call("POST", "/v1/delta", query: ["layer": Self.layer], body: good)
        XCTAssertEqual(status, 200)
        let delta = try LoRAWire.decode(body, LoRAWire.delta, columns: 256)
        let weights = try SafeTensors.load(w.lora.appendingPathComponent(LoRACheckpoint.weightsName)).tensors
        let a = try XCTUnwrap(weights[LoRA.keyPrefix + Self.layer + ".lora_A.weight"])
        let b = try XCTUnwrap(weights[LoRA.keyPrefix + Self.layer + ".lora_B.weight"])
        let expected = try x.matmul(a.transpose(0, 1)).matmul(b.transpose(0, 1))
        XCTAssertLessThan(try (delta - expected).abs().amax().item(), 1e-5)
        XCTAssertEqual(server.counts.deltas, 1)
        XCTAssertEqual(server.counts.refused, 2)
    }

    /// zklora.py's own checks, as separate processes: the honest proof verifies; other weights, a changed delta,
    /// another query and a changed proof byte are each refused.
    func testTheZKModuleRefusesEveryForgery() throws {
        let tool = try Self.tool()
        let p = Process()
        p.executableURL = tool.python
        p.arguments = [Self.clone.appendingPathComponent("scripts/zk/test_zklora.py").path, "--d", "32", "--rank", "2"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
    }
}
