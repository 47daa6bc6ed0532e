import XCTest

@testable import Torch

/// The nn layers against torch.nn 2.11 (fixtures `nn_*`, written by scripts/fixtures/nn.py): bit-identical
/// initialisation after the same seed, checkpoint names, outputs and gradients of every input and parameter.
final class NNParityTests: XCTestCase {
    /// Seeds and builds the layer, checks its state dict against `init.*` bit for bit (names and values), loads
    /// `param.*`, runs `forward` on the fixture inputs and compares the output and the gradients of
    /// loss = (out · r).sum() with PyTorch's.
    private func check<M: Module>(
        _ name: String, seed: UInt64, rtol: Double = 1e-5, atol: Double = 1e-5, make: () throws -> M,
        forward: (M, [String: Tensor]) throws -> Tensor, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let fx = try fixture("nn_\(name)", file: file, line: line)
        Runtime.manualSeed(seed)
        let module = try make()
        let initial = fx.filter { $0.key.hasPrefix("init.") }
        XCTAssertEqual(module.stateDictKeys().sorted(), initial.keys.map { String($0.dropFirst(5)) }.sorted(),
                       "\(name): checkpoint keys", file: file, line: line)
        for (key, t) in try module.stateDict() {
            let expected = try tensor(fx, "init.\(key)", file: file, line: line)
            XCTAssertTrue(try t.equal(expected), "\(name): \(key) is not bit-identical to PyTorch's init",
                          file: file, line: line)
        }
        var params: [String: Tensor] = [:]
        for (key, t) in fx where key.hasPrefix("param.") { params[String(key.dropFirst(6))] = t }
        try module.loadStateDict(params)

        var inputs: [String: Tensor] = [:]
        for (key, t) in fx where key.hasPrefix("in.") {
            let k = String(key.dropFirst(3))
            switch t.dtype {
            case .uint8: inputs[k] = try t.to(dtype: .bool)  // boolean masks travel as uint8
            case let d where d.isFloatingPoint: inputs[k] = try t.clone().requiresGrad(true)
            default: inputs[k] = t
            }
        }
        let out = try forward(module, inputs)
        try assertClose(out, try tensor(fx, "out"), rtol: rtol, atol: atol, "\(name): output", file: file, line: line)
        try (out * tensor(fx, "r")).sum().backward()
        for (key, expected) in fx where key.hasPrefix("grad.") {
            let k = String(key.dropFirst(5))
            guard let g = inputs[k]?.grad ?? module.parameter(k)?.grad else {
                XCTFail("\(name): no gradient for \(k)", file: file, line: line)
                continue
            }
            try assertClose(g, expected, rtol: rtol, atol: atol, "\(name): grad of \(k)", file: file, line: line)
        }
    }

    private func x(_ m: some Layer, _ i: [String: Tensor]) throws -> Tensor { try m(i["x"]!) }

    func testLinear() throws {
        try check("linear", seed: 1, make: { try Linear(6, 5) }, forward: x)
        try check("linear_nobias", seed: 2, make: { try Linear(7, 3, bias: false) }, forward: x)
    }

    func testLayerNorm() throws {
        try check("layernorm", seed: 3, make: { try LayerNorm(8, eps: 1e-6) }, forward: x)
        try check("layernorm_nobias", seed: 4, make: { try LayerNorm([3, 4], bias: false) }, forward: x)
        try check("layernorm_noaffine", seed: 5, make: { try LayerNorm(8, eps: 1e-6, elementwiseAffine: false) },
                  forward: x)
    }

    func testConv2d() throws {
        try check("conv2d", seed: 6, make: { try Conv2d(3, 4, kernelSize: 3, stride: 2, padding: 1) }, forward: x)
        try check("conv2d_groups", seed: 7, make: {
            try Conv2d(4, 6, kernelSize: (3, 2), stride: (1, 2), padding: (2, 1), dilation: (2, 1), groups: 2,
                       bias: false)
        }, forward: x)
        try check("conv2d_patch", seed: 8, make: { try Conv2d(4, 8, kernelSize: 2, stride: 2) }, forward: x)
    }

    func testEmbedding() throws {
        try check("embedding", seed: 9, make: { try Embedding(10, 4) }, forward: x)
        // The padding row is zero at init and gets no gradient.
        try check("embedding_padding", seed: 10, make: { try Embedding(6, 3, paddingIdx: 2) }, forward: x)
        XCTAssertEqual(try Embedding(6, 3, paddingIdx: -1).paddingIdx, 5)
        XCTAssertThrowsError(try Embedding(6, 3, paddingIdx: 6))
    }

    func testGroupNorm() throws {
        try check("groupnorm", seed: 11, make: { try GroupNorm(numGroups: 2, numChannels: 6) }, forward: x)
        XCTAssertThrowsError(try GroupNorm(numGroups: 4, numChannels: 6)) {
            XCTAssertTrue("\($0)".contains("divisible"), "\($0)")
        }
        XCTAssertThrowsError(try GroupNorm(numGroups: 2, numChannels: 6)(Tensor.zeros([2, 4, 3])))
    }

    func testMLP() throws {
        try check("mlp", seed: 12, make: { try MLP(inFeatures: 8, hiddenFeatures: 16, approximate: .tanh) }, forward: x)
        try check("mlp_exact", seed: 13, make: { try MLP(inFeatures: 6, hiddenFeatures: 12, outFeatures: 4) },
                  forward: x)
        let mlp = try MLP(inFeatures: 4, hiddenFeatures: 8)
        XCTAssertEqual(mlp.namedParameters().map { $0.0 }, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        XCTAssertEqual(mlp.parameterCount, 4 * 8 + 8 + 8 * 4 + 4)
    }

    func testMultiheadAttentionSelfWithPaddingMask() throws {
        try check("mha_self", seed: 14, make: { try MultiheadAttention(embedDim: 8, numHeads: 2) }) { m, i in
            try m(i["x"]!, i["x"]!, i["x"]!, keyPaddingMask: i["kpm"]!)
        }
        let m = try MultiheadAttention(embedDim: 8, numHeads: 2)
        XCTAssertEqual(m.namedParameters().map { $0.0 },
                       ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"])
    }

    func testMultiheadAttentionCross() throws {
        try check("mha_cross", seed: 15, make: { try MultiheadAttention(embedDim: 8, numHeads: 2) }) { m, i in
            try m(i["q"]!, i["kv"]!, i["kv"]!, keyPaddingMask: i["kpm"]!)
        }
    }

    func testMultiheadAttentionDistinctInputsWithAttnMask() throws {
        try check("mha_qkv", seed: 16, make: { try MultiheadAttention(embedDim: 12, numHeads: 3) }) { m, i in
            try m(i["q"]!, i["k"]!, i["v"]!, attnMask: i["mask"]!)
        }
    }

    func testMultiheadAttentionInitWithoutBias() throws {
        let fx = try fixture("nn_mha_init_nobias")
        Runtime.manualSeed(17)
        let m = try MultiheadAttention(embedDim: 16, numHeads: 4, bias: false)
        XCTAssertEqual(m.stateDictKeys(), ["in_proj_weight", "out_proj.weight"])
        for (key, t) in try m.stateDict() { XCTAssertTrue(try t.equal(tensor(fx, "init.\(key)")), key) }
    }

    func testMultiheadAttentionUnbatchedAndErrors() throws {
        Runtime.manualSeed(3)
        let m = try MultiheadAttention(embedDim: 8, numHeads: 2)
        let q = try Tensor.randn([3, 8]), kv = try Tensor.randn([5, 8])
        let kpm = try Tensor([false, false, true, false, true])
        let unbatched = try m(q, kv, kv, keyPaddingMask: kpm)
        let batched = try m(q.unsqueeze(0), kv.unsqueeze(0), kv.unsqueeze(0), keyPaddingMask: kpm.unsqueeze(0))
        try assertClose(unbatched, try batched.squeeze(0), "unbatched = batched")
        // A float mask of 0 / −∞ is the same as the boolean mask.
        let floatMask = try Tensor.zeros([1, 5]).maskedFill(kpm.unsqueeze(0), -.infinity)
        try assertClose(try m(q.unsqueeze(0), kv.unsqueeze(0), kv.unsqueeze(0), keyPaddingMask: floatMask), batched)

        XCTAssertThrowsError(try m(q.unsqueeze(0), kv.unsqueeze(0), kv.unsqueeze(0), keyPaddingMask: kpm)) {
            XCTAssertTrue("\($0)".contains("key_padding_mask must have shape [1, 5]"), "\($0)")
        }
        XCTAssertThrowsError(try m(try Tensor.zeros([1, 3, 6]))) { XCTAssertTrue("\($0)".contains("end in 8"), "\($0)") }
        XCTAssertThrowsError(try m(q.unsqueeze(0), kv.unsqueeze(0), kv.unsqueeze(0), attnMask: try Tensor.zeros([5, 3])))
        XCTAssertThrowsError(try MultiheadAttention(embedDim: 10, numHeads: 3))
    }

    func testDropout() throws {
        let fx = try fixture("nn_dropout")
        let x = try tensor(fx, "in.x")
        let drop = try Dropout(p: 0.3)
        Runtime.manualSeed(19)
        XCTAssertTrue(try drop(x).equal(tensor(fx, "out")), "same mask as PyTorch after the same seed")
        drop.eval()
        XCTAssertTrue(try drop(x).equal(x), "identity in eval mode")
        XCTAssertThrowsError(try Dropout(p: 1.5))
    }
}

/// Module mechanics: names, train/eval, loading state dicts and its errors, devices and dtypes.
final class ModuleTests: XCTestCase {
    /// A DiT-like block whose child is named with a dot, as facebookresearch/DiT's checkpoint keys.
    final class Block: Module {
        let norm: LayerNorm
        let mlp: MLP
        let modulation: Linear
        let table: Tensor
        let counter: Tensor
        var isTraining = true

        init() throws {
            norm = try LayerNorm(4, eps: 1e-6, elementwiseAffine: false)
            mlp = try MLP(inFeatures: 4, hiddenFeatures: 8, drop: 0.1)
            modulation = try Linear(4, 8)
            table = try Tensor.randn([2, 4]).requiresGrad(true)
            counter = try Tensor.zeros([1], dtype: .int64)
        }

        var localParameters: [(String, Tensor)] { [("scale_shift_table", table)] }
        var localBuffers: [(String, Tensor)] { [("counter", counter)] }
        var children: [(String, any Module)] { [("norm1", norm), ("mlp", mlp), ("adaLN_modulation.1", modulation)] }
    }

    func testNamesOrderAndCounts() throws {
        let b = try Block()
        XCTAssertEqual(b.namedParameters().map { $0.0 }, [
            "scale_shift_table", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
            "adaLN_modulation.1.weight", "adaLN_modulation.1.bias",
        ])
        XCTAssertEqual(b.namedBuffers().map { $0.0 }, ["counter"])
        XCTAssertEqual(b.stateDictKeys().first, "scale_shift_table")
        XCTAssertEqual(b.stateDictKeys()[1], "counter")
        XCTAssertEqual(b.parameterCount, 8 + (32 + 8 + 32 + 4) + (32 + 8))
        let seq = try Sequential(SiLU(), Linear(4, 6))
        XCTAssertEqual(seq.namedParameters().map { $0.0 }, ["1.weight", "1.bias"])
        XCTAssertTrue(b.parameters().allSatisfy { $0.requiresGrad })
    }

    func testTrainEvalPropagates() throws {
        let b = try Block()
        b.eval()
        XCTAssertFalse(b.isTraining)
        XCTAssertFalse(b.mlp.drop1.isTraining)
        let x = try Tensor.randn([3, 4])
        XCTAssertTrue(try b.mlp(x).equal(b.mlp(x)), "no dropout in eval mode")
        b.train()
        XCTAssertTrue(b.mlp.drop2.isTraining)
    }

    func testLoadStateDictRoundTripKeepsIdentity() throws {
        let a = try Block(), b = try Block()
        let weight = b.modulation.weight
        let report = try b.loadStateDict(try a.stateDict())
        XCTAssertTrue(report.isClean)
        XCTAssertTrue(b.modulation.weight === weight)
        XCTAssertTrue(weight.requiresGrad)
        for (k, t) in try a.stateDict() { XCTAssertTrue(try t.equal(b.stateDict()[k]!), k) }
    }

    func testLoadStateDictStrictErrorsNameKeysAndShapes() throws {
        let m = try Block()
        var dict = try Block().stateDict()
        dict["mlp.fc2.bias"] = nil
        dict["head.weight"] = try Tensor.zeros([3, 4])
        dict["adaLN_modulation.1.weight"] = try Tensor.zeros([4, 8])
        let tableBefore = try m.table.clone()
        XCTAssertThrowsError(try m.loadStateDict(dict)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("missing key 'mlp.fc2.bias'"), message)
            XCTAssertTrue(message.contains("unexpected key 'head.weight' (shape [3, 4])"), message)
            XCTAssertTrue(message.contains("'adaLN_modulation.1.weight': the module has [8, 4], the state dict has [4, 8]"),
                          message)
        }
        XCTAssertTrue(try m.table.equal(tableBefore), "a failed strict load changes nothing")

        let report = try m.loadStateDict(dict, strict: false)
        XCTAssertEqual(report.missingKeys.map(\.key), ["mlp.fc2.bias"])
        XCTAssertEqual(report.unexpectedKeys.map(\.key), ["head.weight"])
        XCTAssertEqual(report.shapeMismatches, [.init(key: "adaLN_modulation.1.weight", expected: [8, 4], found: [4, 8])])
        XCTAssertTrue(try m.table.equal(dict["scale_shift_table"]!), "non-strict loads what matches")
        XCTAssertFalse(report.isClean)
    }

    func testToDTypeKeepsIdentityAndIntegerBuffers() throws {
        let b = try Block()
        let w = b.modulation.weight
        try (b.modulation(Tensor.randn([2, 4])).sum()).backward()
        try b.to(dtype: .float64)
        XCTAssertTrue(b.modulation.weight === w)
        XCTAssertEqual(w.dtype, .float64)
        XCTAssertEqual(w.grad?.dtype, .float64)
        XCTAssertEqual(b.counter.dtype, .int64, "integer buffers keep their dtype")
        XCTAssertEqual(try b.modulation(Tensor.randn([2, 4], dtype: .float64)).dtype, .float64)
        XCTAssertThrowsError(try b.to(dtype: .int32))
    }

    func testLayerArgumentErrors() throws {
        XCTAssertThrowsError(try Conv2d(3, 4, kernelSize: 3, groups: 2)) {
            XCTAssertTrue("\($0)".contains("in_channels (3) must be divisible by groups (2)"), "\($0)")
        }
        XCTAssertThrowsError(try LayerNorm([]))
        XCTAssertThrowsError(try Linear(-1, 3))
        XCTAssertThrowsError(try Linear(4, 3)(Tensor.zeros([2, 5])), "libtorch's shape error is thrown")
    }
}
