import Foundation
import ParisDiffusion
import Torch

/// The wire format of a served LoRA (`paris serve lora`): the contributor keeps A and B and answers each adapted
/// layer's unscaled delta B·A·x for the inputs the owner sends; the owner adds (α / r)·delta to its frozen base.
///
///     GET  /v1/info                     → `LoRAWire.Info` (JSON): the layers and their shapes, no weights
///     POST /v1/delta?layer=PATH  {x}    → {delta}        x: [N, d_in] F32 → delta: [N, d_out] F32 (safetensors)
///     POST /v1/prove?layer=PATH  {x}    → `LoRAWire.Proof` (JSON)   x: [rows, d_in], the circuit's rows
///
/// The delta is unscaled so that it is exactly what a zero-knowledge proof covers (`ZKLoRATool`).
public enum LoRAWire {
    public static let x = "x", delta = "delta"
    /// The most rows one delta request may carry.
    public static let maxRows = 1 << 17

    /// One adapted layer: its dotted path in the base expert and its sizes.
    public struct Layer: Codable, Sendable, Equatable {
        public var path: String
        public var dIn: Int, dOut: Int, rank: Int
        public init(path: String, dIn: Int, dOut: Int, rank: Int) {
            (self.path, self.dIn, self.dOut, self.rank) = (path, dIn, dOut, rank)
        }
        enum CodingKeys: String, CodingKey { case path, dIn = "d_in", dOut = "d_out", rank }
    }

    /// `GET /v1/info`.
    public struct Info: Codable, Sendable, Equatable {
        /// SHA-256 of the base expert's weights the LoRA adapts.
        public var baseSHA256: String
        public var layers: [Layer]
        /// The rows of one proof (its circuit's), or nil when this server does not prove.
        public var proofRows: Int?
        public init(baseSHA256: String, layers: [Layer], proofRows: Int?) {
            (self.baseSHA256, self.layers, self.proofRows) = (baseSHA256, layers, proofRows)
        }
        enum CodingKeys: String, CodingKey { case baseSHA256 = "base_sha256", layers, proofRows = "proof_rows" }
    }

    /// `POST /v1/prove`'s answer: proof.json's bytes, base64, and the seconds proving took.
    public struct Proof: Codable, Sendable {
        public var proof: String
        public var proveSeconds: Double
        public init(proof: String, proveSeconds: Double) { (self.proof, self.proveSeconds) = (proof, proveSeconds) }
        enum CodingKeys: String, CodingKey { case proof, proveSeconds = "prove_s" }
    }

    /// A body with one tensor `name` [N, d]: F32, 2-D.
    public static func encode(_ name: String, _ tensor: Tensor) throws -> [UInt8] {
        try SafeTensors.serialize([name: try tensor.to(device: .cpu, dtype: .float32).contiguous()])
    }

    /// Parses a body of exactly one tensor `name`: F32 [N, columns], 1 ≤ N ≤ `maxRows` (or exactly `rows`), finite.
    public static func decode(_ body: [UInt8], _ name: String, columns: Int, rows: Int? = nil) throws -> Tensor {
        let file: SafeTensorsFile
        do { file = try SafeTensors.decode(body, name: "\(name) body") } catch {
            throw VelocityWire.WireError(nil, "\(error)")
        }
        guard file.names == [name], let t = file.tensors[name] else {
            throw VelocityWire.WireError(nil, "the body must hold exactly the tensor '\(name)', not \(file.names)")
        }
        guard t.dtype == .float32, t.shape.count == 2, t.shape[1] == columns else {
            throw VelocityWire.WireError(name, "'\(name)' must be F32 [N, \(columns)], not "
                + "\(SafeTensors.name(of: t.dtype)) \(t.shape)")
        }
        if let rows, t.shape[0] != rows {
            throw VelocityWire.WireError(name, "'\(name)' must have \(rows) row(s), not \(t.shape[0])")
        }
        guard (1...maxRows).contains(t.shape[0]) else {
            throw VelocityWire.WireError(name, "'\(name)' must have 1…\(maxRows) rows, not \(t.shape[0])")
        }
        guard try NonFinite.isFinite(t) else { throw VelocityWire.WireError(name, "'\(name)' holds NaN or ∞") }
        return t
    }
}
