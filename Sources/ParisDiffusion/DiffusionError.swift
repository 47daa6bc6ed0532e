/// A bad configuration value or input given to ParisDiffusion, with a message that names the problem.
public struct DiffusionError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw DiffusionError(message()) }
}

/// A string-valued configuration choice (solver, time grid, schedule...). Decoding an unknown value fails with a
/// message that names the key and lists the valid choices, instead of Foundation's generic "cannot initialize".
public protocol NamedChoice: RawRepresentable, CaseIterable, Codable where RawValue == String {
    /// The JSON key the choice is read from, for error messages (`solver`, `time_grid`...).
    static var choiceKey: String { get }
}

extension NamedChoice {
    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: raw) else {
            let choices = Self.allCases.map(\.rawValue).joined(separator: ", ")
            throw DiffusionError("unknown \(Self.choiceKey) '\(raw)' (expected one of: \(choices))")
        }
        self = value
    }
}
