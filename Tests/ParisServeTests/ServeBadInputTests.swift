import Foundation
import ParisRun
import ParisRunTestSupport
import ParisServe
import Torch
import XCTest

/// Every bad request gets a 4xx JSON error naming the field, and the server keeps answering.
final class ServeBadInputTests: XCTestCase {
    var live: LiveServer!

    override func setUp() async throws {
        Runtime.threads = 1
        live = try await LiveServer.start(try TinyRun.withCheckpoints(try TinyRun.temporaryFolder(self)))
    }

    override func tearDown() async throws { live?.stop() }

    /// (body, the field the error must name (nil: the body), what the message must say).
    static let cases: [(String, String?, String)] = [
        (#"{"prompt": "a cat", "steps": 2"#, nil, "not valid JSON"),
        (#"["a cat"]"#, nil, "must be a JSON object"),
        (#"{"prompt": 3}"#, "prompt", "must be a string"),
        (#"{"steps": "ten"}"#, "steps", "must be an integer"),
        (#"{"steps": 2.5}"#, "steps", "must be an integer"),
        (#"{"colour": "red"}"#, "colour", "unknown field"),
        (#"{"steps": 0}"#, "steps", "within 1…200"),
        (#"{"steps": 201}"#, "steps", "within 1…200"),
        (#"{"batch_size": 17}"#, "batch_size", "within 1…16"),
        (#"{"batch_size": 16, "n_iter": 5}"#, "n_iter", "more than the 64"),
        (#"{"cfg_scale": NaN}"#, "cfg_scale", "must be finite"),
        (#"{"cfg_scale": Infinity}"#, "cfg_scale", "must be finite"),
        (#"{"cfg_scale": "7"}"#, "cfg_scale", "must be a number"),
        (#"{"cfg_scale": 1000}"#, "cfg_scale", "must be finite and within ±100"),
        (#"{"strategy": "best"}"#, "strategy", "unknown routing strategy"),
        (#"{"strategy": "topk:5"}"#, "strategy", "only 2"),
        (#"{"strategy": "oracle"}"#, "strategy", "oracle"),
        (#"{"height": 512}"#, "height", "run's image size, 32"),
        (#"{"width": 64}"#, "width", "run's image size, 32"),
        (#"{"seed": -5}"#, "seed", "−1 for random"),
        (#"{"solver": "rk4"}"#, "solver", "euler or heun"),
        ("{\"prompt\": \"\(String(repeating: "x", count: 2001))\"}", "prompt", "more than the 2000"),
    ]

    func testEveryBadRequestIsA400NamingTheFieldOnBothAPIs() async throws {
        for path in ["/v1/jobs", "/sdapi/v1/txt2img"] {
            for (body, field, message) in Self.cases {
                let answer = try await live.post(path, raw: body)
                XCTAssertEqual(answer.status, 400, "\(path) \(body.prefix(60)): \(answer.text)")
                let error = try answer.json()
                XCTAssertEqual(error["field"] as? String, field, "\(path) \(body.prefix(60)): \(answer.text)")
                XCTAssertTrue((error["error"] as? String ?? "").contains(message),
                              "\(path) \(body.prefix(60)): '\(error["error"] ?? "")' lacks '\(message)'")
            }
        }
        let health1 = try await live.get("/healthz").status
        XCTAssertEqual(health1, 200, "the server still answers")
    }

    func testAutomatic1111FieldsAreAcceptedOnlyByTxt2Img() async throws {
        let body = #"{"prompt": "a", "steps": 1, "sampler_name": "Euler", "restore_faces": false}"#
        let jobs = try await live.post("/v1/jobs", raw: body)
        XCTAssertEqual(jobs.status, 400)
        XCTAssertEqual(try jobs.json()["field"] as? String, "restore_faces")
        let a1111 = try await live.post("/sdapi/v1/txt2img", raw: body)
        XCTAssertEqual(a1111.status, 200, a1111.text)
    }

    func testABodyOverTheLimitIs413AndTheServerGoesOn() async throws {
        let padding = String(repeating: " ", count: ServeLimits.standard.maxBodyBytes + 1)
        let answer = try await live.post("/v1/jobs", raw: "{\"prompt\": \"a\"\(padding)}")
        XCTAssertEqual(answer.status, 413, answer.text)
        XCTAssertTrue((try answer.json()["error"] as? String ?? "").contains("larger than"))
        let health2 = try await live.get("/healthz").status
        XCTAssertEqual(health2, 200)
    }

    func testExpertsHealthAndMetricsDescribeTheMixture() async throws {
        let experts = try await live.get("/v1/experts").json()
        let list = try XCTUnwrap(experts["experts"] as? [[String: Any]])
        XCTAssertEqual(list.map { $0["cluster"] as? Int }, [0, 1])
        XCTAssertEqual(list.map { $0["health"] as? String }, ["ok", "ok"])
        XCTAssertEqual(list.map { $0["local"] as? Bool }, [true, true])
        // The tiny run has no partition folder, so no contact sheet: 404 naming the expert.
        let sheet = try await live.get("/v1/experts/0/contact.png")
        XCTAssertEqual(sheet.status, 404)
        XCTAssertEqual(try sheet.json()["field"] as? String, "k")
        let noExpert = try await live.get("/v1/experts/9/contact.png").status
        XCTAssertEqual(noExpert, 404)
        let health = try await live.get("/healthz").json()
        XCTAssertEqual(health["num_experts"] as? Int, 2)
        XCTAssertEqual(health["image_size"] as? Int, 32)
        _ = try await live.post("/sdapi/v1/txt2img", ["prompt": "a", "steps": 2])
        let metrics = try await live.get("/metrics")
        XCTAssertEqual(metrics.headers["content-type"], "text/plain; version=0.0.4")
        XCTAssertTrue(metrics.text.contains("paris_requests_total{route=\"/sdapi/v1/txt2img\",status=\"200\"} 1"),
                      metrics.text)
        XCTAssertTrue(metrics.text.contains("paris_jobs_total{state=\"done\"} 1"), metrics.text)
        XCTAssertTrue(metrics.text.contains("paris_queue_depth 0"), metrics.text)
        let calls = metrics.text.split(separator: "\n").filter { $0.hasPrefix("paris_expert_calls_total") }
            .compactMap { Int($0.split(separator: " ").last ?? "") }
        XCTAssertEqual(calls.count, 2)
        XCTAssertEqual(calls.reduce(0, +), 4, "top2 over 2 experts evaluates both at each of the 2 steps")
    }
}
