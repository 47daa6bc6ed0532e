import XCTest

@testable import Torch

/// Dtypes, conversions with PyTorch's rounding, Swift array round trips, devices and autocast (fixture `ops_dtypes`).
final class DTypeOpsParityTests: XCTestCase {
    func testSwiftArrayRoundTrips() throws {
        func roundTrip<T: TensorElement & Equatable>(_ values: [T], shape: [Int], file: StaticString = #filePath,
                                                        line: UInt = #line) throws {
            let t = try Tensor(values, shape: shape)
            XCTAssertEqual(t.dtype, T.dtype, file: file, line: line)
            XCTAssertEqual(t.shape, shape, file: file, line: line)
            XCTAssertEqual(try t.toArray(as: T.self), values, file: file, line: line)
            // Through another dtype that holds every value exactly, and back.
            let wide: DType = T.dtype == .bool ? .uint8 : (T.dtype.isFloatingPoint ? .float64 : .int64)
            XCTAssertEqual(try t.to(dtype: wide).to(dtype: T.dtype).toArray(as: T.self), values, file: file, line: line)
            // Bytes out, bytes in.
            let bytes = try t.bytes()
            XCTAssertEqual(bytes.count, values.count * T.dtype.size, file: file, line: line)
            let back = try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: shape, dtype: T.dtype) }
            XCTAssertEqual(try back.toArray(as: T.self), values, file: file, line: line)
        }
        try roundTrip([1.5, -2, 3.25, 0, .infinity, -0.0] as [Float], shape: [2, 3])
        try roundTrip([1e-300, -2, 1e300, 0.1] as [Double], shape: [4])
        try roundTrip([Int64.min, -1, 0, Int64.max], shape: [2, 2])
        try roundTrip([Int32.min, -7, 0, Int32.max], shape: [4, 1])
        try roundTrip([0, 1, 127, 128, 255] as [UInt8], shape: [5])
        try roundTrip([-128, 0, 127] as [Int8], shape: [3])
        try roundTrip([true, false, false, true], shape: [2, 2])
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try roundTrip([0.5, -65504, 1e-4, 3.140625] as [Float16], shape: [4])
        #endif
        try roundTrip([] as [Float], shape: [0, 3])
        let scalar = try Tensor([42] as [Int32], shape: [])
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(try scalar.itemInt(), 42)
    }

    func testConversionsRoundAsPyTorch() throws {
        let fx = try fixture("ops_dtypes")
        let src = try tensor(fx, "src")
        // The Swift array path gives the same float32 tensor as the fixture.
        let values = try src.toArray(as: Float.self)
        let mine = try Tensor(values)
        try assertEqualTensors(mine, src, "float32 from a Swift array")
        try assertEqualTensors(try mine.to(dtype: .bfloat16), try tensor(fx, "bf16"), "float32 → bf16 (round to nearest even)")
        try assertEqualTensors(try mine.to(dtype: .float16), try tensor(fx, "f16"), "float32 → f16 (inf beyond 65504)")
        try assertEqualTensors(try mine.to(device: .cpu, dtype: .bool), try tensor(fx, "bool"), "float32 → bool")
        let ints = try Tensor(Array(values.prefix(9)))
        try assertEqualTensors(try ints.to(dtype: .int32), try tensor(fx, "i32"), "float32 → int32 (truncates)")
        try assertEqualTensors(try ints.to(dtype: .int64), try tensor(fx, "i64"), "float32 → int64")
        try assertEqualTensors(try tensor(fx, "u8.src").to(dtype: .uint8), try tensor(fx, "u8"), "float32 → uint8")
        try assertEqualTensors(try tensor(fx, "bf16").to(dtype: .float16), try tensor(fx, "bf16_to_f16"), "bf16 → f16")
        // bf16 values read back as Float are exactly PyTorch's rounded values.
        let bf = try mine.to(dtype: .bfloat16).to(dtype: .float32).toArray(as: Float.self)
        XCTAssertEqual(bf[0], 0.10009765625)
        XCTAssertEqual(bf[1], 0.333984375)
        XCTAssertEqual(bf[3], 3.140625)
        // to() with nothing to change keeps the data (a view, as PyTorch's .to returns self).
        let same = try mine.to(dtype: .float32)
        try same.fill_(1)
        XCTAssertEqual(try mine.toArray(as: Float.self).first, 1)
        XCTAssertEqual(mine.device, .cpu)
    }

    func testDTypeAndDeviceNames() throws {
        for d in DType.allCases { XCTAssertEqual(DType(name: d.description), d) }
        XCTAssertEqual(DType(name: "bf16"), .bfloat16)
        XCTAssertEqual(DType(name: "f16"), .float16)
        XCTAssertNil(DType(name: "complex64"))
        XCTAssertEqual(try Device(parsing: "cpu"), .cpu)
        XCTAssertEqual(try Device(parsing: "cuda"), .cuda(0))
        XCTAssertEqual(try Device(parsing: "cuda:3"), .cuda(3))
        XCTAssertEqual(Device.cuda(2).description, "cuda:2")
        XCTAssertEqual(try Tensor.zeros([2]).device, .cpu)
    }

    func testAutocastMatmulRunsInBFloat16() throws {
        let fx = try fixture("ops_dtypes")
        let a = try tensor(fx, "autocast.a"), b = try tensor(fx, "autocast.b")
        XCTAssertFalse(isAutocastEnabled(device: .cpu))
        let (mm, lin, add) = try withAutocast(device: .cpu) {
            XCTAssertTrue(isAutocastEnabled(device: .cpu))
            return (try a.matmul(b), try a.linear(weight: try b.transpose(0, 1)), try a + a)
        }
        try assertEqualTensors(mm, try tensor(fx, "autocast.mm"), "matmul under CPU autocast")
        try assertEqualTensors(lin, try tensor(fx, "autocast.linear"), "linear under CPU autocast")
        XCTAssertEqual(add.dtype, .float32, "an addition is not autocast")
        // The state is restored afterwards, also when the body throws.
        XCTAssertFalse(isAutocastEnabled(device: .cpu))
        XCTAssertEqual(try a.matmul(b).dtype, .float32)
        XCTAssertThrowsError(try withAutocast(device: .cpu) { _ = try a.matmul(a) })
        XCTAssertFalse(isAutocastEnabled(device: .cpu))
        // Nested: the inner block's dtype applies inside it only.
        try withAutocast(device: .cpu) {
            try withAutocast(device: .cpu, dtype: .float16) { XCTAssertEqual(try a.matmul(b).dtype, .float16) }
            XCTAssertEqual(try a.matmul(b).dtype, .bfloat16)
        }
        XCTAssertEqual(try a.matmul(b).dtype, .float32)
    }

    /// `Tensor.randn(_:seed:)` draws the numbers of `torch.manual_seed(seed); torch.randn(shape)` (the global path,
    /// which the diffusion fixtures check against PyTorch) from a generator of its own: the global state is unchanged.
    func testSeededRandnEqualsManualSeedAndLeavesTheGlobalGeneratorAlone() throws {
        for (shape, seed) in [([3], UInt64(0)), ([2, 3, 8, 8], 7), ([1, 4, 32, 32], 123_456_789)] {
            Runtime.manualSeed(99)
            let before = try Runtime.rngState()
            let own = try Tensor.randn(shape, seed: seed)
            XCTAssertEqual(try Runtime.rngState(), before, "the global generator is untouched")
            Runtime.manualSeed(seed)
            XCTAssertTrue(try own.equal(try Tensor.randn(shape)), "\(shape) seed \(seed)")
        }
        XCTAssertFalse(try Tensor.randn([16], seed: 1).equal(try Tensor.randn([16], seed: 2)))
    }

    func testCUDAWhenAvailable() throws {
        guard Runtime.cudaIsAvailable else { throw XCTSkip("no CUDA device") }
        let x = try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])
        let g = try x.to(device: .cuda(0))
        XCTAssertEqual(g.device, .cuda(0))
        let y = try (g.matmul(g) + 1).to(dtype: .bfloat16)
        XCTAssertEqual(y.device, .cuda(0))
        XCTAssertEqual(try y.to(device: .cpu, dtype: .float32).toArray(as: Float.self), [8, 11, 16, 23])
        XCTAssertEqual(try g.toArray(as: Float.self), [1, 2, 3, 4])  // toArray copies from the GPU
        Runtime.manualSeed(3)
        let r1 = try Tensor.randn([8], device: .cuda(0))
        Runtime.manualSeed(3)
        XCTAssertTrue(try r1.equal(try Tensor.randn([8], device: .cuda(0))))
        let bf = try withAutocast(device: .cuda(0)) { try g.matmul(g) }
        XCTAssertEqual(bf.dtype, .bfloat16)
    }
}
