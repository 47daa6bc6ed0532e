import ParisDiffusion
import Torch
import XCTest

/// Classifier-free guidance, v = v_u + s·(v_c − v_u), against hand computations.
final class GuidanceTests: XCTestCase {
    /// s = 0 is the unconditional model, s = 1 the conditional one, s = 4 is 3 + 4·(1 − 3) = −5 etc.
    func testCombineByHand() throws {
        let vc = try Tensor([1, 2, -0.5] as [Float]), vu = try Tensor([3, -1, 0.5] as [Float])
        let cases: [(Double, [Float])] = [(0, [3, -1, 0.5]), (1, [1, 2, -0.5]), (4, [-5, 11, -3.5])]
        for (s, expected) in cases {
            let v = try Guidance.combine(conditional: vc, unconditional: vu, scale: s)
            XCTAssertEqual(try v.toArray(as: Float.self), expected, "s = \(s)")
        }
        XCTAssertFalse(Guidance.isGuided(scale: 1))
        XCTAssertTrue(Guidance.isGuided(scale: 0))
        XCTAssertTrue(Guidance.isGuided(scale: 4))
    }

    /// One pass sees [x; x] and [t; t]; the first half of its output is the conditional branch.
    func testOnePassDoublesTheBatchAndTakesTheConditionalHalfFirst() throws {
        let x = try Tensor([10, 20] as [Float], shape: [2, 1]), t = try Tensor([500, 500] as [Float])
        let condition = try Tensor([1, 2] as [Float], shape: [2, 1]), null = try Tensor.zeros([2, 1])
        let both = try Guidance.stack(condition, null)
        XCTAssertEqual(try both.flatten().toArray(as: Float.self), [1, 2, 0, 0])
        var calls = 0
        let v = try Guidance.onePass(x: x, t: t, scale: 4) { xx, tt in
            calls += 1
            XCTAssertEqual(try xx.flatten().toArray(as: Float.self), [10, 20, 10, 20])
            XCTAssertEqual(try tt.toArray(as: Float.self), [500, 500, 500, 500])
            return try xx + both  // v_c = x + c, v_u = x
        }
        XCTAssertEqual(calls, 1)
        XCTAssertEqual(try v.flatten().toArray(as: Float.self), [14, 28])  // x + 4·c
    }
}
