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
