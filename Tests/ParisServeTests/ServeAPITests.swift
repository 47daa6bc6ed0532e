import Foundation
import ParisDiffusion
import ParisEnsemble
import ParisImage
import ParisRun
import ParisRunTestSupport
import ParisServe
import Torch
import XCTest

/// `paris serve` against a real server on loopback: AUTOMATIC1111's txt2img, the jobs API with its events and
/// cancel, the bounded queue, and the same image for the same seed however the request was scheduled.
final class ServeAPITests: XCTestCase {
    var run: RunLayout!
    var live: LiveServer!

    override func setUp() async throws {
        Runtime.threads = 1
        run = try TinyRun.withCheckpoints(try TinyRun.temporaryFolder(self))
    }

    override func tearDown() async throws { live?.stop() }

    func start(_ limits: ServeLimits = .standard) async throws {
        live = try await LiveServer.start(run, limits: limits)
    }

    func testTxt2ImgAnswersLikeAutomatic1111WithTheImagesPariSampleMakes() async throws {
        try await start()
        let answer = try await live.post("/sdapi/v1/txt2img", [
            "prompt": "a cat", "seed": 5, "steps": 2, "cfg_scale": 2, "batch_size": 2, "width": 32, "height": 32,
            "negative_prompt": "a dog", "sampler_name": "Euler a",
        ])
        XCTAssertEqual(answer.status, 200, answer.text)
        let body = try answer.json()
        let images = pngs(body)
        XCTAssertEqual(images.count, 2)
        let first = try Image(decoding: [UInt8](images[0]))
        XCTAssertEqual([first.width, first.height, first.channels], [32, 32, 3])
        let parameters = try XCTUnwrap(body["parameters"] as? [String: Any])
        XCTAssertEqual(parameters["steps"] as? Int, 2)
        XCTAssertEqual(parameters["strategy"] as? String, "top2")
        // `info` is a JSON string, as AUTOMATIC1111 sends it.
        let infoText = try XCTUnwrap(body["info"] as? String)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(infoText.utf8)) as? [String: Any])
        XCTAssertEqual(info["all_seeds"] as? [Int], [5, 6])
        let routing = try XCTUnwrap(info["routing"] as? [String: Any])
        let mean = try XCTUnwrap(routing["mean_weights"] as? [Double])
        XCTAssertEqual(mean.count, 2)
        XCTAssertEqual(mean.reduce(0, +), 1, accuracy: 1e-9)
        let notes = try XCTUnwrap(info["notes"] as? [String])
        XCTAssertTrue(notes.contains { $0.contains("negative_prompt") }, "\(notes)")
        XCTAssertTrue(notes.contains { $0.contains("sampler_name") }, "\(notes)")
        // The same pixels as `paris sample` with the same prompt, seed, steps and guidance.
        let job = SampleJob(run: run, name: "ref", prompts: ["a cat"], imagesPerPrompt: 2, strategy: .top2,
                            sampler: try SamplerConfig(steps: 2, guidanceScale: 2), seed: 5, batchSize: 2)
        let reference = try job.run(encode: TinyRun.encoder)
        for (served, file) in zip(images, reference.images) {
            XCTAssertEqual(try Image(decoding: [UInt8](served)).pixels, try Image(contentsOf: file).pixels,
                           "\(file.lastPathComponent) differs from the served image")
        }
    }

    func testTheSameSeedGivesTheSameImageHoweverTheRequestIsScheduled() async throws {
        try await start()
        let request: [String: Any] = ["prompt": "a red car", "seed": 7, "steps": 3, "cfg_scale": 3]
        // Alone, through the jobs API.
        let alone = try await live.post("/v1/jobs", request).json()
        let aloneJob = try await live.waitForJob(alone["id"] as! String)
        let reference = try XCTUnwrap(pngs(aloneJob).first)
        // Queued behind another job, and at the same time through txt2img and the jobs API.
        let blocker = try await live.post("/v1/jobs", ["prompt": "something else", "seed": 99, "steps": 6,
                                                       "batch_size": 3]).json()
        let server: LiveServer = live, body = String(decoding: try JSONSerialization.data(withJSONObject: request),
                                                     as: UTF8.self)
        async let viaA1111 = server.post("/sdapi/v1/txt2img", raw: body)
        let queued = try await live.post("/v1/jobs", request).json()
        let queuedJob = try await live.waitForJob(queued["id"] as! String)
        let a1111 = try await viaA1111.json()
        _ = try await live.waitForJob(blocker["id"] as! String)
        XCTAssertEqual(queuedJob["seeds"] as? [Int], [7])
        XCTAssertEqual(pngs(queuedJob).first, reference, "queued behind another job")
        XCTAssertEqual(pngs(a1111).first, reference, "through txt2img, concurrently")
        // A different seed gives a different image (the comparison can fail).
        let other = try await live.post("/sdapi/v1/txt2img", request.merging(["seed": 8]) { $1 }).json()
        XCTAssertNotEqual(pngs(other).first, reference)
    }

    func testJobsAPIReportsProgressRoutingEventsAndTheResult() async throws {
        try await start()
        let created = try await live.post("/v1/jobs", ["prompt": "a boat", "seed": 3, "steps": 4, "batch_size": 2,
                                                       "n_iter": 2, "strategy": "full"])
        XCTAssertEqual(created.status, 202, created.text)
        let id = try XCTUnwrap(try created.json()["id"] as? String)
        let job = try await live.waitForJob(id)
        XCTAssertEqual(job["state"] as? String, "done")
        XCTAssertEqual(job["seeds"] as? [Int], [3, 4, 5, 6])
        XCTAssertEqual(pngs(job).count, 4)
        let progress = try XCTUnwrap(job["progress"] as? [String: Any])
        XCTAssertEqual(progress["step"] as? Int, 8)
        XCTAssertEqual(progress["total"] as? Int, 8)
        let trace = try XCTUnwrap(job["trace"] as? [String: Any])
        XCTAssertEqual((trace["steps"] as? [Any])?.count, 4)
        // The events of a finished job are replayed: queued, running, one progress per step, done.
        let events = try await live.get("/v1/jobs/\(id)/events")
        XCTAssertEqual(events.status, 200)
        XCTAssertEqual(events.headers["content-type"], "text/event-stream")
        let parsed = Self.events(events.text)
        XCTAssertEqual(parsed.map(\.name), ["state", "state"] + Array(repeating: "progress", count: 8) + ["done"])
        let steps = parsed.filter { $0.name == "progress" }
        XCTAssertEqual(steps.map { $0.data["done_steps"] as? Int }, (1...8).map { $0 })
        for step in steps {
            let routing = try XCTUnwrap(step.data["routing"] as? [[String: Any]])
            let weights = try XCTUnwrap(routing.first?["weights"] as? [[Double]])
            XCTAssertEqual(weights.count, 2)  // one row per image of the batch
            for row in weights { XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-9) }
            let probabilities = try XCTUnwrap(routing.first?["probabilities"] as? [[Double]])
            XCTAssertEqual(probabilities.map(\.count), [2, 2])  // the router's p(k | x_t, t) per image
        }
        // A finished job cannot be cancelled; an unknown one is 404 naming the id.
        let late = try await live.call("DELETE", "/v1/jobs/\(id)")
        XCTAssertEqual(late.status, 409)
        let unknown = try await live.get("/v1/jobs/nope")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(try unknown.json()["field"] as? String, "id")
    }

    func testCancelStopsARunningAndAQueuedJobWhileHealthAndProgressAnswer() async throws {
        try await start()
        let long = try await live.post("/v1/jobs", ["prompt": "long", "steps": 200, "batch_size": 16]).json()
        let longID = long["id"] as! String
        let waiting = try await live.post("/v1/jobs", ["prompt": "waiting", "steps": 200]).json()
        let waitingID = waiting["id"] as! String
        _ = try await live.waitForJob(longID) { $0 != "queued" }
        // The event loop answers while the worker samples.
        let health = try await live.get("/healthz")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(try health.json()["queue_depth"] as? Int, 1)
        let progress = try await live.get("/sdapi/v1/progress").json()
        XCTAssertEqual((progress["state"] as? [String: Any])?["job"] as? String, longID)
        XCTAssertEqual((progress["state"] as? [String: Any])?["sampling_steps"] as? Int, 200)
        let stillRunning = try await live.get("/v1/jobs/\(longID)").json()
        XCTAssertEqual(stillRunning["state"] as? String, "running", "the answers came while it sampled")
        // Cancel the queued one, then interrupt the running one the AUTOMATIC1111 way.
        let cancel = try await live.call("DELETE", "/v1/jobs/\(waitingID)")
        XCTAssertEqual(cancel.status, 200, cancel.text)
        let waitingState = try await live.waitForJob(waitingID)["state"] as? String
        XCTAssertEqual(waitingState, "cancelled")
        let interrupt = try await live.post("/sdapi/v1/interrupt", [:]).status
        XCTAssertEqual(interrupt, 200)
        let stopped = try await live.waitForJob(longID)
        XCTAssertEqual(stopped["state"] as? String, "cancelled")
        XCTAssertLessThan((stopped["progress"] as? [String: Any])?["step"] as? Int ?? 0, 200 * 1)
    }

    func testAFullQueueAnswers429WithRetryAfterAndRecovers() async throws {
        var limits = ServeLimits.standard
        limits.maxQueuedJobs = 1
        try await start(limits)
        let running = try await live.post("/v1/jobs", ["prompt": "a", "steps": 200, "batch_size": 16]).json()
        _ = try await live.waitForJob(running["id"] as! String) { $0 != "queued" }
        let queued = try await live.post("/v1/jobs", ["prompt": "b", "steps": 2])
        XCTAssertEqual(queued.status, 202)
        let refused = try await live.post("/v1/jobs", ["prompt": "c", "steps": 2])
        XCTAssertEqual(refused.status, 429, refused.text)
        XCTAssertNotNil(Int(refused.headers["retry-after"] ?? ""), "\(refused.headers)")
        XCTAssertTrue((try refused.json()["error"] as? String ?? "").contains("queue is full"))
        let a1111 = try await live.post("/sdapi/v1/txt2img", ["prompt": "d", "steps": 2])
        XCTAssertEqual(a1111.status, 429)
        let health3 = try await live.get("/healthz").status
        XCTAssertEqual(health3, 200)
        // Recovery: once the queue drains, a job is accepted again.
        _ = try await live.call("DELETE", "/v1/jobs/\(running["id"] as! String)")
        _ = try await live.waitForJob(try queued.json()["id"] as! String)
        let again = try await live.post("/v1/jobs", ["prompt": "e", "steps": 2])
        XCTAssertEqual(again.status, 202, again.text)
        let metrics = try await live.get("/metrics").text
        XCTAssertTrue(metrics.contains("paris_requests_total{route=\"/v1/jobs\",status=\"429\"} 1"), metrics)
    }

    /// `event: name` / `data: json` blocks of a `text/event-stream` body.
    static func events(_ text: String) -> [(name: String, data: [String: Any])] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var name = "", data = ""
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            guard !name.isEmpty,
                  let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { return nil }
            return (name, object)
        }
    }
}
