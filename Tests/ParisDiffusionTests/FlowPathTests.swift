import ParisDiffusion
import Torch
import XCTest

final class FlowPathTests: XCTestCase {
    /// t = 0 is data, t = 1 is noise, and the velocity points from data to noise.
    func testEndpointsAndVelocity() throws {
        let x0 = try Tensor.zeros([2, 1, 2, 2]), noise = try Tensor.ones([2, 1, 2, 2])
        let xt = try FlowPath.interpolate(x0: x0, noise: noise, t: Tensor([0, 1] as [Float]))
        XCTAssertEqual(try xt.select(0, 0).sum().item(), 0)
        XCTAssertEqual(try xt.select(0, 1).sum().item(), 4)
        XCTAssertEqual(try FlowPath.velocity(x0: x0, noise: noise).mean().item(), 1)
    }
}
