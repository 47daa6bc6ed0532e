import Foundation
import ParisEnsemble
import ParisModels
import ParisZK
import Torch

/// The owner's side of a served LoRA (`paris serve lora`): each adapted `Linear` of the frozen base expert gets a
/// `RemoteLoRA.Layer` as its adapter, which sends the layer's input to the contributor and adds the answer,
///
///     y = W·x + b + (α / r)·delta,   delta = B·A·x computed by the contributor (the owner never holds A, B)
///
/// and, for a sample of the queries (`proofRate`: 1 = every one), challenges one block of `proofRows` rows of it
/// after the answer came back: the contributor proves that block with its committed circuit, and the owner verifies
/// the proof with the commitment published in the signed manifest swapped in (`ZKLoRATool.verify`). Because the
/// row is chosen after the delta is returned, a contributor that falsifies a fraction f of the rows is caught by
/// each challenge with probability about f.
public final class RemoteLoRA: @unchecked Sendable {
    /// Where the deltas come from and how hard they are checked.
    public struct Options: Sendable {
        public var url: String
        public var tokenFile: URL?
        public var timeoutSeconds: Double = 120
        /// The fraction of delta queries challenged for a proof (0: none, 1: every query).
        public var proofRate: Double = 1
        /// The tool and the owner's keys (`paris zk setup`), needed when `proofRate` > 0.
        public var zk: (tool: ZKLoRATool, owner: URL)?
        public var seed: UInt64 = 0
        public init(url: String) { self.url = url }
    }

    /// What the check did: queries answered, proofs asked and verified, and the time each side took.
    public struct Stats: Codable, Sendable, Equatable {
        public var deltas = 0, proofs = 0
        public var proveSeconds = 0.0, verifySeconds = 0.0
        public var proofRate = 0.0
        enum CodingKeys: String, CodingKey {
            case deltas, proofs, proveSeconds = "prove_s", verifySeconds = "verify_s", proofRate = "proof_rate"
        }
    }

    public let options: Options
    public let info: LoRAWire.Info
    let http: HTTPExchange
    let commitments: [String: String]
    let lock = NSLock()
    var rng: SplitMix64
    var stats = Stats()

    /// Connects (`GET /v1/info`) and keeps the commitments published in the manifest (layer path → commitment.json).
    public init(_ options: Options, commitments: [String: String]) throws {
        guard let base = URL(string: options.url), ["http", "https"].contains(base.scheme ?? ""), base.host != nil else {
            throw ContributionError("--lora-url '\(options.url)' is not an http(s) URL")
        }
        guard (0...1).contains(options.proofRate) else {
            throw ContributionError("the proof rate must be within 0…1, not \(options.proofRate)")
        }
        if options.proofRate > 0 && options.zk == nil {
            throw ContributionError("checking proofs needs the owner's zero-knowledge keys (--zk-owner); or set the proof rate to 0")
        }
        let token = try options.tokenFile.map { try RemoteExpert.token(file: $0) }
        self.options = options
        self.commitments = commitments
        http = HTTPExchange(base: base, token: token, timeoutSeconds: options.timeoutSeconds)
        rng = SplitMix64(seed: options.seed)
        stats.proofRate = options.proofRate
        let (status, body) = try Self.exchange(http, "GET", "/v1/info", body: nil, stats: Stats())
        guard status == 200, let info = try? JSONDecoder().decode(LoRAWire.Info.self, from: Data(body)) else {
            throw ContributionError("\(options.url)/v1/info answered \(status), not a LoRA server's info: "
                + String(decoding: body.prefix(300), as: UTF8.self))
        }
        if options.proofRate > 0 && info.proofRows == nil {
            throw ContributionError("the contributor at \(options.url) serves no proofs, but the proof rate is \(options.proofRate)")
        }
        self.info = info
    }

    public var counts: Stats { lock.withLock { stats } }

    /// Attaches a remote adapter with scaling α / r to each of `model`'s layers the server adapts, after checking
    /// that the served layers are exactly `expected` (the manifest's) and fit the model's `Linear`s.
    public func attach(to model: any Module, expected: [LoRAWire.Layer], scaling: Double) throws {
        guard info.layers == expected else {
            throw ContributionError("the contributor serves other layers than its signed manifest lists: "
                + "\(info.layers.map(\.path)) vs \(expected.map(\.path))")
        }
        let linears = Dictionary(model.namedModules().compactMap { p, m in (m as? Linear).map { (p, $0) } },
                                 uniquingKeysWith: { a, _ in a })
        for layer in info.layers {
            guard let linear = linears[layer.path], linear.inFeatures == layer.dIn, linear.outFeatures == layer.dOut else {
                throw ContributionError("the served layer \(layer.path) (\(layer.dIn) → \(layer.dOut)) is not a Linear of "
                    + "that size in the base expert")
            }
            linear.adapter = Layer(owner: self, layer: layer, scaling: scaling)
        }
    }

    /// One adapted layer's remote delta.
    final class Layer: LinearAdapter {
        unowned let owner: RemoteLoRA
        let layer: LoRAWire.Layer
        let scaling: Double
        init(owner: RemoteLoRA, layer: LoRAWire.Layer, scaling: Double) {
            (self.owner, self.layer, self.scaling) = (owner, layer, scaling)
        }

        /// x: [..., d_in] → (α / r)·delta: [..., d_out]
        func delta(_ x: Tensor, training: Bool) throws -> Tensor {
            let rows = try x.reshape([-1, layer.dIn])                      // [N, d_in]
            let delta = try owner.query(layer, rows)                       // [N, d_out]
            return try (delta.reshape(Array(x.shape.dropLast()) + [layer.dOut]) * scaling).to(device: x.device,
                                                                                             dtype: x.dtype)
        }
    }

    /// The contributor's delta for x [N, d_in], challenged for a proof with probability `proofRate`.
    func query(_ layer: LoRAWire.Layer, _ x: Tensor) throws -> Tensor {
        let query = ["layer": layer.path]
        let (status, body) = try Self.exchange(http, "POST", "/v1/delta", query: query,
                                               body: try LoRAWire.encode(LoRAWire.x, x), stats: counts)
        guard status == 200 else {
            throw ContributionError("the contributor answered \(status) for layer \(layer.path): "
                + String(decoding: body.prefix(300), as: UTF8.self))
        }
        let delta: Tensor
        do { delta = try LoRAWire.decode(body, LoRAWire.delta, columns: layer.dOut) } catch {
            throw ContributionError("the contributor's delta for layer \(layer.path) breaks the wire format: \(error)")
        }
        guard delta.shape[0] == x.shape[0] else {
            throw ContributionError("the contributor returned \(delta.shape[0]) rows for \(x.shape[0]) sent (layer \(layer.path))")
        }
        let challenge: Int? = lock.withLock {
            stats.deltas += 1
            let n = info.proofRows ?? 1
            guard options.proofRate > 0, Double(rng.next() >> 11) / Double(1 << 53) < options.proofRate,
                  x.shape[0] >= n else { return nil }
            return Int(rng.next() % UInt64(x.shape[0] - n + 1))
        }
        if let start = challenge { try check(layer, x: x, delta: delta, from: start) }
        return delta
    }

    /// Asks for a proof of rows start ..< start + proofRows and verifies it against the delta already returned.
    func check(_ layer: LoRAWire.Layer, x: Tensor, delta: Tensor, from start: Int) throws {
        guard let (tool, ownerKeys) = options.zk, let rows = info.proofRows else { return }
        guard let commitment = commitments[layer.path] else {
            throw ContributionError("the manifest publishes no commitment for layer \(layer.path)")
        }
        let xs = try x.slice(0, start, start + rows).contiguous()
        let ds = try delta.slice(0, start, start + rows).contiguous()
        let (status, body) = try Self.exchange(http, "POST", "/v1/prove", query: ["layer": layer.path],
                                               body: try LoRAWire.encode(LoRAWire.x, xs), stats: counts)
        guard status == 200, let answer = try? JSONDecoder().decode(LoRAWire.Proof.self, from: Data(body)),
              let proof = Data(base64Encoded: answer.proof) else {
            throw ContributionError("the contributor gave no proof for layer \(layer.path) (\(status)): "
                + String(decoding: body.prefix(300), as: UTF8.self))
        }
        let shape = ZKLoRATool.Shape(dIn: layer.dIn, dOut: layer.dOut, rank: layer.rank, rows: rows)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("paris-verify-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let started = Date()
        let verdict = try tool.verify(owner: ZKLoRATool.ownerFolder(ownerKeys, shape), commitment: commitment,
                                      x: xs, delta: ds, proof: [UInt8](proof), work: work)
        lock.withLock {
            stats.proofs += 1
            stats.proveSeconds += answer.proveSeconds
            stats.verifySeconds += Date().timeIntervalSince(started)
        }
        guard verdict.valid else {
            throw ContributionError("refused: the proof of layer \(layer.path), row \(start), does not hold: \(verdict.reason)")
        }
    }

    /// One call; a contributor that stops answering is named as such, with how far the check got.
    static func exchange(_ http: HTTPExchange, _ method: String, _ path: String, query: [String: String] = [:],
                         body: [UInt8]?, stats: Stats) throws -> (Int, [UInt8]) {
        do { return try http.call(method, path, query: query, body: body) } catch let e as HTTPExchange.Failure {
            throw ContributionError("the contributor at \(http.base.absoluteString) stopped answering after "
                + "\(stats.deltas) delta(s) and \(stats.proofs) proof(s): \(e.description)")
        }
    }
}
