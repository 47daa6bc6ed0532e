import Foundation
import Torch
import XCTest

/// Loads `Fixtures/<name>.safetensors` from a test target's bundle; the fixtures are written by
/// `scripts/make_fixtures.sh` from the PyTorch reference implementations.
public func loadFixture(_ name: String, bundle: Bundle, file: StaticString = #filePath,
                        line: UInt = #line) throws -> [String: Tensor] {
    guard let url = bundle.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
        XCTFail("missing fixture \(name).safetensors: run scripts/make_fixtures.sh", file: file, line: line)
        throw TorchError("missing fixture \(name)")
    }
    return try SafeTensors.load(url).tensors
}

/// The fixture tensor `key`, failing the test with a clear message when it is absent.
public func tensor(_ fx: [String: Tensor], _ key: String, file: StaticString = #filePath,
                   line: UInt = #line) throws -> Tensor {
    guard let t = fx[key] else {
        XCTFail("fixture has no tensor '\(key)'", file: file, line: line)
        throw TorchError("fixture has no tensor '\(key)'")
    }
    return t
}

/// Asserts equal shapes and |a − b| ≤ atol + rtol·|b| everywhere, reporting the largest difference.
public func assertClose(_ a: Tensor, _ b: Tensor, rtol: Double = 1e-5, atol: Double = 1e-6, _ what: String = "",
                        file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertEqual(a.shape, b.shape, "\(what): shapes differ", file: file, line: line)
    guard a.shape == b.shape else { return }
    let x = try a.to(dtype: .float64), y = try b.to(dtype: .float64)
    if try !x.allClose(y, rtol: rtol, atol: atol) {
        let maxDiff = try (x - y).abs().amax().item()
        XCTFail("\(what): max |diff| = \(maxDiff) exceeds atol \(atol) + rtol \(rtol)", file: file, line: line)
    }
}

/// Asserts that `body` throws an error whose description contains `text`.
public func assertThrows(_ body: () throws -> Any, contains text: String, file: StaticString = #filePath,
                         line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected an error containing '\(text)'", file: file, line: line)
    } catch {
        XCTAssert("\(error)".contains(text), "error '\(error)' does not mention '\(text)'", file: file, line: line)
    }
}
