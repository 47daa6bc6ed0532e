import Foundation
import ParisData
@testable import ParisEnsemble
import ParisTestSupport
import Torch
import XCTest

/// Strategy parsing and the weights each strategy gives.
final class RoutingTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func weights(_ s: RoutingStrategy, _ p: [[Double]], available: [Bool]? = nil, oracle: [Int]? = nil,
                 seed: UInt64 = 0) throws -> [[Double]] {
        var g = SplitMix64(seed: seed)
        let r = try RoutingWeights(strategy: s, available: available ?? Array(repeating: true, count: p[0].count))
        return try r.weights(probabilities: p, oracle: oracle, generator: &g)
    }

    func assertRows(_ a: [[Double]], _ b: [[Double]], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.count, y.count, file: file, line: line)
            for (u, v) in zip(x, y) { XCTAssertEqual(u, v, accuracy: 1e-12, "\(a) vs \(b)", file: file, line: line) }
        }
    }

    func testParsing() throws {
        XCTAssertEqual(try RoutingStrategy(parsing: "top1"), .top(1))
        XCTAssertEqual(try RoutingStrategy(parsing: "top2"), .top(2))
        XCTAssertEqual(try RoutingStrategy(parsing: "topk:3"), .top(3))
        XCTAssertEqual(try RoutingStrategy(parsing: "full"), .full)
        XCTAssertEqual(try RoutingStrategy(parsing: "sample1"), .sample1)
        XCTAssertEqual(try RoutingStrategy(parsing: "oracle"), .oracle)
        for s in ["top1", "top2", "topk:5", "full", "sample1", "oracle"] {
            XCTAssertEqual(try RoutingStrategy(parsing: s).description, s)
        }
        let json = try JSONEncoder().encode([RoutingStrategy.top(3)])
        XCTAssertEqual(String(decoding: json, as: UTF8.self), "[\"topk:3\"]")
        XCTAssertEqual(try JSONDecoder().decode([RoutingStrategy].self, from: json), [.top(3)])
    }

    func testBadStrategies() {
        assertThrows({ try RoutingStrategy(parsing: "top3x") }, contains: "unknown routing strategy 'top3x'")
        assertThrows({ try RoutingStrategy(parsing: "topk:0") }, contains: "positive integer")
        assertThrows({ try RoutingStrategy(parsing: "topk:abc") }, contains: "positive integer")
        assertThrows({ try RoutingWeights(strategy: .top(5), available: [true, true, true]) },
                     contains: "asks for 5 experts, but the run has only 3")
        assertThrows({ try RoutingWeights(strategy: .full, available: [false, false]) }, contains: "no expert")
    }

    func testTop1Top2AndFull() throws {
        let p = [[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]
        assertRows(try weights(.top1, p), [[0, 1, 0], [1, 0, 0]])
        assertRows(try weights(.top2, p), [[0, 0.6 / 0.9, 0.3 / 0.9], [0.5 / 0.8, 0, 0.3 / 0.8]])
        assertRows(try weights(.top(3), p), p)
        assertRows(try weights(.full, p), p)
        // full drops p < 1e-6 and renormalises the rest.
        assertRows(try weights(.full, [[0.5, 1e-9, 0.5]]), [[0.5, 0, 0.5]])
        // ties go to the lower index.
        assertRows(try weights(.top1, [[0.4, 0.4, 0.2]]), [[1, 0, 0]])
    }

    func testMissingExpertsAreRenormalisedAway() throws {
        let p = [[0.1, 0.6, 0.3]]
        let avail = [true, false, true]
        assertRows(try weights(.top1, p, available: avail), [[0, 0, 1]])
        assertRows(try weights(.top2, p, available: avail), [[0.25, 0, 0.75]])
        assertRows(try weights(.full, p, available: avail), [[0.25, 0, 0.75]])
        // A router certain about the missing expert: uniform over the rest.
        assertRows(try weights(.full, [[0, 1, 0]], available: avail), [[0.5, 0, 0.5]])
        assertThrows({ try self.weights(.oracle, p, available: avail, oracle: [1]) }, contains: "oracle expert 1 is missing")
    }

    func testOracle() throws {
        assertRows(try weights(.oracle, [[0.9, 0.1], [0.9, 0.1]], oracle: [1, 0]), [[0, 1], [1, 0]])
        assertThrows({ try self.weights(.oracle, [[0.5, 0.5]]) }, contains: "needs each sample's cluster")
        assertThrows({ try self.weights(.oracle, [[0.5, 0.5]], oracle: [2]) }, contains: "outside 0..<2")
    }

    func testSample1IsDeterministicAndFollowsTheRouter() throws {
        let p = Array(repeating: [0.2, 0.5, 0.3], count: 2000)
        let a = try weights(.sample1, p, seed: 7), b = try weights(.sample1, p, seed: 7)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, try weights(.sample1, p, seed: 8))
        for row in a { XCTAssertEqual(row.reduce(0, +), 1); XCTAssertEqual(row.filter { $0 == 1 }.count, 1) }
        let freq = (0..<3).map { k in Double(a.filter { $0[k] == 1 }.count) / Double(a.count) }
        for (f, q) in zip(freq, [0.2, 0.5, 0.3]) { XCTAssertEqual(f, q, accuracy: 0.04) }
        // never a missing expert
        let c = try weights(.sample1, p, available: [true, false, true], seed: 3)
        XCTAssertTrue(c.allSatisfy { $0[1] == 0 })
    }

    func testEntropyAndActive() {
        XCTAssertEqual(RoutingWeights.entropy([[0.5, 0.5], [1, 0]])[0], Foundation.log(2), accuracy: 1e-12)
        XCTAssertEqual(RoutingWeights.entropy([[1, 0]])[0], 0)
        XCTAssertEqual(RoutingWeights.active([[0, 1, 0], [0, 0.5, 0.5]]), [1, 2])
    }
}
