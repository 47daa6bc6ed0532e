import Foundation
import ParisModels
import Torch
import XCTest

/// The TINY configuration of scripts/fixtures/dit.py; keep the two in step.
let tinyDiT = DiTConfig(inputSize: 8, patchSize: 2, inChannels: 4, hiddenSize: 16, depth: 2, numHeads: 4, mlpRatio: 4,
                        classDropoutProb: 0.3, numClasses: 10, learnSigma: true)

/// The tensors under `prefix` + ".", with the prefix removed.
func strip(_ fx: [String: Tensor], _ prefix: String) -> [String: Tensor] {
    let p = prefix + "."
    return Dictionary(uniqueKeysWithValues: fx.compactMap { k, v in k.hasPrefix(p) ? (String(k.dropFirst(p.count)), v) : nil })
}

/// Parity of DiT (adaLN-Zero) and its shared pieces with facebookresearch/DiT's models.py.
final class DiTParityTests: XCTestCase {
    func testInitEqualsReferenceBitForBit() throws {
        let reference = strip(try fixture("dit_init"), "sd")
        Runtime.manualSeed(0)
        let model = try DiT(tinyDiT)
        let ours = try model.stateDict()
        XCTAssertEqual(Set(ours.keys), Set(reference.keys))
        for (key, expected) in reference {
            guard let t = ours[key] else { continue }
            try assertClose(t, expected, rtol: 0, atol: 0, key)
        }
    }

    func testForwardAndGradientsMatchReference() throws {
        let fx = try fixture("dit_parity")
        let model = try DiT(tinyDiT)
        let report = try model.loadStateDict(strip(fx, "sd"))  // strict
        XCTAssertTrue(report.isClean)
        model.eval()
        let x = try tensor(fx, "x").detach().requiresGrad(true)
        let out = try model(x: x, t: try tensor(fx, "t"), y: try tensor(fx, "y"))
        try assertClose(out, try tensor(fx, "out"), rtol: 1e-4, atol: 1e-5, "out")
        try (out * tensor(fx, "r")).sum().backward()
        try assertClose(try XCTUnwrap(x.grad), try tensor(fx, "grad.x"), rtol: 1e-4, atol: 1e-5, "grad.x")
        let grads = strip(fx, "grad").filter { $0.key != "x" }
        XCTAssertEqual(grads.count, 8)
        for (key, expected) in grads {
            let p = try XCTUnwrap(model.parameter(key), key)
            try assertClose(try XCTUnwrap(p.grad, key), expected, rtol: 1e-4, atol: 1e-5, "grad.\(key)")
        }
        XCTAssertNil(model.posEmbed.grad, "pos_embed is frozen")
    }

    func testTrainModeLabelDropoutDrawsAsReference() throws {
        let fx = try fixture("dit_parity")
        let model = try DiT(tinyDiT)
        _ = try model.loadStateDict(strip(fx, "sd"))
        model.train()
        Runtime.manualSeed(5)
        let out = try withNoGrad { try model(x: try tensor(fx, "x"), t: try tensor(fx, "t"), y: try tensor(fx, "y")) }
        try assertClose(out, try tensor(fx, "out_train"), rtol: 1e-4, atol: 1e-5, "out_train")
    }

    func testForwardWithCFGMatchesReference() throws {
        let fx = try fixture("dit_parity")
        let model = try DiT(tinyDiT)
        _ = try model.loadStateDict(strip(fx, "sd"))
        model.eval()
        let out = try withNoGrad {
            try model.forwardWithCFG(x: try tensor(fx, "x"), t: try tensor(fx, "t"), y: try tensor(fx, "y_cfg"),
                                     cfgScale: 4, guidedChannels: 3)
        }
        try assertClose(out, try tensor(fx, "out_cfg"), rtol: 1e-4, atol: 1e-5, "out_cfg")
    }

    func testSinCosPositionEmbeddingEqualsNumpy() throws {
        let fx = try fixture("dit_embed")
        for (d, g) in [(24, 4), (96, 6), (1152, 2)] {
            let ours = try sinCos2DPositionEmbedding(embedDim: d, gridSize: g)
            XCTAssertEqual(ours.dtype, .float32)
            try assertClose(ours, try tensor(fx, "pos.\(d)x\(g)"), rtol: 0, atol: 0, "pos \(d)x\(g)")
        }
        XCTAssertThrowsError(try sinCos2DPositionEmbedding(embedDim: 6, gridSize: 2))
    }

    func testTimestepEmbeddingMatchesReference() throws {
        let fx = try fixture("dit_embed")
        let t = try tensor(fx, "temb.t")
        for dim in [256, 7] {
            let ours = try TimestepEmbedder.timestepEmbedding(t: t, dim: dim)
            try assertClose(ours, try tensor(fx, "temb.\(dim)"), rtol: 0, atol: 1e-6, "temb \(dim)")
        }
        XCTAssertThrowsError(try TimestepEmbedder.timestepEmbedding(t: try Tensor.zeros([2, 1]), dim: 8))
    }
}

/// Structure, initialisation, configuration and errors of DiT.
final class DiTModelTests: XCTestCase {
    func testInitIsAdaLNZeroAndDeterministic() throws {
        Runtime.manualSeed(3)
        let a = try DiT(tinyDiT)
        Runtime.manualSeed(3)
        let b = try DiT(tinyDiT)
        Runtime.manualSeed(4)
        let c = try DiT(tinyDiT)
        let sa = try a.stateDict(), sb = try b.stateDict(), sc = try c.stateDict()
        for (key, t) in sa {
            try assertClose(t, try XCTUnwrap(sb[key]), rtol: 0, atol: 0, key)
            if key.contains("adaLN_modulation") || key.hasPrefix("final_layer.linear") {
                XCTAssertEqual(try t.abs().sum().item(), 0, "\(key) starts at zero")
            }
        }
        XCTAssertFalse(try sa["blocks.0.attn.qkv.weight"]!.allClose(sc["blocks.0.attn.qkv.weight"]!))
        XCTAssertFalse(a.posEmbed.requiresGrad)
        XCTAssertEqual(try a.yEmbedder.embeddingTable.weight.std().item(), 0.02, accuracy: 0.01)
        // adaLN-Zero: a fresh model outputs zeros.
        let out = try withNoGrad {
            try a(x: try Tensor.randn([2, 4, 8, 8]), t: try Tensor([1.0, 500.0] as [Float]),
                  y: try Tensor([1, 2] as [Int64]))
        }
        XCTAssertEqual(out.shape, [2, 8, 8, 8])
        XCTAssertEqual(try out.abs().sum().item(), 0)
    }

    func testParameterNamesAreTheReferenceKeys() throws {
        let model = try DiT(tinyDiT)
        let keys = Set(model.stateDictKeys())
        for key in ["pos_embed", "x_embedder.proj.weight", "x_embedder.proj.bias", "t_embedder.mlp.0.weight",
                    "t_embedder.mlp.2.bias", "y_embedder.embedding_table.weight", "blocks.1.attn.qkv.weight",
                    "blocks.1.attn.proj.bias", "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.bias",
                    "blocks.0.adaLN_modulation.1.weight", "final_layer.linear.weight",
                    "final_layer.adaLN_modulation.1.bias"] {
            XCTAssertTrue(keys.contains(key), key)
        }
        XCTAssertEqual(model.yEmbedder.embeddingTable.weight.shape, [11, 16], "10 classes + the null class")
    }

    func testAnalyticParameterCounts() throws {
        // Published (DiT paper) and checked against the reference in scripts/fixtures/dit.py.
        XCTAssertEqual(try DiTConfig.preset(named: "DiT-XL/2").parameterCount, 675_129_632)
        XCTAssertEqual(try DiTConfig.preset(named: "DiT-S/2").parameterCount, 32_963_360)
        XCTAssertEqual(try DiTConfig.preset(named: "DiT-B/4").parameterCount, 130_475_648)
        XCTAssertEqual(try DiTConfig.preset(named: "DiT-L/8").parameterCount, 458_594_816)
        var noCFG = tinyDiT
        noCFG.classDropoutProb = 0
        noCFG.learnSigma = false
        for config in [tinyDiT, noCFG, try DiTConfig.preset(named: "DiT-S/2"), try DiTConfig.preset(named: "DiT-T/2"),
                       try DiTConfig.preset(named: "DiT-T/4"), try DiTConfig.preset(named: "DiT-N/4")] {
            XCTAssertEqual(try DiT(config).parameterCount, config.parameterCount, "\(config)")
        }
    }

    func testPresetsAndConfigJSON() throws {
        XCTAssertEqual(DiTConfig.presets.count, 15)
        XCTAssertEqual(try DiTConfig.preset(named: "DiT-B/8"),
                       DiTConfig(patchSize: 8, hiddenSize: 768, depth: 12, numHeads: 12))
        XCTAssertThrowsError(try DiTConfig.preset(named: "DiT-Q/2")) { error in
            XCTAssertTrue("\(error)".contains("DiT-XL/2"), "\(error)")
        }
        let data = try JSONEncoder().encode(tinyDiT)
        let json = try XCTUnwrap(String(data: data, encoding: .utf8))
        for key in ["input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_ratio",
                    "class_dropout_prob", "num_classes", "learn_sigma"] {
            XCTAssertTrue(json.contains("\"\(key)\""), key)
        }
        XCTAssertEqual(try JSONDecoder().decode(DiTConfig.self, from: data), tinyDiT)
        let partial = try JSONDecoder().decode(DiTConfig.self, from: Data(#"{"depth": 3}"#.utf8))
        XCTAssertEqual(partial, DiTConfig(depth: 3))
    }

    func testForcedLabelDropUsesTheNullClass() throws {
        let model = try DiT(tinyDiT)
        model.eval()
        let t = try Tensor([3.0, 700.0] as [Float]), y = try Tensor([2, 5] as [Int64])
        let forced = try model.conditioning(t: t, y: y, forceDropIds: try Tensor([1, 0] as [Int64]))
        let manual = try model.conditioning(t: t, y: try Tensor([10, 5] as [Int64]))
        try assertClose(forced, manual, rtol: 0, atol: 0, "forced drop")
    }

    func testBadInputsGiveClearErrors() throws {
        let model = try DiT(tinyDiT)
        let t = try Tensor([1.0, 2.0] as [Float]), y = try Tensor([1, 2] as [Int64])
        func expectError(_ what: String, contains needle: String, _ body: () throws -> Tensor) {
            XCTAssertThrowsError(try body(), what) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(what): \(error)")
            }
        }
        expectError("channels", contains: "in_channels 4") { try model(x: try Tensor.randn([2, 3, 8, 8]), t: t, y: y) }
        expectError("size", contains: "input_size 8") { try model(x: try Tensor.randn([2, 4, 16, 16]), t: t, y: y) }
        expectError("rank", contains: "[B, 4, 8, 8]") { try model(x: try Tensor.randn([4, 8, 8]), t: t, y: y) }
        expectError("t", contains: "timestep") { try model(x: try Tensor.randn([2, 4, 8, 8]), t: try Tensor.zeros([3]), y: y) }
        expectError("y", contains: "label") { try model(x: try Tensor.randn([2, 4, 8, 8]), t: t, y: try Tensor.zeros([2])) }
        expectError("cfg", contains: "even") {
            try model.forwardWithCFG(x: try Tensor.randn([3, 4, 8, 8]), t: try Tensor.zeros([3]),
                                     y: try Tensor([1, 2, 3] as [Int64]), cfgScale: 2)
        }
        var bad = tinyDiT
        bad.inputSize = 9
        XCTAssertThrowsError(try DiT(bad)) { XCTAssertTrue("\($0)".contains("divisible"), "\($0)") }
        bad = tinyDiT
        bad.numHeads = 5
        XCTAssertThrowsError(try DiT(bad)) { XCTAssertTrue("\($0)".contains("num_heads"), "\($0)") }
    }

    func testUnpatchifyInvertsPatchOrder() throws {
        // One token per 2×2 patch holding (row, column, channel) values: unpatchify must place them back.
        let img = try Tensor.arange(0, 2 * 3 * 4 * 6, dtype: .float32).reshape([2, 3, 4, 6])  // [B, C, H, W]
        let tokens = try img.reshape([2, 3, 2, 2, 3, 2]).permute([0, 2, 4, 3, 5, 1]).reshape([2, 6, 12])
        let back = try unpatchify(tokens, patchSize: 2, channels: 3, gridHeight: 2, gridWidth: 3)
        try assertClose(back, img, rtol: 0, atol: 0, "unpatchify")
        XCTAssertThrowsError(try unpatchify(tokens, patchSize: 2, channels: 3))  // 6 tokens are not square
    }
}
