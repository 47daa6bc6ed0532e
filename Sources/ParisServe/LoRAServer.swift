import Foundation
import Hummingbird
import NIOCore
import ParisEnsemble
import ParisRun
import ParisZK
import Torch

/// `paris serve lora`: a contributor serves its LoRA's deltas without handing over A and B (ZKLoRA's multi-party
/// inference). The owner runs the frozen base expert, sends an adapted layer's input x [N, d_in] and adds
/// (α / r)·delta to the base layer's output (`LoRAWire`):
///
///     delta = (x · Aᵀ) · Bᵀ       x: [N, d_in], A: [r, d_in], B: [d_out, r] → [N, d_out]
///
/// With zero-knowledge folders (the owner's keys and this contributor's committed circuits, `ZKLoRATool`),
/// `POST /v1/prove` answers a proof that the delta of a challenged row equals B·A·x for the committed A and B.
/// A bearer token guards every route but `/healthz`, as `paris serve expert` does.
public final class LoRAServer: @unchecked Sendable {
    /// Where proofs come from: the tool, the owner's keys (one folder per layer shape) and the contributor's
    /// committed circuits (one folder per layer), as `paris zk setup` and `paris contribute pack --private` made them.
    public struct Proving: Sendable {
        public var tool: ZKLoRATool, owner: URL, contributor: URL, rows: Int
        public init(tool: ZKLoRATool, owner: URL, contributor: URL, rows: Int = 1) {
            (self.tool, self.owner, self.contributor, self.rows) = (tool, owner, contributor, rows)
        }
    }

    public let info: LoRAWire.Info
    /// path → (A [r, in], B [out, r]).
    let weights: [String: (a: Tensor, b: Tensor)]
    let proving: Proving?
    let token: [UInt8]?
    let host: String, port: Int
    let work = DispatchQueue(label: "paris-serve-lora")
    let lock = NSLock()
    var deltas = 0, proofs = 0, refused = 0

    /// Loads `lora` (`paris train lora`'s folder: adapter_config.json + adapter_model.safetensors).
    public init(lora: URL, proving: Proving?, token: String?, host: String = "127.0.0.1", port: Int = 8091) throws {
        guard (0...65535).contains(port) else { throw APIError(500, field: "port", "the port must be within 0…65535, not \(port)") }
        if let token, token.isEmpty { throw APIError(500, field: "token", "the token is empty") }
        let checkpoint = try LoRACheckpoint.read(from: lora)
        let tensors = try SafeTensors.load(lora.appendingPathComponent(LoRACheckpoint.weightsName)).tensors
        var weights: [String: (a: Tensor, b: Tensor)] = [:], layers: [LoRAWire.Layer] = []
        for key in tensors.keys.sorted() where key.hasSuffix(".lora_A.weight") {
            let path = String(key.dropFirst(LoRA.keyPrefix.count).dropLast(".lora_A.weight".count))
            guard let a = tensors[key], let b = tensors[LoRA.keyPrefix + path + ".lora_B.weight"] else {
                throw RunError("\(lora.path): \(path) has lora_A but no lora_B")
            }
            weights[path] = (a, b)
            layers.append(.init(path: path, dIn: a.shape[1], dOut: b.shape[0], rank: a.shape[0]))
        }
        if let proving {
            for layer in layers {
                let shape = ZKLoRATool.Shape(dIn: layer.dIn, dOut: layer.dOut, rank: layer.rank, rows: proving.rows)
                for folder in [ZKLoRATool.ownerFolder(proving.owner, shape),
                               ZKLoRATool.contributorFolder(proving.contributor, layer: layer.path)]
                where !FileManager.default.fileExists(atPath: folder.path) {
                    throw ZKError("\(folder.path) is missing: layer \(layer.path) cannot be proved")
                }
            }
        }
        info = LoRAWire.Info(baseSHA256: checkpoint.baseSHA256, layers: layers, proofRows: proving?.rows)
        self.weights = weights
        self.proving = proving
        self.token = token.map { Array($0.utf8) }
        self.host = host
        self.port = port
    }

    /// Deltas and proofs answered 200, and requests refused for their token.
    public var counts: (deltas: Int, proofs: Int, refused: Int) { lock.withLock { (deltas, proofs, refused) } }

    /// Serves until the task is cancelled (or SIGINT/SIGTERM with `handleSignals`); `onRunning` gets the port.
    public func run(handleSignals: Bool = false, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let router = Router()
        router.get("/healthz") { _, _ in
            let (deltas, proofs, refused) = self.counts
            return ParisServer.json(["status": "ok", "deltas": deltas, "proofs": proofs, "refused": refused])
        }
        router.get("/v1/info", use: guarded { _ in
            ParisServer.response(JSONText.encode(self.info), contentType: "application/json")
        })
        router.post("/v1/delta", use: guarded { request in try await self.answer(request, prove: false) })
        router.post("/v1/prove", use: guarded { request in try await self.answer(request, prove: true) })
        try await ParisServer.serve(router, host: host, port: port, name: "paris-lora", handleSignals: handleSignals,
                                    onRunning: onRunning)
    }

    /// `POST /v1/delta` and `/v1/prove`: the layer from `?layer=`, the body checked against its input width.
    func answer(_ request: Request, prove: Bool) async throws -> Response {
        guard let path = request.uri.queryParameters.get("layer") else {
            throw APIError(400, field: "layer", "name the adapted layer: ?layer=PATH (GET /v1/info lists them)")
        }
        guard let layer = info.layers.first(where: { $0.path == path }), let (a, b) = weights[path] else {
            throw APIError(404, field: "layer", "no adapted layer \(path); GET /v1/info lists them")
        }
        if prove && proving == nil { throw APIError(404, "this server was started without proofs (--zk-owner, --zk)") }
        let limit = LoRAWire.maxRows * layer.dIn * 4 + (1 << 16)
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: limit) } catch is NIOTooManyBytesError {
            throw APIError(413, "the body is larger than \(limit) bytes (\(LoRAWire.maxRows) rows)")
        }
        let body = Array(buffer.readableBytesView)
        let answer: [UInt8] = try await withCheckedThrowingContinuation { continuation in
            work.async {
                continuation.resume(with: Result {
                    let x: Tensor
                    do {
                        x = try LoRAWire.decode(body, LoRAWire.x, columns: layer.dIn, rows: prove ? self.proving?.rows : nil)
                    } catch let e as VelocityWire.WireError { throw APIError(400, field: e.tensor, e.description) }
                    if prove { return try self.proof(layer, x) }
                    // delta = (x · Aᵀ) · Bᵀ: [N, d_out]
                    let delta = try withNoGrad { try x.matmul(a.transpose(0, 1)).matmul(b.transpose(0, 1)) }
                    return try LoRAWire.encode(LoRAWire.delta, delta)
                })
            }
        }
        lock.withLock { if prove { proofs += 1 } else { deltas += 1 } }
        return ParisServer.response(answer, contentType: prove ? "application/json" : "application/octet-stream")
    }

    /// A proof for x [rows, d_in] of `layer`, made in a scratch folder that is removed afterwards.
    func proof(_ layer: LoRAWire.Layer, _ x: Tensor) throws -> [UInt8] {
        guard let proving else { throw APIError(404, "no proofs") }
        let shape = ZKLoRATool.Shape(dIn: layer.dIn, dOut: layer.dOut, rank: layer.rank, rows: proving.rows)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("paris-prove-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let started = Date()
        let bytes = try proving.tool.prove(contrib: ZKLoRATool.contributorFolder(proving.contributor, layer: layer.path),
                                           owner: ZKLoRATool.ownerFolder(proving.owner, shape), x: x, work: scratch)
        return JSONText.encode(LoRAWire.Proof(proof: Data(bytes).base64EncodedString(),
                                              proveSeconds: Date().timeIntervalSince(started)))
    }

    func guarded(_ body: @escaping @Sendable (Request) async throws -> Response)
        -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        ParisServer.guarded(token: token, onRefused: { self.lock.withLock { self.refused += 1 } }, body)
    }
}

extension ServeJob {
    /// `paris serve lora`: serves the LoRA in `lora` until SIGINT/SIGTERM; blocks the calling thread.
    public static func runLoRA(lora: URL, proving: LoRAServer.Proving?, host: String, port: Int, tokenFile: URL?,
                               log: @escaping @Sendable (String) -> Void) throws {
        let token = try tokenFile.map { try RemoteExpert.token(file: $0) }
        let server = try LoRAServer(lora: lora, proving: proving, token: token, host: host, port: port)
        try block {
            try await server.run(handleSignals: true) { port in
                log("serving the deltas of \(server.info.layers.count) LoRA layer(s) of \(lora.path) at "
                    + "http://\(host):\(port)/ (POST /v1/delta" + (proving != nil ? ", POST /v1/prove" : "")
                    + (token != nil ? "; bearer token required)" : "; no token asked)"))
            }
        }
    }
}
