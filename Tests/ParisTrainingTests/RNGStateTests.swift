import Torch
import XCTest

/// Saving and restoring libtorch's generator state repeats the same draws (what a resumed job relies on).
final class RNGStateTests: XCTestCase {
    func testCPUStateRoundTripRepeatsDraws() throws {
        Runtime.threads = 1
        Runtime.manualSeed(42)
        _ = try Tensor.randn([5])
        let state = try Runtime.rngState()
        XCTAssertFalse(state.isEmpty)
        let a = try Tensor.randn([7]).toArray(as: Float.self)
        _ = try Tensor.rand([3])
        try Runtime.setRNGState(state)
        let b = try Tensor.randn([7]).toArray(as: Float.self)
        XCTAssertEqual(a, b)
    }

    func testBadStateThrows() {
        XCTAssertThrowsError(try Runtime.setRNGState([1, 2, 3]))
    }
}
