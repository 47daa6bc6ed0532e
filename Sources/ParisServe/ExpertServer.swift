import Foundation
import Hummingbird
import NIOCore
import ParisEnsemble
import ParisModels
import ParisRun
import Torch

/// `paris serve expert`: one expert of a run behind HTTP, so that its owner keeps the weights while it joins a
/// mixture elsewhere. `POST /v1/velocity` takes a `VelocityWire` request (x_t, t, caption tokens and mask, the CFG
/// scale, as safetensors) and answers the guided velocity as safetensors, computed exactly as a local member does
/// (`ExpertVelocity`, CFG per expert). `GET /v1/info` gives its input shape, cluster and objective; `GET /healthz`
/// its state and the number of velocity calls served.
///
/// With a token, every route but `/healthz` needs `Authorization: Bearer <token>`; a request without it, or with
/// another, is answered 401 before its body is read, so no work is done. Calls are computed one at a time on a
/// dedicated queue (libtorch's threads do the parallel work).
public final class ExpertServer: @unchecked Sendable {
    public let expert: Int
    public let info: RemoteExpertInfo
    let velocity: ExpertVelocity
    let device: Device
    let token: [UInt8]?
    let host: String, port: Int
    let work = DispatchQueue(label: "paris-serve-expert")
    let lock = NSLock()
    var calls = 0, refused = 0
    /// The largest body accepted: a full `VelocityWire.maxBatch` request with its text.
    public let maxBodyBytes: Int

    /// Loads `<run>/expert_<k>/` on `device`. `token`: the bearer token (nil: none asked).
    public init(run: RunLayout, expert k: Int, device: Device, token: String?, host: String = "127.0.0.1",
                port: Int = 8090) throws {
        guard (0...65535).contains(port) else { throw APIError(500, field: "port", "the port must be within 0…65535, not \(port)") }
        if let token, token.isEmpty { throw APIError(500, field: "token", "the token is empty") }
        let (model, checkpoint) = try ExpertCheckpoint.load(from: run.expert(k), device: device)
        velocity = try ExpertVelocity(model, objective: checkpoint.objective)
        let m = checkpoint.model
        let shape = VelocityWire.Shape(channels: m.inChannels, imageSize: m.inputSize, textLength: m.textLength,
                                       textDim: m.textDim)
        info = RemoteExpertInfo(expert: k, cluster: checkpoint.cluster, objective: "\(checkpoint.objective)",
                                shape: shape)
        expert = k
        self.device = device
        self.token = token.map { Array($0.utf8) }
        self.host = host
        self.port = port
        let perImage = shape.channels * shape.imageSize * shape.imageSize * 4 + shape.textLength * (shape.textDim * 4 + 1) + 8
        maxBodyBytes = VelocityWire.maxBatch * perImage + (1 << 16)
    }

    /// Velocity calls answered 200, and requests refused for their token.
    public var counts: (calls: Int, refused: Int) { lock.withLock { (calls, refused) } }

    /// Serves until the task is cancelled (or SIGINT/SIGTERM with `handleSignals`); `onRunning` gets the port.
    public func run(handleSignals: Bool = false, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let router = Router()
        router.get("/healthz") { _, _ in
            let (calls, refused) = self.counts
            return Self.json(["status": "ok", "expert": self.expert, "calls": calls, "refused": refused])
        }
        router.get("/v1/info", use: guarded { _ in
            Self.response(JSONText.encode(self.info), contentType: "application/json")
        })
        router.post("/v1/velocity", use: guarded { request in try await self.velocity(request) })
        try await ParisServer.serve(router, host: host, port: port, name: "paris-expert", handleSignals: handleSignals,
                                    onRunning: onRunning)
    }

    /// `POST /v1/velocity`: the body, checked against the expert's shape, then the guided velocity.
    func velocity(_ request: Request) async throws -> Response {
        let tooLarge = APIError(413, "the body is larger than \(maxBodyBytes) bytes (a full batch of \(VelocityWire.maxBatch))")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes { throw tooLarge }
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: maxBodyBytes) } catch is NIOTooManyBytesError { throw tooLarge }
        let body = Array(buffer.readableBytesView)
        let answer: [UInt8] = try await withCheckedThrowingContinuation { continuation in
            work.async {
                continuation.resume(with: Result {
                    let r: VelocityWire.Request
                    do { r = try VelocityWire.decodeRequest(body, shape: self.info.shape, device: self.device) } catch let e as VelocityWire.WireError {
                        throw APIError(400, field: e.tensor, e.description)
                    }
                    let v = try withNoGrad { try self.velocity(r.x, r.t, r.text, scale: r.guidance) }
                    return try VelocityWire.encodeResponse(v)
                })
            }
        }
        lock.withLock { calls += 1 }
        return Self.response(answer, contentType: "application/octet-stream")
    }

    /// A handler behind this server's bearer token (`ParisServer.guarded`).
    func guarded(_ body: @escaping @Sendable (Request) async throws -> Response)
        -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        ParisServer.guarded(token: token, onRefused: { self.lock.withLock { self.refused += 1 } }, body)
    }

    static func json(_ object: Any) -> Response { ParisServer.json(object) }

    static func response(_ bytes: [UInt8], contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        ParisServer.response(bytes, contentType: contentType, status: status)
    }
}
