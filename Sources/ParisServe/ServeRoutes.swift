import Foundation
import Hummingbird
import NIOCore

extension ParisServer {
    typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response

    /// Every route of the server (docs/serving.md lists them with curl examples).
    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/", use: handle("/") { _, _ in
            Self.response(Array(WebPage.html.utf8), contentType: "text/html; charset=utf-8")
        })
        router.get("/healthz", use: handle("/healthz") { _, _ in Self.json(self.health()) })
        router.get("/metrics", use: handle("/metrics") { _, _ in
            Self.response(Array(self.metrics.render(queueDepth: self.queue.depth).utf8),
                          contentType: "text/plain; version=0.0.4")
        })
        router.get("/v1/experts", use: handle("/v1/experts") { _, _ in
            let experts = self.engine.experts().map { e -> [String: Any] in
                guard let k = e["index"] as? Int, let reason = self.metrics.recentFailure(k) else { return e }
                return e.merging(["health": "failing", "last_error": reason]) { $1 }
            }
            return Self.json(["experts": experts, "num_experts": self.engine.numExperts])
        })
        router.get("/v1/experts/:k/contact.png", use: handle("/v1/experts/{k}/contact.png") { _, context in
            let text = context.parameters.get("k") ?? ""
            guard let k = Int(text), k >= 0, k < self.engine.numExperts else {
                throw APIError(404, field: "k", "no expert '\(text)'; the run has \(self.engine.numExperts)")
            }
            guard let url = self.engine.contactSheet(expert: k), let data = FileManager.default.contents(atPath: url.path)
            else { throw APIError(404, field: "k", "expert \(k)'s cluster has no contact sheet in the run's partition") }
            return Self.response([UInt8](data), contentType: "image/png")
        })
        // AUTOMATIC1111's API.
        router.post("/sdapi/v1/txt2img", use: handle("/sdapi/v1/txt2img") { request, _ in
            try await self.txt2img(request)
        })
        router.get("/sdapi/v1/progress", use: handle("/sdapi/v1/progress") { _, _ in
            Self.json(self.queue.progressA1111())
        })
        router.post("/sdapi/v1/interrupt", use: handle("/sdapi/v1/interrupt") { _, _ in
            self.queue.interruptCurrent()
            return Self.json([String: Any]())
        })
        // The jobs API.
        router.post("/v1/jobs", use: handle("/v1/jobs") { request, _ in
            let r = try await self.parse(request, automatic1111: false)
            let id = try self.queue.submit(r)
            return Self.json(["id": id, "state": "queued"], status: .accepted)
        })
        router.get("/v1/jobs/:id", use: handle("/v1/jobs/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let s = self.queue.snapshot(id) else { throw Self.noJob(id) }
            return Self.json(s)
        })
        router.get("/v1/jobs/:id/events", use: handle("/v1/jobs/{id}/events") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let stream = self.queue.subscribe(id) else { throw Self.noJob(id) }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: ResponseBody { writer in
                for await event in stream { try await writer.write(ByteBuffer(bytes: event.wire)) }
                try await writer.finish(nil)
            })
        })
        router.delete("/v1/jobs/:id", use: handle("/v1/jobs/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let state = self.queue.state(id) else { throw Self.noJob(id) }
            guard self.queue.cancel(id) else {
                throw APIError(409, field: "id", "job \(id) has already finished (\(state.rawValue))")
            }
            return Self.json(["id": id, "state": self.queue.state(id)?.rawValue ?? "cancelled", "cancel": true])
        })
        return router
    }

    /// `POST /sdapi/v1/txt2img`: queues the request like any job, waits for it, and answers AUTOMATIC1111's
    /// `{"images": [base64 PNG…], "parameters": {…}, "info": "<JSON string>"}`.
    func txt2img(_ request: Request) async throws -> Response {
        let r = try await parse(request, automatic1111: true)
        let id = try queue.submit(r)
        await queue.wait(id)
        guard let (resolved, output) = queue.output(id) else {
            let state = queue.state(id)
            if state == .cancelled { throw APIError(409, "the request was interrupted before it finished") }
            let error = queue.snapshot(id, images: false)?["error"] as? String ?? "unknown"
            throw APIError(500, "sampling failed: \(error)")
        }
        let info = JobQueue.info(resolved, output, imageSize: engine.imageSize)
        return Self.json([
            "images": output.png.map { Data($0).base64EncodedString() },
            "parameters": JobQueue.parameters(r, imageSize: engine.imageSize),
            "info": String(decoding: JSONText.serialize(info), as: UTF8.self),
        ])
    }

    /// The request's body (at most `maxBodyBytes`, else 413), parsed from the model's defaults and checked (by
    /// the model too: a release refuses what it cannot do).
    func parse(_ request: Request, automatic1111: Bool) async throws -> GenerationRequest {
        let limit = options.limits.maxBodyBytes
        let tooLarge = APIError(413, "the body is larger than \(limit) bytes (ServeLimits.maxBodyBytes)")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw tooLarge }
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: limit) } catch is NIOTooManyBytesError { throw tooLarge }
        let r = try GenerationRequest.parse(Array(buffer.readableBytesView), limits: options.limits,
                                            imageSize: engine.imageSize, numExperts: engine.numExperts,
                                            automatic1111: automatic1111, defaults: engine.model.defaults)
        try engine.model.check(r)
        return r
    }

    /// Wraps a handler: an `APIError` becomes its JSON answer (with Retry-After for 429), any other error a 500
    /// naming it; every answer is counted in `/metrics` under the route's pattern.
    func handle(_ route: String, _ body: @escaping Handler) -> Handler {
        { request, context in
            let start = Date()
            var response: Response
            do {
                response = try await body(request, context)
            } catch let e as APIError {
                response = Self.response(e.jsonBody, contentType: "application/json",
                                         status: HTTPResponse.Status(code: e.status))
                if let wait = e.retryAfter { response.headers[.retryAfter] = "\(wait)" }
            } catch {
                response = Self.response(APIError(500, "\(error)").jsonBody, contentType: "application/json",
                                         status: .internalServerError)
            }
            self.metrics.recordRequest(route: route, status: Int(response.status.code),
                                       seconds: Date().timeIntervalSince(start))
            return response
        }
    }

    static func noJob(_ id: String) -> APIError { APIError(404, field: "id", "no job '\(id)'") }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        response(JSONText.serialize(object), contentType: "application/json", status: status)
    }

    static func response(_ bytes: [UInt8], contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
