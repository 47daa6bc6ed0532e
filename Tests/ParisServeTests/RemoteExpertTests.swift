import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisServe
import ParisTestSupport
import Torch
import XCTest

/// Issue #13, remote experts: one expert served by `paris serve expert` joins the mixture over loopback. Its images
/// equal the local expert's; a wrong token is refused before any work; malformed bodies are 400s naming the tensor;
/// and a remote that dies mid-request is dropped for the steps it misses while the image still comes back.
final class RemoteExpertTests: XCTestCase {
    var run: RunLayout!
    var tasks: [Task<Void, any Error>] = []

    override func setUp() async throws {
        Runtime.threads = 1
        run = try TinyRun.withCheckpoints(try TinyRun.temporaryFolder(self))
    }

    override func tearDown() async throws { for t in tasks { t.cancel() } }

    /// An in-process `ExpertServer` for expert k on a free port → its base URL.
    func serveExpert(_ k: Int, token: String? = nil) async throws -> (ExpertServer, String) {
        let server = try ExpertServer(run: run, expert: k, device: .cpu, token: token, port: 0)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        tasks.append(Task { try await server.run { port in continuation.yield(port); continuation.finish() } })
        var port = 0
        for await p in ports { port = p }
        return (server, "http://127.0.0.1:\(port)")
    }

    /// `paris sample`'s images (pixels) for two prompts with expert 1 local, or remote at `remote`.
    func sample(_ name: String, remote: RemoteExpertConfig? = nil) throws -> [[UInt8]] {
        var job = SampleJob(run: run, name: name, prompts: ["a cat", "a ship"], imagesPerPrompt: 2, strategy: .full,
                            sampler: try SamplerConfig(steps: 3, guidanceScale: 3), seed: 11, device: .cpu)
        job.remotes = remote.map { [$0] } ?? []
        let result = try job.run(encode: TinyRun.encoder)
        return try result.images.map { try Image(contentsOf: $0).pixels }
    }

    func post(_ url: String, _ body: [UInt8], token: String? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: URL(string: url + "/v1/velocity")!)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        return ((response as! HTTPURLResponse).statusCode, json)
    }

    func testARemoteExpertGivesTheImagesOfTheLocalOne() async throws {
        let (server, url) = try await serveExpert(1)
        let local = try sample("local")
        let remote = try sample("remote", remote: RemoteExpertConfig(expert: 1, url: url))
        XCTAssertGreaterThan(server.counts.calls, 0, "the remote expert was not called")
        XCTAssertEqual(remote, local, "the remote expert's images differ from the local expert's")
        // The comparison can fail: expert 0 served in slot 1 gives other images.
        let (_, wrong) = try await serveExpert(0)
        XCTAssertNotEqual(try sample("wrong", remote: RemoteExpertConfig(expert: 1, url: wrong)), local)
    }

    func testTokensAndMalformedBodiesAreRefusedBeforeAnyWork() async throws {
        let (server, url) = try await serveExpert(1, token: "s3cret")
        let shape = server.info.shape
        let text = try TextCondition(tokens: Tensor.randn([1, shape.textLength, shape.textDim]), mask: nil)
        let good = try VelocityWire.encode(x: Tensor.randn([1, shape.channels, shape.imageSize, shape.imageSize]),
                                           t: Tensor([500.0]), text: text, guidance: 2)
        var (status, body) = try await post(url, good)
        XCTAssertEqual(status, 401)
        XCTAssertEqual(body["field"] as? String, "Authorization")
        (status, _) = try await post(url, good, token: "guess")
        XCTAssertEqual(status, 401)
        XCTAssertEqual(server.counts.calls, 0)
        XCTAssertEqual(server.counts.refused, 2)
        (status, _) = try await post(url, good, token: "s3cret")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(server.counts.calls, 1)
        // Malformed bodies: 400 naming the tensor (or the body), and the server goes on.
        let wrongShape = try SafeTensors.serialize(["x": Tensor.randn([1, 3, 4, 4]), "t": Tensor([1.0]).to(dtype: .float32),
                                                    "guidance_scale": Tensor([1.0])])
        (status, body) = try await post(url, wrongShape, token: "s3cret")
        XCTAssertEqual(status, 400)
        XCTAssertEqual(body["field"] as? String, "x")
        (status, body) = try await post(url, Array(good.prefix(good.count / 2)), token: "s3cret")
        XCTAssertEqual(status, 400)
        XCTAssertTrue((body["error"] as? String ?? "").contains("request body"), "\(body)")
        (status, _) = try await post(url, good, token: "s3cret")
        XCTAssertEqual(status, 200)
        (status, _) = try await post(url, [UInt8](repeating: 0, count: server.maxBodyBytes + 1), token: "s3cret")
        XCTAssertEqual(status, 413)
        // The client side: a wrong token is a clear failure of that expert, not a crash.
        let client = try RemoteExpert(RemoteExpertConfig(expert: 1, url: url))
        XCTAssertThrowsError(try client.velocity(Tensor.randn([1, 3, 8, 8]), Tensor([1.0]), nil, 1)) {
            XCTAssertTrue("\($0)".contains("401"), "\($0)")
        }
    }

    /// A loopback listener that answers every request with `reply` (nil: reads it and never answers) → its URL.
    func fakeExpert(reply: String?) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw XCTSkip("cannot listen on loopback") }
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread {
            var held: [Int32] = []
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                _ = read(c, &buffer, buffer.count)
                if let reply { _ = reply.withCString { write(c, $0, strlen($0)) }; close(c) } else { held.append(c) }
            }
        }
        thread.start()
        addTeardownBlock { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
        return "http://127.0.0.1:\(port)"
    }

    /// A remote that is too slow (no answer within its timeout) or answers garbage is a `RemoteExpertError` of
    /// that expert, which the mixture drops for the step (`MixtureTests.testAFailingRemoteMemberIsDroppedForTheStep`).
    func testSlowAndGarbageAnswersAreFailuresOfThatExpert() throws {
        let x = try Tensor.randn([1, 3, 8, 8]), t = try Tensor([500.0]).to(dtype: .float32)
        let slow = try RemoteExpert(RemoteExpertConfig(expert: 1, url: try fakeExpert(reply: nil), timeoutSeconds: 1,
                                                       retries: 0))
        let began = Date()
        XCTAssertThrowsError(try slow.velocity(x, t, nil, 1)) { error in
            XCTAssertTrue(error is RemoteExpertError, "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(began), 10, "the timeout was not kept")
        let junk = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        let garbage = try RemoteExpert(RemoteExpertConfig(expert: 1, url: try fakeExpert(reply: junk), retries: 1))
        XCTAssertThrowsError(try garbage.velocity(x, t, nil, 1)) { error in
            XCTAssertTrue(error is RemoteExpertError && "\(error)".contains("a bad answer"), "\(error)")
            XCTAssertTrue("\(error)".contains("response body"), "\(error)")
        }
    }

    /// The real processes: `paris serve expert` as a process gives the local images; killed while a served mixture
    /// samples, it is dropped for the rest of the steps and the image still comes back, with the drop in `info`,
    /// the trace, `/v1/experts` and `/metrics`.
    func testAKilledRemoteExpertIsDroppedAndTheImageStillComes() async throws {
        let paris = try parisBinary(self)
        let root = try TinyRun.temporaryFolder(self, "process")
        let (process, base) = try await startServer(paris, ["serve", "expert", "--run", run.root.path, "--expert", "1",
                                                            "--port", "0", "--device", "cpu"],
                                                    log: root.appendingPathComponent("expert.log"))
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let remote = RemoteExpertConfig(expert: 1, url: base, timeoutSeconds: 5, retries: 0)
        XCTAssertEqual(try sample("process", remote: remote), try sample("local"), "the process's images differ")

        // A mixture server with expert 1 remote; kill the remote while a long job samples.
        let engine = try MixtureEngine(run: run, device: .cpu, encode: TinyRun.encoder, remotes: [remote])
        let experts = engine.experts()
        XCTAssertEqual(experts.map { $0["local"] as? Bool }, [true, false])
        let server = try ParisServer(engine: engine, options: ServeOptions(host: "127.0.0.1", port: 0))
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        tasks.append(Task { try await server.run { port in continuation.yield(port); continuation.finish() } })
        var port = 0
        for await p in ports { port = p }
        let live = LiveClient(port: port)
        let created = try await live.post("/v1/jobs", ["prompt": "a cat", "steps": 200, "batch_size": 4,
                                                       "strategy": "full", "seed": 3]).json()
        let id = try XCTUnwrap(created["id"] as? String)
        // Kill it once the job has made a few steps with it.
        while true {
            let snapshot = try await live.get("/v1/jobs/\(id)").json()
            if ((snapshot["progress"] as? [String: Any])?["step"] as? Int ?? 0) >= 5 { break }
            XCTAssertNotEqual(snapshot["state"] as? String, "done", "the job ended before the kill")
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        kill(process.processIdentifier, SIGKILL)
        let job = try await live.waitForJob(id)
        XCTAssertEqual(job["state"] as? String, "done", "\(job["error"] ?? "")")
        XCTAssertEqual(pngs(job).count, 4)
        let trace = try XCTUnwrap(job["trace"] as? [String: Any])
        let steps = try XCTUnwrap(trace["steps"] as? [[String: Any]])
        let droppedSteps = steps.filter { ($0["dropped"] as? [[String: Any]])?.first?["expert"] as? Int == 1 }
        XCTAssertGreaterThan(droppedSteps.count, 0, "no step records the drop")
        XCTAssertLessThan(droppedSteps.count, steps.count, "the remote was dropped before it was killed: "
            + "\(droppedSteps.first?["dropped"] ?? "")")
        for step in droppedSteps {  // its weight went to expert 0
            let weights = try XCTUnwrap(step["weights"] as? [[Double]])
            XCTAssertEqual(weights.map { $0[1] }, [0, 0, 0, 0])
            XCTAssertEqual(weights.map { $0[0] }, [1, 1, 1, 1])
        }
        let answer = try await live.post("/sdapi/v1/txt2img", ["prompt": "a dog", "steps": 2]).json()
        let infoText = try XCTUnwrap(answer["info"] as? String, "\(answer)")
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(infoText.utf8)) as? [String: Any])
        let notes = info["notes"] as? [String] ?? []
        XCTAssertTrue(notes.contains { $0.contains("remote expert 1 was dropped at 2 of 2") }, "\(notes)")
        XCTAssertEqual((info["routing"] as? [String: Any])?["dropped_experts"] as? [Int], [1])
        let metrics = try await live.get("/metrics").text
        XCTAssertTrue(metrics.range(of: #"paris_expert_failures_total\{expert="1"\} [1-9]"#, options: .regularExpression) != nil,
                      metrics)
        let listed = try await live.get("/v1/experts").json()["experts"] as? [[String: Any]] ?? []
        XCTAssertEqual(listed.last?["health"] as? String, "failing", "\(listed)")
    }
}

/// A URLSession client of a server on a loopback port (LiveServer's, for a server started here).
struct LiveClient {
    let port: Int

    func call(_ method: String, _ path: String, body: Data? = nil) async throws -> LiveServer.Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 120
        if let body { request.httpBody = body }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return LiveServer.Answer(status: http.statusCode, headers: [:], body: data)
    }

    func post(_ path: String, _ object: [String: Any]) async throws -> LiveServer.Answer {
        try await call("POST", path, body: JSONSerialization.data(withJSONObject: object))
    }

    func get(_ path: String) async throws -> LiveServer.Answer { try await call("GET", path) }

    func waitForJob(_ id: String, until: (String) -> Bool = { ["done", "failed", "cancelled"].contains($0) })
        async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(120)
        while true {
            let job = try await get("/v1/jobs/\(id)").json()
            if let state = job["state"] as? String, until(state) { return job }
            guard Date() < deadline else { XCTFail("job \(id) is still \(job["state"] ?? "?")"); return job }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }
}
