import Foundation

/// A refused request: the HTTP status, the request field at fault (nil when it is the body as a whole) and a
/// message that names the problem. Sent as `{"error": message, "field": field}` (`jsonBody`); the server goes on.
public struct APIError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The HTTP status code: 400, 404, 409, 413, 429, 500.
    public let status: Int
    /// The JSON field (`steps`, `cfg_scale`) or path part (`id`) at fault; nil for the body as a whole.
    public let field: String?
    public let message: String
    /// Seconds a client should wait before asking again (429 only).
    public var retryAfter: Int? = nil

    public init(_ status: Int, field: String? = nil, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.field = field
        self.message = message
        self.retryAfter = retryAfter
    }

    public static func badRequest(_ field: String?, _ message: String) -> APIError { APIError(400, field: field, message) }

    public var description: String { field.map { "\($0): \(message)" } ?? message }

    /// `{"error": "...", "field": "..."}` (field omitted when nil).
    public var jsonBody: [UInt8] {
        var object: [String: String] = ["error": message]
        if let field { object["field"] = field }
        return JSONText.encode(object)
    }
}

/// A JSON value as parsed from a request body, so that each field's type can be checked and named
/// (`JSONDecoder` into a struct would report "data couldn't be read" for a wrong type).
public enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }

    /// What the value is, for error messages ("a string", "a number").
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Parses a request body that must be one JSON object. Strict JSON first; a body that is only valid with the
    /// non-finite literals `NaN` / `Infinity` (as Python's `json.dumps` writes them) is parsed too, so that the
    /// field holding them is named by its own check rather than the whole body called malformed.
    public static func object(_ body: [UInt8]) throws -> [String: JSONValue] {
        let data = Data(body)
        let value: JSONValue
        if let v = try? JSONDecoder().decode(JSONValue.self, from: data) {
            value = v
        } else {
            let lenient = JSONDecoder()
            lenient.allowsJSON5 = true
            let text = String(decoding: body, as: UTF8.self)
            guard text.contains("NaN") || text.contains("Infinity"),
                  let v = try? lenient.decode(JSONValue.self, from: data) else {
                throw APIError.badRequest(nil, "the body is not valid JSON")
            }
            value = v
        }
        guard case .object(let fields) = value else {
            throw APIError.badRequest(nil, "the body must be a JSON object, not \(value.kind)")
        }
        return fields
    }
}

/// Small JSON writing helpers shared by the handlers.
enum JSONText {
    /// Any `Encodable` as compact JSON with sorted keys.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? [UInt8](encoder.encode(value))) ?? Array("{}".utf8)
    }

    /// A `JSONSerialization` object (dictionaries, arrays, strings, numbers) as compact JSON with sorted keys.
    static func serialize(_ object: Any) -> [UInt8] {
        (try? [UInt8](JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])))
            ?? Array("{}".utf8)
    }
}
