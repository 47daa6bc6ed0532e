import Foundation

/// A JSON object's key that its type does not know: a typo (`"stepz"`) that would otherwise be ignored silently,
/// its value never used and the default taken instead. `path` is where the object is ("experts[0]", empty at the
/// top level), `suggestion` the nearest known key when one is close.
public struct UnknownKeyError: Error, CustomStringConvertible, Equatable, Sendable {
    public let key: String
    public let path: String
    public let suggestion: String?
    public let known: [String]

    public var description: String {
        "unknown key '\(key)' " + (path.isEmpty ? "at the top level" : "in \(path)") + "; "
            + (suggestion.map { "did you mean '\($0)'?" } ?? "known keys: \(known.joined(separator: ", "))")
    }

    /// The coding path as the config files' errors print it: `experts[0].resources`.
    public static func describe(_ path: [CodingKey]) -> String {
        let p = path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return p.hasPrefix(".") ? String(p.dropFirst()) : p
    }

    /// The known key nearest to `key` by edit distance, when it is within a third of the longer (at least 2 edits).
    public static func nearest(_ key: String, among known: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var previous = row[0]
                row[0] = i + 1
                for (j, cb) in b.enumerated() {
                    let old = row[j + 1]
                    row[j + 1] = min(row[j + 1] + 1, row[j] + 1, previous + (ca == cb ? 0 : 1))
                    previous = old
                }
            }
            return row[b.count]
        }
        let k = Array(key.lowercased())
        let scored = known.map { ($0, distance(k, Array($0))) }.min { $0.1 < $1.1 }
        guard let (best, d) = scored, d <= max(2, max(k.count, best.count) / 3) else { return nil }
        return best
    }
}

private struct AnyKey: CodingKey {
    let stringValue: String
    let intValue: Int? = nil
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Throws `UnknownKeyError` for the first key (in sorted order) of the object being decoded that is not one of
    /// `Keys`. Call at the start of `init(from:)` of a config read from a hand-edited file.
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let known = Keys.allCases.map(\.stringValue)
        let present = try container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).sorted()
        guard let unknown = present.first(where: { !known.contains($0) }) else { return }
        throw UnknownKeyError(key: unknown, path: UnknownKeyError.describe(codingPath),
                              suggestion: UnknownKeyError.nearest(unknown, among: known), known: known)
    }
}

extension KeyedDecodingContainer {
    /// Decodes an integer when the key is present, reporting a number that is not one of type `T` (4.5, 1e30, -1
    /// for a seed) as a type error at its key. (Foundation's JSONDecoder on Linux says only "The given data was not
    /// valid JSON", without the key.)
    public func decodeIntegerIfPresent<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        // Foundation throws its internal JSONError.numberIsNotRepresentableInSwift here, which JSONDecoder turns into
        // a path-less "not valid JSON" at the top; any error on a value that is a number is re-thrown as a type error.
        do { return try decodeIfPresent(T.self, forKey: key) } catch {
            guard let number = try? decodeIfPresent(Double.self, forKey: key) else { throw error }
            let integral = number == number.rounded()
            let shown = integral && abs(number) < 1e15 ? String(Int(number)) : "\(number)"
            let expected = !integral ? "an integer" : !T.isSigned && number < 0 ? "an integer ≥ 0"
                : "an integer from \(T.min) to \(T.max)"
            throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath + [key],
                                                           debugDescription: "expected \(expected), found \(shown)"))
        }
    }

    /// `decodeIntegerIfPresent` for a key that must be there.
    public func decodeInteger<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        guard let v = try decodeIntegerIfPresent(T.self, forKey: key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
        }
        return v
    }
}
