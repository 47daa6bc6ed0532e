import ParisModels
import Torch
import XCTest

final class ModulateTests: XCTestCase {
    func testModulateBroadcastsOverTokens() throws {
        let x = try Tensor.ones([2, 3, 4])
        let shift = try Tensor.full([2, 4], 0.5)
        let scale = try Tensor.full([2, 4], 1.0)
        let y = try modulate(x, shift: shift, scale: scale)
        XCTAssertEqual(y.shape, [2, 3, 4])
        XCTAssertEqual(try y.mean().item(), 2.5, accuracy: 1e-6)  // 1·(1 + 1) + 0.5
    }
}
