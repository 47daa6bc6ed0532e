import Foundation
@_exported import ParisTestSupport
import Torch

/// This target's fixture `Fixtures/<name>.safetensors`.
func fixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Tensor] {
    try loadFixture(name, bundle: .module, file: file, line: line)
}

/// The URL of the raw fixture file `Fixtures/<name>`.
func fixtureURL(_ name: String) -> URL {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(name)
}
