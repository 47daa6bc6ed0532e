import Foundation
import ParisEnsemble
import ParisRun
import ParisRunTestSupport
import ParisServe
import Torch
import XCTest

/// Issue #13, batching: concurrent requests with the same settings share one forward batch, and every image is the
/// one its request gets alone (same prompt and seed), on a real server on loopback.
final class ServeBatchingTests: XCTestCase {
    var run: RunLayout!
    var live: LiveServer?

    override func setUp() async throws {
        Runtime.threads = 1
        run = try TinyRun.withCheckpoints(try TinyRun.temporaryFolder(self))
    }

    override func tearDown() async throws { live?.stop() }

    func server(window milliseconds: Int, countTokens: PromptTokenCounter? = nil) async throws -> LiveServer {
        live?.stop()
        var limits = ServeLimits.standard
        limits.batchWindowMilliseconds = milliseconds
        let started = try await LiveServer.start(run, limits: limits, countTokens: countTokens)
        live = started
        return started
    }

    /// Submits a job and returns its id.
    func submit(_ server: LiveServer, _ request: [String: Any]) async throws -> String {
        let answer = try await server.post("/v1/jobs", request).json()
        return try XCTUnwrap(answer["id"] as? String, "\(answer)")
    }

    func metrics(_ server: LiveServer) async throws -> String { try await server.get("/metrics").text }

    /// Three requests, different prompts, seeds and batch sizes, the same settings.
    static func requests() -> [[String: Any]] {
        [["prompt": "a red car", "seed": 7, "steps": 3, "cfg_scale": 3, "strategy": "top1"],
         ["prompt": "a blue boat", "seed": 40, "steps": 3, "cfg_scale": 3, "strategy": "top1", "batch_size": 2],
         ["prompt": "a green tree", "seed": 1234, "steps": 3, "cfg_scale": 3, "strategy": "top1"]]
    }

    func testBatchedRequestsGetTheImagesTheyWouldGetAlone() async throws {
        // Alone: batching off, one request after the other.
        let alone = try await server(window: 0)
        var reference: [[Data]] = []
        for r in Self.requests() {
            let id = try await submit(alone, r)
            reference.append(pngs(try await alone.waitForJob(id)))
        }
        XCTAssertEqual(reference.map(\.count), [1, 2, 1])
        let aloneMetrics = try await metrics(alone)
        XCTAssertTrue(aloneMetrics.contains("paris_batches_total 0\n"), aloneMetrics)

        // Together: submitted at once, within a long window, so the worker batches all three.
        let batched = try await server(window: 1500)
        var ids: [String] = []
        for r in Self.requests() { ids.append(try await submit(batched, r)) }
        var jobs: [[String: Any]] = []
        for id in ids { jobs.append(try await batched.waitForJob(id)) }
        let text = try await metrics(batched)
        XCTAssertTrue(text.contains("paris_batches_total 1\n"), text)
        XCTAssertTrue(text.contains("paris_batched_jobs_total 3\n"), text)
        for (i, job) in jobs.enumerated() {
            XCTAssertEqual(job["state"] as? String, "done", "\(job)")
            XCTAssertEqual(pngs(job), reference[i], "request \(i): the batched images differ from the ones made alone")
            // Each job's trace and events carry its own rows only.
            let trace = try XCTUnwrap(job["trace"] as? [String: Any])
            let steps = try XCTUnwrap(trace["steps"] as? [[String: Any]])
            XCTAssertEqual(steps.count, 3)
            XCTAssertEqual((steps[0]["weights"] as? [[Double]])?.count, reference[i].count)
            XCTAssertEqual(trace["seeds"] as? [Int], job["seeds"] as? [Int])
            let events = ServeAPITests.events(try await batched.get("/v1/jobs/\(ids[i])/events").text)
            let routing = events.filter { $0.name == "progress" }.compactMap { $0.data["routing"] as? [[String: Any]] }
            XCTAssertEqual(routing.map { ($0.first?["weights"] as? [[Double]])?.count },
                           Array(repeating: reference[i].count, count: 3))
        }
        // The comparison can fail: another seed is another image.
        XCTAssertNotEqual(reference[0], reference[2])
    }

    func testOnlyRequestsWithTheSameSettingsShareABatch() async throws {
        let live = try await server(window: 1500)
        let requests: [[String: Any]] = [
            ["prompt": "a", "seed": 1, "steps": 2],
            ["prompt": "b", "seed": 2, "steps": 3],                         // other steps
            ["prompt": "c", "seed": 3, "steps": 2, "strategy": "sample1"],  // sample1 never batches
            ["prompt": "d", "seed": 4, "steps": 2, "n_iter": 2],            // several iterations never batch
            ["prompt": "e", "seed": 5, "steps": 2],                         // joins "a"
        ]
        var ids: [String] = []
        for r in requests { ids.append(try await submit(live, r)) }
        for id in ids {
            let state = try await live.waitForJob(id)["state"] as? String
            XCTAssertEqual(state, "done")
        }
        let text = try await metrics(live)
        XCTAssertTrue(text.contains("paris_batches_total 1\n"), text)
        XCTAssertTrue(text.contains("paris_batched_jobs_total 2\n"), text)
    }

    /// A prompt longer than the experts' token length is truncated by the encoder, and `info` says so (the stub
    /// counter here counts words; ServeProcessTests checks the real MiniLM one).
    func testATruncatedPromptIsNotedInInfo() async throws {
        let live = try await server(window: 0, countTokens: { $0.split(separator: " ").count + 2 })
        let length = live.server.engine.loaded!.textLength  // the experts' tokens, [CLS] and [SEP] included
        func words(_ n: Int) -> String { (0..<n).map { "w\($0)" }.joined(separator: " ") }
        let long = try await live.post("/sdapi/v1/txt2img", ["prompt": words(length - 1), "steps": 1, "seed": 1]).json()
        let short = try await live.post("/sdapi/v1/txt2img", ["prompt": words(length - 2), "steps": 1, "seed": 1]).json()
        func notes(_ answer: [String: Any]) throws -> [String] {
            let info = try JSONSerialization.jsonObject(with: Data((answer["info"] as? String ?? "").utf8))
            return (info as? [String: Any])?["notes"] as? [String] ?? []
        }
        let longNotes = try notes(long), shortNotes = try notes(short)
        XCTAssertTrue(longNotes.contains { $0.contains("the prompt has \(length + 1) tokens, more than the \(length)") },
                      "\(longNotes)")
        XCTAssertFalse(shortNotes.contains { $0.contains("tokens, more than") }, "\(shortNotes)")
    }

    /// A job cancelled in a shared batch is cancelled at once; the others in its batch finish.
    func testCancellingOneJobOfABatchLeavesTheOthersRunning() async throws {
        let live = try await server(window: 1500)
        let long: [String: Any] = ["steps": 200, "batch_size": 8]
        let a = try await submit(live, long.merging(["prompt": "a", "seed": 1]) { $1 })
        let b = try await submit(live, long.merging(["prompt": "b", "seed": 9]) { $1 })
        _ = try await live.waitForJob(b) { $0 == "running" }
        let status = try await live.call("DELETE", "/v1/jobs/\(a)").status
        XCTAssertEqual(status, 200)
        let cancelled = try await live.waitForJob(a)
        XCTAssertEqual(cancelled["state"] as? String, "cancelled")
        let other = try await live.get("/v1/jobs/\(b)").json()
        XCTAssertEqual(other["state"] as? String, "running", "cancelled at once, while its batch goes on")
        let done = try await live.waitForJob(b)
        XCTAssertEqual(done["state"] as? String, "done")
        XCTAssertEqual(pngs(done).count, 8)
        let text = try await metrics(live)
        XCTAssertTrue(text.contains("paris_batched_jobs_total 2\n"), text)
    }
}
