import XCTest

@testable import Torch

/// libtorch's autograd through the Swift API: leaves, backward, accumulation, no-grad, detach, setData.
final class AutogradTests: XCTestCase {
    func testRequiresGradAndScalarBackward() throws {
        let x = try Tensor([1, 2, 3] as [Float])
        XCTAssertFalse(x.requiresGrad)
        XCTAssertNil(x.grad)
        try x.requiresGrad(true)
        XCTAssertTrue(x.requiresGrad)
        let y = try (x * x).sum()  // d/dx = 2x
        XCTAssertTrue(y.requiresGrad)
        try y.backward()
        XCTAssertEqual(try XCTUnwrap(x.grad).toArray(as: Float.self), [2, 4, 6])
        // Integers cannot require gradients (libtorch's rule).
        XCTAssertThrowsError(try Tensor([1, 2] as [Int64]).requiresGrad(true)) {
            XCTAssertTrue("\($0)".contains("floating point"), "\($0)")
        }
    }

    func testBackwardWithGradient() throws {
        let x = try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2]).requiresGrad(true)
        let y = try x * 3
        try y.backward(gradient: try Tensor([1, 0, 2, -1] as [Float], shape: [2, 2]))
        XCTAssertEqual(try XCTUnwrap(x.grad).toArray(as: Float.self), [3, 0, 6, -3])
        // A non-scalar output without a gradient is libtorch's error, not a crash.
        let z = try x * 2
        XCTAssertThrowsError(try z.backward()) {
            XCTAssertTrue("\($0)".contains("grad can be implicitly created only for scalar outputs"), "\($0)")
        }
    }

    func testGradientsAccumulateAndZeroGrad() throws {
        let w = try Tensor([0.5, -1] as [Float]).requiresGrad(true)
        let x = try Tensor([2, 3] as [Float])
        for _ in 0..<2 { try (w * x).sum().backward() }
        XCTAssertEqual(try XCTUnwrap(w.grad).toArray(as: Float.self), [4, 6])  // two passes: 2x
        try w.zeroGrad()
        XCTAssertNil(w.grad)
        try (w * x).sum().backward()
        XCTAssertEqual(try XCTUnwrap(w.grad).toArray(as: Float.self), [2, 3])
        // retainGraph lets a graph be walked twice; without it the second walk is libtorch's error.
        let y = try (w * w).sum()
        try y.backward(retainGraph: true)
        try y.backward()
        XCTAssertEqual(try XCTUnwrap(w.grad).toArray(as: Float.self), [4, -1])  // [2, 3] + 2 · 2w
        let once = try (w * w).sum()
        try once.backward()
        XCTAssertThrowsError(try once.backward()) {
            XCTAssertTrue("\($0)".contains("backward through the graph a second time"), "\($0)")
        }
    }

    func testNoGradRecordsNothing() throws {
        let w = try Tensor.ones([3]).requiresGrad(true)
        XCTAssertTrue(isGradEnabled)
        let y = try withNoGrad { () throws -> Tensor in
            XCTAssertFalse(isGradEnabled)
            return try (w * 2).sum()
        }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(isGradEnabled)
        XCTAssertThrowsError(try y.backward())
        // Restored after a throw too.
        XCTAssertThrowsError(try withNoGrad { _ = try w.reshape([7]) })
        XCTAssertTrue(isGradEnabled)
        // In-place updates of a leaf are allowed without grad (an optimizer step), and forbidden with it.
        try withNoGrad { try w.sub_(try Tensor.full([3], 0.5)) }
        XCTAssertEqual(try w.toArray(as: Float.self), [0.5, 0.5, 0.5])
        XCTAssertThrowsError(try w.add_(1)) {
            XCTAssertTrue("\($0)".contains("leaf Variable that requires grad"), "\($0)")
        }
    }

    func testDetach() throws {
        let w = try Tensor([1, 2] as [Float]).requiresGrad(true)
        let d = try (w * 2).detach()
        XCTAssertFalse(d.requiresGrad)
        let y = try (w * d).sum()  // d is a constant: dy/dw = d
        try y.backward()
        XCTAssertEqual(try XCTUnwrap(w.grad).toArray(as: Float.self), [2, 4])
        // detach shares storage with the original.
        let shared = try w.detach()
        try shared.fill_(9)
        XCTAssertEqual(try w.toArray(as: Float.self), [9, 9])
    }

    func testSetDataKeepsIdentity() throws {
        let p = try Tensor([1, 2] as [Float]).requiresGrad(true)
        let alias = p.alias()
        try p.setData(try Tensor([5, 6, 7] as [Double]))
        XCTAssertEqual(alias.dtype, .float64)
        XCTAssertEqual(alias.shape, [3])
        XCTAssertTrue(alias.requiresGrad)
        try (p * p).sum().backward()
        XCTAssertEqual(try XCTUnwrap(alias.grad).toArray(as: Double.self), [10, 12, 14])
        XCTAssertEqual(try p.to(dtype: .bfloat16).dtype, .bfloat16)
    }

    func testNonLeafGradientAndChainedOps() throws {
        let x = try Tensor.randn([4, 3]).requiresGrad(true)
        let y = try x.softmax(dim: -1).sum()  // softmax rows sum to 1: the gradient is 0
        try y.backward()
        XCTAssertLessThan(try XCTUnwrap(x.grad).abs().amax().item(), 1e-6)
        // requiresGrad on a non-leaf is libtorch's error.
        let nonLeaf = try x * 2
        XCTAssertThrowsError(try nonLeaf.requiresGrad(false)) {
            XCTAssertTrue("\($0)".contains("leaf"), "\($0)")
        }
    }
}
