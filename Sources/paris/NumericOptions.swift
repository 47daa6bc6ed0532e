import ArgumentParser

/// Every numeric option of `paris` is declared with `@Option(number: "help")` (or `name:` then `number:`), through
/// the initialisers below, so all of them parse alike:
///
/// - the value is the next argument even when it starts with `-` (`.unconditional`): swift-argument-parser would
///   otherwise take `--steps -1` for a flag `-1` and say "Missing value", and the library's own check, which names
///   the bound ("steps must be ≥ 1, not -1"), would never be reached;
/// - the text must be a number of the option's type, else the message says what it is not; a negative seed is
///   "seed must be ≥ 0" rather than a generic parse error.
protocol NumericArgument: ExpressibleByArgument, Sendable {
    /// Parses an option's value, throwing a message for text that is not a number of this type.
    static func parseOption(_ text: String) throws -> Self
}

extension Int: NumericArgument {
    static func parseOption(_ text: String) throws -> Int {
        guard let v = Int(text) else { throw ValidationError("'\(text)' is not an integer") }
        return v
    }
}

extension Double: NumericArgument {
    static func parseOption(_ text: String) throws -> Double {
        guard let v = Double(text) else { throw ValidationError("'\(text)' is not a number") }
        return v
    }
}

/// Seeds: the full UInt64 range, and a clear message for a negative one.
extension UInt64: NumericArgument {
    static func parseOption(_ text: String) throws -> UInt64 {
        if let v = UInt64(text) { return v }
        if text.hasPrefix("-"), Int64(text) != nil || Double(text) != nil {
            throw ValidationError("seed must be ≥ 0, not \(text)")
        }
        throw ValidationError("'\(text)' is not a seed (an integer from 0 to \(UInt64.max))")
    }
}

extension Option where Value: NumericArgument {
    /// A numeric option with a default value (shown in the help as swift-argument-parser shows it, which it does
    /// not do by itself for an option parsed by a transform).
    init(wrappedValue: Value, name: NameSpecification = .long, number help: ArgumentHelp) {
        var help = help
        help.abstract += " (default: \(wrappedValue.defaultValueDescription))"
        self.init(wrappedValue: wrappedValue, name: name, parsing: .unconditional, help: help,
                  transform: { try Value.parseOption($0) })
    }

    /// A required numeric option.
    init(name: NameSpecification = .long, number help: ArgumentHelp) {
        self.init(name: name, parsing: .unconditional, help: help, transform: { try Value.parseOption($0) })
    }
}

extension Option {
    /// An optional numeric option (nil when absent).
    init<T: NumericArgument>(name: NameSpecification = .long, number help: ArgumentHelp) where Value == T? {
        self.init(name: name, parsing: .unconditional, help: help, transform: { try T.parseOption($0) })
    }

    /// A repeatable numeric option (`--expert 1 --expert 3`).
    init<T: NumericArgument>(wrappedValue: [T], name: NameSpecification = .long, number help: ArgumentHelp)
    where Value == [T] {
        self.init(wrappedValue: wrappedValue, name: name, parsing: .unconditionalSingleValue, help: help,
                  transform: { try T.parseOption($0) })
    }
}
