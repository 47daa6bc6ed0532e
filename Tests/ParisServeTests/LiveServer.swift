import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParisEnsemble
import ParisRun
import ParisRunTestSupport
import ParisServe
import Torch
import XCTest

/// A real `ParisServer` on an ephemeral loopback port, started in-process on a tiny run (untrained experts and
/// router, the stub prompt encoder), and a URLSession client for it.
final class LiveServer: @unchecked Sendable {
    let server: ParisServer
    let port: Int
    let task: Task<Void, any Error>
    let session: URLSession

    static func start(_ run: RunLayout, limits: ServeLimits = .standard, countTokens: PromptTokenCounter? = nil)
        async throws -> LiveServer {
        try await start(engine: try MixtureEngine(run: run, device: .cpu, encode: TinyRun.encoder,
                                                  countTokens: countTokens), limits: limits)
    }

    /// A server for `engine` (a run's or a release's).
    static func start(engine: MixtureEngine, limits: ServeLimits = .standard) async throws -> LiveServer {
        let server = try ParisServer(engine: engine, options: ServeOptions(host: "127.0.0.1", port: 0, limits: limits))
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task { try await server.run { port in continuation.yield(port); continuation.finish() } }
        var port = 0
        for await p in ports { port = p }
        guard port > 0 else { throw XCTSkip("the server did not report its port") }
        return LiveServer(server: server, port: port, task: task)
    }

    init(server: ParisServer, port: Int, task: Task<Void, any Error>) {
        self.server = server
        self.port = port
        self.task = task
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 120
        config.httpMaximumConnectionsPerHost = 16
        session = URLSession(configuration: config)
    }

    func stop() {
        task.cancel()
        session.invalidateAndCancel()
    }

    /// One answer: status, headers (lower-cased names) and body.
    struct Answer {
        let status: Int
        let headers: [String: String]
        let body: Data

        /// The body as a JSON object (fails the test when it is not one).
        func json(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                XCTFail("not a JSON object: \(String(decoding: body, as: UTF8.self))", file: file, line: line)
                return [:]
            }
            return object
        }

        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func call(_ method: String, _ path: String, body: Data? = nil) async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields { headers["\(k)".lowercased()] = "\(v)" }
        return Answer(status: http.statusCode, headers: headers, body: data)
    }

    func post(_ path: String, _ object: [String: Any]) async throws -> Answer {
        try await call("POST", path, body: JSONSerialization.data(withJSONObject: object))
    }

    func post(_ path: String, raw: String) async throws -> Answer { try await call("POST", path, body: Data(raw.utf8)) }

    func get(_ path: String) async throws -> Answer { try await call("GET", path) }

    /// Polls `GET /v1/jobs/{id}` until `until` holds for its state (at most `seconds`); returns the last snapshot.
    func waitForJob(_ id: String, seconds: Double = 120, until: (String) -> Bool = { ["done", "failed", "cancelled"].contains($0) })
        async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let job = try await get("/v1/jobs/\(id)").json()
            if let state = job["state"] as? String, until(state) { return job }
            guard Date() < deadline else {
                XCTFail("job \(id) is still \(job["state"] ?? "?") after \(seconds) s")
                return job
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }
}

/// The images of an answer's `images` field, decoded from base64.
func pngs(_ object: [String: Any]) -> [Data] {
    (object["images"] as? [String] ?? []).compactMap { Data(base64Encoded: $0) }
}
