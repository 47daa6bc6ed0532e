import XCTest

@testable import Torch

/// Runs one fixture case written by `scripts/fixtures/ops.py`'s `case()`: rebuilds the inputs `<name>.<input>` as
/// fresh leaves (those in `grads` require a gradient), applies `f`, compares the output with `<name>.out` (values
/// and dtype), then back-propagates (out · R).sum() and compares each input's gradient with `<name>.grad.<input>`.
func checkCase(_ fx: [String: Tensor], _ name: String, inputs: [String], grads: [String] = [],
               rtol: Double = 1e-5, atol: Double = 1e-5, gradRtol: Double? = nil, gradAtol: Double? = nil,
               file: StaticString = #filePath, line: UInt = #line,
               _ f: ([String: Tensor]) throws -> Tensor) throws {
    var xs: [String: Tensor] = [:]
    for k in inputs {
        let t = try tensor(fx, "\(name).\(k)", file: file, line: line).clone()
        if grads.contains(k) { try t.requiresGrad(true) }
        xs[k] = t
    }
    let out = try f(xs)
    let want = try tensor(fx, "\(name).out", file: file, line: line)
    XCTAssertEqual(out.dtype, want.dtype, "\(name): dtype", file: file, line: line)
    try assertClose(out, want, rtol: rtol, atol: atol, "\(name) forward", file: file, line: line)
    guard !grads.isEmpty else { return }
    let r = try tensor(fx, "\(name).R", file: file, line: line)
    try (out * r).sum().backward()
    for k in grads {
        guard let g = xs[k]?.grad else {
            XCTFail("\(name): no gradient for \(k)", file: file, line: line)
            continue
        }
        try assertClose(g, try tensor(fx, "\(name).grad.\(k)", file: file, line: line), rtol: gradRtol ?? rtol,
                        atol: gradAtol ?? atol, "\(name) d/d\(k)", file: file, line: line)
    }
}

/// Asserts the same shape, the same dtype and bit-identical values.
func assertEqualTensors(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath,
                        line: UInt = #line) throws {
    XCTAssertEqual(a.shape, b.shape, "\(what): shape", file: file, line: line)
    XCTAssertEqual(a.dtype, b.dtype, "\(what): dtype", file: file, line: line)
    guard a.shape == b.shape, a.dtype == b.dtype else { return }
    XCTAssertEqual(try a.bytes(), try b.bytes(), "\(what): values differ", file: file, line: line)
}

/// Creation, random numbers, element-wise arithmetic, comparisons and matmul against PyTorch 2.11.
final class OpsParityTests: XCTestCase {
    func testRandomNumbersAreBitIdenticalToTorch() throws {
        let fx = try fixture("ops_random")
        Runtime.manualSeed(1234)
        // The same calls in the same order as ops.py's random().
        try assertEqualTensors(try Tensor.randn([3, 5]), try tensor(fx, "randn"), "randn")
        try assertEqualTensors(try Tensor.randn([1000]), try tensor(fx, "randn_long"), "randn (vectorised)")
        try assertEqualTensors(try Tensor.rand([4, 4]), try tensor(fx, "rand"), "rand")
        try assertEqualTensors(try Tensor.randint(-5, 10, [20]), try tensor(fx, "randint"), "randint")
        try assertEqualTensors(try Tensor.randperm(17), try tensor(fx, "randperm"), "randperm")
        try assertEqualTensors(try Tensor.randn([2, 9], dtype: .bfloat16), try tensor(fx, "randn_bf16"), "randn bf16")
        try assertEqualTensors(try Tensor.rand([6], dtype: .float64), try tensor(fx, "rand_f64"), "rand f64")
        let probs = try tensor(fx, "multinomial.probs")
        try assertEqualTensors(try probs.multinomial(4), try tensor(fx, "multinomial"), "multinomial")
        try assertEqualTensors(try probs.multinomial(10, replacement: true), try tensor(fx, "multinomial_repl"),
                               "multinomial with replacement")
        let u = try Tensor.empty([3, 4])
        try u.uniform_(-2, 3)
        try assertEqualTensors(u, try tensor(fx, "uniform_"), "uniform_")
        let n = try Tensor.empty([25])
        try n.normal_(mean: 1.5, std: 0.5)
        try assertEqualTensors(n, try tensor(fx, "normal_"), "normal_")
    }

    func testSameSeedSameNumbers() throws {
        Runtime.manualSeed(7)
        let a = try Tensor.randn([64])
        Runtime.manualSeed(7)
        let b = try Tensor.randn([64])
        XCTAssertTrue(try a.equal(b))
        XCTAssertFalse(try a.equal(try Tensor.randn([64])))
    }

    func testCreation() throws {
        let fx = try fixture("ops_random")
        try assertEqualTensors(try Tensor.arange(0, 10, step: 3), try tensor(fx, "arange_int"), "arange int")
        try assertEqualTensors(try Tensor.arange(0.5, 2, step: 0.25, dtype: .float32), try tensor(fx, "arange_float"),
                               "arange float")
        try assertEqualTensors(try Tensor.linspace(-1, 1, steps: 7), try tensor(fx, "linspace"), "linspace")
        try assertEqualTensors(try Tensor.full([2, 3], 2.5), try tensor(fx, "full"), "full")
        try assertEqualTensors(try Tensor.full([2], 0.1, dtype: .bfloat16), try tensor(fx, "full_bf16"), "full bf16")
        try assertEqualTensors(try Tensor.full([3], 7, dtype: .int32), try tensor(fx, "full_i32"), "full i32")
        let z = try Tensor.zeros([2, 0, 3])
        XCTAssertEqual(z.shape, [2, 0, 3])
        XCTAssertEqual(z.count, 0)
        XCTAssertEqual(try z.toArray(as: Float.self), [])
        XCTAssertEqual(try Tensor.ones([2, 2], dtype: .int64).toArray(as: Int64.self), [1, 1, 1, 1])
        let s = try Tensor(scalar: 3.5, dtype: .float64)
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(try s.item(), 3.5)
        XCTAssertEqual(try Tensor(scalar: 9, dtype: .int32).itemInt(), 9)
        XCTAssertEqual(try Tensor.empty([4], dtype: .bfloat16).dtype, .bfloat16)
    }

    func testBinaryOpsBroadcastAndGradients() throws {
        let fx = try fixture("ops_elementwise")
        let ops: [(String, (Tensor, Tensor) throws -> Tensor)] = [
            ("add", { try $0 + $1 }), ("sub", { try $0 - $1 }), ("mul", { try $0 * $1 }), ("div", { try $0 / $1 }),
            ("maximum", { try $0.maximum($1) }), ("minimum", { try $0.minimum($1) }), ("atan2", { try $0.atan2($1) }),
            ("pow", { try $0.pow($1) }),
        ]
        for (name, op) in ops {
            try checkCase(fx, "bin_\(name)", inputs: ["a", "b"], grads: ["a", "b"]) { try op($0["a"]!, $0["b"]!) }
        }
        try checkCase(fx, "pow_scalar", inputs: ["x"], grads: ["x"]) { try $0["x"]!.pow(3) }
    }

    func testScalarOps() throws {
        let fx = try fixture("ops_elementwise")
        try checkCase(fx, "scalar_add", inputs: ["x"]) { try $0["x"]! + 2.5 }
        try checkCase(fx, "scalar_rsub", inputs: ["x"], grads: ["x"]) { try 2.5 - $0["x"]! }
        try checkCase(fx, "scalar_mul", inputs: ["x"]) { try $0["x"]! * -1.5 }
        try checkCase(fx, "scalar_rdiv", inputs: ["x"], grads: ["x"]) { try 3.0 / $0["x"]! }
        try checkCase(fx, "scalar_div", inputs: ["x"]) { try $0["x"]! / 4.0 }
        try checkCase(fx, "remainder", inputs: ["x"]) { try ($0["x"]! * 5).remainder(3) }
        try checkCase(fx, "floor_divide", inputs: ["x"]) { try ($0["x"]! * 5).floorDivide(2) }
        try checkCase(fx, "scalar_add", inputs: ["x"]) { try 2.5 + $0["x"]! }
        try checkCase(fx, "scalar_mul", inputs: ["x"]) { try -1.5 * $0["x"]! }

        // A Double never promotes a floating tensor (bf16 * 0.1 is bf16, rounded as PyTorch rounds it)...
        let xb = try tensor(fx, "bf16_mul.x")
        try assertEqualTensors(try xb * 0.1, try tensor(fx, "bf16_mul.out"), "bf16 * 0.1")
        try assertEqualTensors(try xb + 1.0 / 3.0, try tensor(fx, "bf16_add.out"), "bf16 + 1/3")
        XCTAssertEqual(try (0.1 * xb).dtype, .bfloat16)
        // ...but an integer tensor times a float becomes float32, and true division of integers is float32.
        let xi = try tensor(fx, "int_mul_float.x")
        try assertEqualTensors(try xi * 2.5, try tensor(fx, "int_mul_float.out"), "int64 * 2.5")
        try assertEqualTensors(try xi + 2, try tensor(fx, "int_add_int.out"), "int64 + 2")
        try assertEqualTensors(try xi / 2, try tensor(fx, "int_div.out"), "int64 / 2")
    }

    func testIntScalarsBehaveAsPythonInts() throws {
        let idx = try Tensor([0, 1, 5] as [Int64])
        XCTAssertEqual(try (idx + 1).toArray(as: Int64.self), [1, 2, 6])
        XCTAssertEqual(try (2 * idx - 1).toArray(as: Int64.self), [-1, 1, 9])
        XCTAssertEqual(try (10 - idx).toArray(as: Int64.self), [10, 9, 5])
        XCTAssertEqual(try idx.remainder(2).toArray(as: Int64.self), [0, 1, 1])
        XCTAssertEqual(try idx.floorDivide(2).toArray(as: Int64.self), [0, 0, 2])
        XCTAssertEqual(try idx.pow(2).toArray(as: Int64.self), [0, 1, 25])
        XCTAssertEqual(try idx.clamp(min: 1, max: 4).toArray(as: Int64.self), [1, 1, 4])
        XCTAssertEqual(try (idx / 2).toArray(as: Float.self), [0, 0.5, 2.5])  // true division
        XCTAssertEqual(try (1 / (idx + 1)).toArray(as: Float.self), [1, 0.5, 1 / Float(6)])
        XCTAssertEqual(try (idx * 0.5).dtype, .float32)
        let divisor = try Tensor([2, 2, 3] as [Int64])
        XCTAssertEqual(try idx.remainder(divisor).toArray(as: Int64.self), [0, 1, 2])
        XCTAssertEqual(try idx.floorDivide(divisor).toArray(as: Int64.self), [0, 0, 1])
        try idx.add_(1)
        try idx.mul_(3)
        try idx.sub_(1)
        XCTAssertEqual(try idx.toArray(as: Int64.self), [2, 5, 17])
        let i32 = try Tensor([7] as [Int32])
        XCTAssertEqual(try (i32 + 1).dtype, .int32)  // a scalar does not promote int32 to int64
        let bf = try Tensor.ones([2], dtype: .bfloat16)
        XCTAssertEqual(try (bf * 3).dtype, .bfloat16)
        XCTAssertEqual(try bf.clamp(min: 0).dtype, .bfloat16)
        let u8 = try Tensor([250] as [UInt8])
        XCTAssertEqual(try (u8 + 10).toArray(as: UInt8.self), [4])  // wraps, as PyTorch's uint8
    }

    func testComparisonsAndLogic() throws {
        let fx = try fixture("ops_elementwise")
        let a = try tensor(fx, "cmp.a"), b = try tensor(fx, "cmp.b")
        let ops: [(String, (Tensor, Tensor) throws -> Tensor, (Tensor, Double) throws -> Tensor)] = [
            ("eq", { try $0.eq($1) }, { try $0.eq($1) }), ("ne", { try $0.ne($1) }, { try $0.ne($1) }),
            ("lt", { try $0.lt($1) }, { try $0.lt($1) }), ("le", { try $0.le($1) }, { try $0.le($1) }),
            ("gt", { try $0.gt($1) }, { try $0.gt($1) }), ("ge", { try $0.ge($1) }, { try $0.ge($1) }),
        ]
        for (name, t, s) in ops {
            try assertEqualTensors(try t(a, b), try tensor(fx, "cmp.\(name)"), name)
            try assertEqualTensors(try s(a, 2), try tensor(fx, "cmp.\(name)_scalar"), "\(name) scalar")
        }
        let p = try tensor(fx, "logic.a"), q = try tensor(fx, "logic.b")
        try assertEqualTensors(try p.logicalAnd(q), try tensor(fx, "logic.and"), "and")
        try assertEqualTensors(try p.logicalOr(q), try tensor(fx, "logic.or"), "or")
        try assertEqualTensors(try p.logicalNot(), try tensor(fx, "logic.not"), "not")
        let sp = try tensor(fx, "special.x")
        try assertEqualTensors(try sp.isNaN(), try tensor(fx, "special.isnan"), "isnan")
        try assertEqualTensors(try sp.isFinite(), try tensor(fx, "special.isfinite"), "isfinite")
    }

    func testWhereMaskedFillClampLerp() throws {
        let fx = try fixture("ops_elementwise")
        let mask = try tensor(fx, "where.mask")
        try checkCase(fx, "where", inputs: ["x", "y"], grads: ["x", "y"]) { try Tensor.where(mask, $0["x"]!, $0["y"]!) }
        let mf = try tensor(fx, "masked_fill.mask")
        try checkCase(fx, "masked_fill", inputs: ["x"], grads: ["x"]) { try $0["x"]!.maskedFill(mf, -7.5) }
        try checkCase(fx, "clamp_both", inputs: ["x"], grads: ["x"]) { try $0["x"]!.clamp(min: -1, max: 0.5) }
        try checkCase(fx, "clamp_min", inputs: ["x"]) { try $0["x"]!.clamp(min: -0.3) }
        try checkCase(fx, "clamp_max", inputs: ["x"]) { try $0["x"]!.clamp(max: 0.2) }
        try checkCase(fx, "lerp", inputs: ["a", "b"], grads: ["a", "b"]) { try $0["a"]!.lerp($0["b"]!, weight: 0.3) }
    }

    func testUnaryFunctionsAndGradients() throws {
        let fx = try fixture("ops_elementwise")
        let ops: [(String, (Tensor) throws -> Tensor)] = [
            ("neg", { try -$0 }), ("abs", { try $0.abs() }), ("exp", { try $0.exp() }), ("sin", { try $0.sin() }),
            ("cos", { try $0.cos() }), ("tanh", { try $0.tanh() }), ("sigmoid", { try $0.sigmoid() }),
            ("relu", { try $0.relu() }), ("sign", { try $0.sign() }), ("floor", { try $0.floor() }),
            ("ceil", { try $0.ceil() }), ("square", { try $0.square() }), ("erf", { try $0.erf() }),
            ("expm1", { try $0.expm1() }), ("log", { try $0.log() }), ("sqrt", { try $0.sqrt() }),
            ("rsqrt", { try $0.rsqrt() }), ("reciprocal", { try $0.reciprocal() }), ("log1p", { try $0.log1p() }),
            ("silu", { try $0.silu() }), ("gelu", { try $0.gelu() }),
            ("gelu_tanh", { try $0.gelu(approximateTanh: true) }),
        ]
        for (name, op) in ops {
            try checkCase(fx, "un_\(name)", inputs: ["x"], grads: ["x"]) { try op($0["x"]!) }
        }
        try checkCase(fx, "un_round", inputs: ["x"]) { try $0["x"]!.round() }  // half to even, as PyTorch
    }

    func testMatmul() throws {
        let fx = try fixture("ops_elementwise")
        for name in ["mm", "bmm", "bcast_mm", "vm", "mv"] {
            try checkCase(fx, name, inputs: ["a", "b"], grads: ["a", "b"], rtol: 1e-5, atol: 1e-5) {
                try $0["a"]!.matmul($0["b"]!)
            }
        }
    }

    func testInPlaceUpdates() throws {
        let t = try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])
        try t.add_(try Tensor([10, 20] as [Float]))  // broadcast
        XCTAssertEqual(try t.toArray(as: Float.self), [11, 22, 13, 24])
        try t.add_(try Tensor.ones([2, 2]), alpha: -0.5)
        XCTAssertEqual(try t.toArray(as: Float.self), [10.5, 21.5, 12.5, 23.5])
        try t.sub_(try Tensor.full([2, 2], 0.5))
        try t.mul_(2)
        try t.div_(try Tensor.full([1], 2))
        try t.add_(1)
        try t.div_(2)
        XCTAssertEqual(try t.toArray(as: Float.self), [5.5, 11, 6.5, 12])
        try t.mul_(try Tensor.full([2, 2], 2))
        try t.clamp_(min: 12, max: 20)
        XCTAssertEqual(try t.toArray(as: Float.self), [12, 20, 13, 20])
        let view = try t.select(0, 1)
        try view.fill_(-1)  // writes through the view
        XCTAssertEqual(try t.toArray(as: Float.self), [12, 20, -1, -1])
        try t.copy_(try Tensor([1, 2] as [Int64]))  // broadcasts and converts
        XCTAssertEqual(try t.toArray(as: Float.self), [1, 2, 1, 2])
        try t.zero_()
        XCTAssertEqual(try t.toArray(as: Float.self), [0, 0, 0, 0])
        // bf16 stays bf16 under in-place scalar updates
        let b = try Tensor.ones([3], dtype: .bfloat16)
        try b.mul_(0.1)
        XCTAssertEqual(b.dtype, .bfloat16)
        try assertEqualTensors(b, try Tensor.full([3], 0.1, dtype: .bfloat16), "bf16 mul_")
    }

    func testDescription() throws {
        XCTAssertEqual("\(try Tensor([1, 2.5] as [Float]))", "Tensor([2], float32, cpu, [1.0, 2.5])")
        XCTAssertEqual("\(try Tensor([true, false], shape: [1, 2]))", "Tensor([1, 2], bool, cpu, [1.0, 0.0])")
        XCTAssertEqual("\(try Tensor.zeros([0, 2], dtype: .bfloat16))", "Tensor([0, 2], bfloat16, cpu)")
        XCTAssertTrue("\(try Tensor.arange(0, 20))".hasSuffix("6.0, 7.0, …])"))
        XCTAssertEqual("\(try Tensor(scalar: 3))", "Tensor([], float32, cpu, [3.0])")
    }

    func testCloneContiguousEqual() throws {
        let x = try Tensor.arange(0, 6, dtype: .float32).reshape([2, 3])
        let t = try x.transpose(0, 1)
        XCTAssertFalse(t.isContiguous)
        XCTAssertEqual(t.strides, [1, 3])
        let c = try t.contiguous()
        XCTAssertTrue(c.isContiguous)
        XCTAssertEqual(try c.toArray(as: Float.self), [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(try t.toArray(as: Float.self), [0, 3, 1, 4, 2, 5])  // toArray of a strided view
        let k = try x.clone()
        try k.fill_(1)
        XCTAssertEqual(try x.toArray(as: Float.self), [0, 1, 2, 3, 4, 5])
        XCTAssertTrue(try x.allClose(try x + 1e-7, atol: 1e-6))
        XCTAssertFalse(try x.allClose(try x + 1e-7))  // PyTorch's default atol is 1e-8
        XCTAssertFalse(try x.equal(try x + 1e-7))
        XCTAssertTrue(try x.equal(try x.clone()))
    }
}
