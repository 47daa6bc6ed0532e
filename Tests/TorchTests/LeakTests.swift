import Foundation
import XCTest

@testable import Torch

/// Every Swift Tensor frees its libtorch handle: long loops of small ops keep the resident set flat.
final class LeakTests: XCTestCase {
    private var threads = 0

    // One intra-op thread: these loops run tiny ops, where waking libtorch's thread pool costs more than the work,
    // badly so on a shared machine (a 2,000-step autograd loop took 30 s with two threads, 1.3 s with one).
    override func setUp() {
        threads = Runtime.threads
        Runtime.threads = 1
    }

    override func tearDown() { Runtime.threads = threads }

    /// The resident set size in bytes (Linux: /proc/self/statm's second field, in pages).
    func residentBytes() throws -> Int {
        #if os(Linux)
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { throw XCTSkip("unreadable /proc/self/statm") }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        throw XCTSkip("resident set size is read from /proc on Linux only")
        #endif
    }

    /// Runs `body` `warmup` times (so that allocator caches and libtorch's lazy state settle), then `iterations`
    /// times, and returns how many bytes the resident set grew during the second part.
    func growth(warmup: Int, iterations: Int, _ body: () throws -> Void) throws -> Int {
        for _ in 0..<warmup { try body() }
        let before = try residentBytes()
        for _ in 0..<iterations { try body() }
        return try residentBytes() - before
    }

    func testSmallOpsDoNotLeak() throws {
        // a and b hold 1024 floats (4 KiB) each. One iteration makes five tensors: a + b (4 KiB of data),
        // (a + b) * 2 (4 KiB), a view of it (a new TensorImpl, ~200 B, sharing storage), its sum (a 0-dim tensor,
        // 4 B of data plus ~200 B of TensorImpl) and a scalar read back to Swift. If the Swift side never freed its
        // handles, the two 4 KiB results alone would keep 100,000 × 8 KiB ≈ 800 MB alive; even leaking only the
        // handle objects (no data) would cost 100,000 × 5 × ~200 B ≈ 100 MB. The bound, 32 MiB, is well below
        // both and well above allocator noise.
        let a = try Tensor.randn([1024]), b = try Tensor.randn([1024])
        var total = 0.0
        let grown = try growth(warmup: 2_000, iterations: 100_000) {
            let c = try (a + b) * 2
            let v = try c.view([32, 32]).select(0, 3)
            total += try v.sum().item()
        }
        XCTAssertLessThan(grown, 32 << 20, "resident set grew by \(grown >> 20) MiB over 100,000 iterations")
        XCTAssertTrue(total.isFinite)
    }

    func testErrorsAndMultiOutputOpsDoNotLeak() throws {
        // 20,000 iterations, each making a failed matmul (an error message of ~100 B stored thread-locally,
        // replaced each time), a topk (two outputs) and a chunk into four views of a 4 KiB tensor. Leaked
        // outputs would cost at least 20,000 × 6 × ~200 B ≈ 24 MB of TensorImpls plus 20,000 × (2 × 40 B) of
        // topk data; the bound is 12 MiB.
        let a = try Tensor.randn([32, 32])
        let grown = try growth(warmup: 1_000, iterations: 20_000) {
            XCTAssertThrowsError(try a.matmul(try a.slice(0, 0, 5)))
            let (v, i) = try a.topk(5, dim: 0)
            _ = (v, i)
            _ = try a.chunk(4, dim: 1)
        }
        XCTAssertLessThan(grown, 12 << 20, "resident set grew by \(grown >> 20) MiB over 20,000 iterations")
    }

    func testAutogradLoopDoesNotLeak() throws {
        // 2,000 training-like steps on a 128×128 weight (64 KiB): forward, backward, an in-place update without
        // grad, zeroGrad. A leaked gradient or graph per step (each holds at least one 64 KiB tensor) would cost
        // 2,000 × 64 KiB = 125 MiB; the bound is 16 MiB.
        let w = try Tensor.randn([128, 128]).requiresGrad(true)
        let x = try Tensor.randn([4, 128])
        let grown = try growth(warmup: 200, iterations: 2_000) {
            let loss = try x.matmul(w).square().mean()
            try loss.backward()
            try withNoGrad { try w.add_(try XCTUnwrap(w.grad), alpha: -1e-6) }
            try w.zeroGrad()
        }
        XCTAssertLessThan(grown, 16 << 20, "resident set grew by \(grown >> 20) MiB over 2,000 steps")
    }

    func testArrayTransfersDoNotLeak() throws {
        // 20,000 round trips of 1,000 floats (4 KiB) through Swift arrays: leaked tensors or buffers would
        // cost 20,000 × 8 KiB ≈ 160 MB; the bound is 16 MiB.
        let values = (0..<1000).map(Float.init)
        let grown = try growth(warmup: 500, iterations: 20_000) {
            let t = try Tensor(values, shape: [10, 100])
            let back = try t.toArray(as: Float.self)
            XCTAssertEqual(back.count, 1000)
            _ = try Tensor(scalar: 2.5).item()
        }
        XCTAssertLessThan(grown, 16 << 20, "resident set grew by \(grown >> 20) MiB over 20,000 round trips")
    }
}
