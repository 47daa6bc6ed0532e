import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// The wire format of a remote expert (`paris serve expert`, `POST /v1/velocity`): both bodies are safetensors.
///
/// Request tensors: `x` [B, C, H, W] float32 (x_t), `t` [B] float32 (network time t·1000), `guidance_scale` [1]
/// float64 (the expert's own CFG scale), and for conditional samples `text_tokens` [B, L, D] float32 with
/// `text_mask` [B, L] bool (absent: the expert's null condition, unconditional). Response: `v` [B, C, H, W] float32,
/// the expert's guided velocity (CFG applied by the expert, as locally). Nothing else is accepted: an unknown name,
/// a wrong dtype or shape, a batch over the limit or a truncated body is an error naming the tensor.
public enum VelocityWire {
    public static let x = "x", t = "t", tokens = "text_tokens", mask = "text_mask", guidance = "guidance_scale"
    public static let v = "v"
    /// The largest batch one request may carry.
    public static let maxBatch = 256

    /// The inputs an expert takes, from its config: what a request must match.
    public struct Shape: Codable, Sendable, Equatable {
        public var channels: Int, imageSize: Int, textLength: Int, textDim: Int

        public init(channels: Int, imageSize: Int, textLength: Int, textDim: Int) {
            self.channels = channels
            self.imageSize = imageSize
            self.textLength = textLength
            self.textDim = textDim
        }

        enum CodingKeys: String, CodingKey {
            case channels, imageSize = "image_size", textLength = "text_length", textDim = "text_dim"
        }
    }

    /// A decoded request.
    public struct Request {
        public let x: Tensor           // [B, C, H, W]
        public let t: Tensor           // [B]
        public let text: TextCondition?
        public let guidance: Double
    }

    /// A request or response that breaks the format; `tensor` names the offending tensor (nil: the body itself).
    public struct WireError: Error, CustomStringConvertible, Sendable {
        public let tensor: String?
        public let description: String
        public init(_ tensor: String?, _ description: String) {
            self.tensor = tensor
            self.description = description
        }
    }

    /// The request body for x [B, C, H, W], network time [B], the prompts (nil: unconditional) and the scale.
    public static func encode(x: Tensor, t: Tensor, text: TextCondition?, guidance: Double) throws -> [UInt8] {
        var tensors: [String: Tensor] = [
            Self.x: try x.to(device: .cpu, dtype: .float32).contiguous(),
            Self.t: try t.to(device: .cpu, dtype: .float32).contiguous(),
            Self.guidance: try Tensor([guidance]),
        ]
        if let text {
            tensors[tokens] = try text.tokens.to(device: .cpu, dtype: .float32).contiguous()
            if let m = text.mask { tensors[mask] = try m.to(device: .cpu, dtype: .bool).contiguous() }
        }
        return try SafeTensors.serialize(tensors)
    }

    /// Parses and checks a request body against the expert's `shape`.
    public static func decodeRequest(_ body: [UInt8], shape: Shape, device: Device = .cpu) throws -> Request {
        let file: SafeTensorsFile
        do { file = try SafeTensors.decode(body, name: "request body") } catch { throw WireError(nil, "\(error)") }
        let allowed: Set<String> = [x, t, tokens, mask, guidance]
        for name in file.names where !allowed.contains(name) {
            throw WireError(name, "unknown tensor '\(name)'; a velocity request holds "
                + [x, t, guidance, tokens, mask].joined(separator: ", "))
        }
        func get(_ name: String, _ dtype: DType, _ expected: [Int]) throws -> Tensor {
            guard let tensor = file.tensors[name] else { throw WireError(name, "the tensor '\(name)' is missing") }
            guard tensor.dtype == dtype else {
                throw WireError(name, "'\(name)' must be \(SafeTensors.name(of: dtype)), not \(SafeTensors.name(of: tensor.dtype))")
            }
            guard tensor.shape == expected else {
                throw WireError(name, "'\(name)' must have shape \(expected), not \(tensor.shape)")
            }
            return tensor
        }
        guard let first = file.tensors[x]?.shape.first else { throw WireError(x, "the tensor 'x' is missing") }
        let b = first
        guard (1...maxBatch).contains(b) else { throw WireError(x, "the batch must be 1…\(maxBatch), not \(b)") }
        let xt = try get(x, .float32, [b, shape.channels, shape.imageSize, shape.imageSize])
        let tt = try get(t, .float32, [b])
        let g = try get(guidance, .float64, [1])
        let scale = try g.item()
        guard scale.isFinite else { throw WireError(guidance, "'guidance_scale' must be finite, not \(scale)") }
        var text: TextCondition? = nil
        if file.tensors[tokens] != nil || file.tensors[mask] != nil {
            let tok = try get(tokens, .float32, [b, shape.textLength, shape.textDim])
            let m = try file.tensors[mask].map { _ in try get(mask, .bool, [b, shape.textLength]) }
            text = try TextCondition(tokens: tok, mask: m).to(device: device)
        }
        for (name, tensor) in [(x, xt), (t, tt)] + (text.map { [(tokens, $0.tokens)] } ?? []) {
            guard try NonFinite.isFinite(tensor) else { throw WireError(name, "'\(name)' holds NaN or ∞") }
        }
        return Request(x: try xt.to(device: device), t: try tt.to(device: device), text: text, guidance: scale)
    }

    /// The response body for a velocity v [B, C, H, W].
    public static func encodeResponse(_ velocity: Tensor) throws -> [UInt8] {
        try SafeTensors.serialize([v: try velocity.to(device: .cpu, dtype: .float32).contiguous()])
    }

    /// Parses a response: exactly `v` of `shape` (the request's x shape), float32 and finite.
    public static func decodeResponse(_ body: [UInt8], shape expected: [Int]) throws -> Tensor {
        let file: SafeTensorsFile
        do { file = try SafeTensors.decode(body, name: "response body") } catch { throw WireError(nil, "\(error)") }
        guard file.names == [v], let velocity = file.tensors[v] else {
            throw WireError(nil, "the response must hold exactly the tensor 'v', not \(file.names)")
        }
        guard velocity.dtype == .float32, velocity.shape == expected else {
            throw WireError(v, "'v' is \(SafeTensors.name(of: velocity.dtype)) \(velocity.shape), expected F32 \(expected)")
        }
        guard try NonFinite.isFinite(velocity) else { throw WireError(v, "'v' holds NaN or ∞") }
        return velocity
    }
}
