import ParisModels
import Torch
import XCTest

/// LoRA on the Paris expert against PEFT (scripts/fixtures/lora.py: r = 2, lora_alpha = 3 on mlp.0, mlp.2 and
/// final_layer.linear of paris.py's reference expert, A and B random).
final class LoRATests: XCTestCase {
    static let targets = ["mlp.0", "mlp.2", "final_layer.linear"]

    /// The fixture's base expert with PEFT's adapters loaded.
    func adaptedExpert(_ fx: [String: Tensor]) throws -> ParisExpert {
        let model = try ParisExpert(ParisExpertTests.fixtureConfig)
        try model.loadStateDict(referenceStateDict(fx))
        try model.requiresGrad(false)
        try LoRA.inject(into: model, targets: Self.targets, rank: 2, alpha: 3)
        try LoRA.load(Self.peftAdapters(fx), into: model)
        return model
    }

    /// The fixture's `lora.<key>` entries under their PEFT keys.
    static func peftAdapters(_ fx: [String: Tensor]) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: fx.compactMap { key, value in
            key.hasPrefix("lora.") ? (String(key.dropFirst(5)), value) : nil
        })
    }

    func testForwardAndAdapterGradientsMatchPEFT() throws {
        let fx = try fixture("lora_expert")
        let model = try adaptedExpert(fx)
        // PEFT's suffix rule: "mlp.0" also names the timestep embedder's time_embed.mlp.0, in PEFT as here.
        XCTAssertEqual(LoRA.adapters(in: model).map(\.0), ["time_embed.mlp.0", "time_embed.mlp.2", "layers.0.mlp.0",
                                                          "layers.0.mlp.2", "layers.1.mlp.0", "layers.1.mlp.2",
                                                          "final_layer.linear"])
        let x = try tensor(fx, "in.x").clone().requiresGrad(true)
        let out = try model(x: x, t: tensor(fx, "in.t"), text: tensor(fx, "in.text"))
        try assertCloseScaled(out, tensor(fx, "out"), "out")
        try (out * tensor(fx, "r")).sum().backward()
        try assertCloseScaled(XCTUnwrap(x.grad), tensor(fx, "grad.x"), "grad.x")
        for (path, adapter) in LoRA.adapters(in: model) {
            for (name, weight) in [("lora_A", adapter.loraA.weight), ("lora_B", adapter.loraB.weight)] {
                let key = "grad.\(LoRA.keyPrefix)\(path).\(name).weight"
                try assertCloseScaled(XCTUnwrap(weight.grad, key), tensor(fx, key), key)
            }
        }
        // The base is frozen: no gradient reaches it.
        XCTAssertNil(model.parameter("layers.0.mlp.0.weight")?.grad)
        XCTAssertEqual(Set(try LoRA.stateDict(of: model).keys), Set(Self.peftAdapters(fx).keys))
    }

    func testMergeMatchesPEFTMergeAndUnload() throws {
        let fx = try fixture("lora_expert")
        let model = try adaptedExpert(fx)
        try LoRA.merge(model)
        XCTAssertTrue(LoRA.adapters(in: model).isEmpty)
        for (key, merged) in fx where key.hasPrefix("merged.") {
            let name = String(key.dropFirst(7))
            try assertCloseScaled(XCTUnwrap(model.parameter(name), name), merged, key)
        }
        let out = try model(x: tensor(fx, "in.x"), t: tensor(fx, "in.t"), text: tensor(fx, "in.text"))
        try assertCloseScaled(out, tensor(fx, "out_merged"), "out_merged")
        // The merged weights keep the base's state-dict keys.
        XCTAssertEqual(Set(model.stateDictKeys()), Set(referenceStateDict(fx).keys))
    }

    func testAFreshAdapterLeavesTheModelUnchanged() throws {
        let fx = try fixture("lora_expert")
        let model = try ParisExpert(ParisExpertTests.fixtureConfig)
        try model.loadStateDict(referenceStateDict(fx))
        let (x, t, text) = (try tensor(fx, "in.x"), try tensor(fx, "in.t"), try tensor(fx, "in.text"))
        let before = try model(x: x, t: t, text: text)
        let adapters = try LoRA.inject(into: model, targets: Self.targets, rank: 2, alpha: 3)
        try assertClose(try model(x: x, t: t, text: text), before, rtol: 0, atol: 0, "B = 0 at the start")
        for (_, a) in adapters {
            XCTAssertEqual(try a.loraB.weight.abs().amax().item(), 0)
            XCTAssertGreaterThan(try a.loraA.weight.abs().amax().item(), 0)
            XCTAssertEqual(a.scaling, 1.5)
        }
    }

    func testTargetsFollowPEFTMatching() throws {
        let model = try ParisExpert(ParisExpertTests.fixtureConfig)
        XCTAssertTrue(LoRA.matches("layers.0.attn.out_proj", targets: ["out_proj"]))
        XCTAssertTrue(LoRA.matches("layers.0.attn.out_proj", targets: ["attn.out_proj"]))
        XCTAssertFalse(LoRA.matches("layers.0.cross_attn.out_proj", targets: ["attn.out_proj"]))
        XCTAssertFalse(LoRA.matches("layers.0.mlp.0", targets: ["p.0"]))
        XCTAssertEqual(LoRA.targetLayers(in: model, targets: ["out_proj"]).count, 4)  // attn and cross_attn, 2 layers
        XCTAssertThrowsError(try LoRA.inject(into: model, targets: ["mlp.0", "qkv"], rank: 2, alpha: 4)) {
            XCTAssertTrue("\($0)".contains("\"qkv\" matches no Linear layer"), "\($0)")
        }
        XCTAssertTrue(LoRA.adapters(in: model).isEmpty, "a failed inject attaches nothing")
        XCTAssertThrowsError(try LoRA.inject(into: model, targets: ["mlp.0"], rank: 17, alpha: 4)) {
            XCTAssertTrue("\($0)".contains("exceeds"), "\($0)")
        }
        try LoRA.inject(into: model, targets: ["mlp.0"], rank: 2, alpha: 4)
        XCTAssertThrowsError(try LoRA.inject(into: model, targets: ["mlp.0"], rank: 2, alpha: 4)) {
            XCTAssertTrue("\($0)".contains("already has a LoRA adapter"), "\($0)")
        }
    }

    func testLoadIsStrict() throws {
        let fx = try fixture("lora_expert")
        let adapters = Self.peftAdapters(fx)
        func fresh() throws -> ParisExpert {
            let m = try ParisExpert(ParisExpertTests.fixtureConfig)
            try LoRA.inject(into: m, targets: Self.targets, rank: 2, alpha: 3)
            return m
        }
        var missing = adapters
        missing.removeValue(forKey: "base_model.model.layers.1.mlp.2.lora_B.weight")
        XCTAssertThrowsError(try LoRA.load(missing, into: fresh())) {
            XCTAssertTrue("\($0)".contains("no base_model.model.layers.1.mlp.2.lora_B.weight"), "\($0)")
        }
        var extra = adapters
        extra["base_model.model.text_proj.lora_A.weight"] = try Tensor.zeros([2, 12])
        XCTAssertThrowsError(try LoRA.load(extra, into: fresh())) {
            XCTAssertTrue("\($0)".contains("text_proj.lora_A.weight names no adapted layer"), "\($0)")
        }
        var wrong = adapters
        wrong["base_model.model.layers.0.mlp.0.lora_A.weight"] = try Tensor.zeros([3, 16])
        XCTAssertThrowsError(try LoRA.load(wrong, into: fresh())) {
            XCTAssertTrue("\($0)".contains("has shape [3, 16]"), "\($0)")
        }
    }
}
