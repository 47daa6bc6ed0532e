import Foundation
import XCTest

/// The environment variable that names the interop tests' Python.
public let interopPythonVariable = "PARIS_INTEROP_PYTHON"

/// The interpreter through which the interop tests have Python read the files we write: the small venv (numpy,
/// safetensors, ml_dtypes, Pillow; no torch) that scripts/interop-venv.sh makes once in the per-user cache, and that
/// scripts/test.sh exports as `PARIS_INTEROP_PYTHON`.
///
/// When the variable is unset: the test is skipped (this throws XCTSkip), except under CI (`CI` set, and not `0` or
/// `false`), where a skipped interop test would hide that Python never read our files: there it is an XCTFail, and
/// nil comes back for the caller to return on. A variable that is set but names no executable always fails.
/// `what`: what the test checks with Python, for the messages.
public func interopPython(_ what: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL? {
    let env = ProcessInfo.processInfo.environment
    let setUp = "run the tests with scripts/test.sh, which makes the venv, or `export \(interopPythonVariable)=$(scripts/interop-venv.sh)`"
    guard let path = env[interopPythonVariable], !path.isEmpty else {
        if let ci = env["CI"], !ci.isEmpty, ci != "0", ci.lowercased() != "false" {
            XCTFail("\(interopPythonVariable) is not set, so \(what) cannot be checked, and a skipped interop test "
                    + "under CI is a failure: \(setUp)", file: file, line: line)
            return nil
        }
        throw XCTSkip("\(interopPythonVariable) is not set: \(what) not checked (\(setUp))", file: file, line: line)
    }
    guard FileManager.default.isExecutableFile(atPath: path) else {
        XCTFail("\(interopPythonVariable)=\(path) is not an executable file: \(setUp)", file: file, line: line)
        return nil
    }
    return URL(fileURLWithPath: path)
}
