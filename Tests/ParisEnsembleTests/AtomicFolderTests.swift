import Foundation
@testable import ParisEnsemble
import ParisTestSupport
import XCTest

/// `AtomicFolder.publish`, through `renameat2` and through the plain `rename(2)` fallback: a free name is claimed,
/// a taken one is left alone without `replace` and swapped whole with it, and nothing is left beside the target.
final class AtomicFolderTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-atomic-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func staged(_ files: [String: String], for target: URL) throws -> URL {
        let s = try AtomicFolder.makeStaging(beside: target)
        XCTAssertEqual(s.deletingLastPathComponent().path, target.deletingLastPathComponent().path)
        for (name, text) in files { try Data(text.utf8).write(to: s.appendingPathComponent(name)) }
        return s
    }

    func testPublishClaimsRefusesAndReplaces() throws {
        for kernelFlags in [true, false] {
            try? FileManager.default.removeItem(at: tmp)
            let target = tmp.appendingPathComponent("samples/x")
            let first = try staged(["a": "1", "b": "2"], for: target)
            XCTAssertTrue(try AtomicFolder.publish(first, to: target, replace: false, kernelFlags: kernelFlags))
            XCTAssertFalse(FileManager.default.fileExists(atPath: first.path))
            let old = fileTree(target)
            XCTAssertEqual(old, ["a": Data("1".utf8), "b": Data("2".utf8)])

            let second = try staged(["c": "3"], for: target)
            XCTAssertFalse(try AtomicFolder.publish(second, to: target, replace: false, kernelFlags: kernelFlags))
            XCTAssertEqual(fileTree(target), old, "kernelFlags \(kernelFlags): a taken name was changed")
            XCTAssertEqual(fileTree(second), ["c": Data("3".utf8)], "the staged folder is left to the caller")

            XCTAssertTrue(try AtomicFolder.publish(second, to: target, replace: true, kernelFlags: kernelFlags))
            XCTAssertEqual(fileTree(target), ["c": Data("3".utf8)], "kernelFlags \(kernelFlags): not replaced whole")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.appendingPathComponent("samples").path),
                           ["x"], "kernelFlags \(kernelFlags): the old folder or the staging folder was left behind")
            // Replacing where nothing is yet just claims the name.
            let fresh = try staged(["d": "4"], for: tmp.appendingPathComponent("samples/y"))
            XCTAssertTrue(try AtomicFolder.publish(fresh, to: tmp.appendingPathComponent("samples/y"), replace: true,
                                                   kernelFlags: kernelFlags))
        }
    }
}
