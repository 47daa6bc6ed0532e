import Foundation
import ParisModels
import Torch
import XCTest

/// The state-dict entries of a fixture (`sd.<key>` → `<key>`).
func referenceStateDict(_ fx: [String: Tensor]) -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: fx.compactMap { key, value in
        key.hasPrefix("sd.") ? (String(key.dropFirst(3)), value) : nil
    })
}

/// Parity with float32 rounding noise: |a − b| ≤ 1e-4·|b| + 2e-5·max(1, max|b|) (gradients of a few-layer
/// network with random weights reach ~100, so an absolute bound alone would be meaningless).
func assertCloseScaled(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath,
                       line: UInt = #line) throws {
    let scale = max(1, try b.abs().amax().item())
    try assertClose(a, b, rtol: 1e-4, atol: 2e-5 * scale, what, file: file, line: line)
}

/// Sum of every state-dict tensor's element count.
func stateDictScalars(_ module: any Module) throws -> Int {
    try module.stateDict().values.reduce(0) { $0 + $1.count }
}

final class ParisExpertTests: XCTestCase {
    /// The configuration of scripts/fixtures/paris.py's `expert_fixture`.
    static let fixtureConfig = ParisExpertConfig(inputSize: 8, inChannels: 3, patchSize: 2, hiddenSize: 16, depth: 2,
                                                 numHeads: 2, textDim: 12, textLength: 5, nullText: .emptyPrompt)

    func testForwardAndGradientParity() throws {
        let fx = try fixture("paris_expert")
        let model = try ParisExpert(Self.fixtureConfig)
        try model.loadStateDict(referenceStateDict(fx))
        let x = try tensor(fx, "in.x").clone().requiresGrad(true)
        let text = try tensor(fx, "in.text").clone().requiresGrad(true)
        let t = try tensor(fx, "in.t")
        let out = try model(x: x, t: t, text: text)
        try assertCloseScaled(out, tensor(fx, "out"), "out")
        try (out * tensor(fx, "r")).sum().backward()
        try assertCloseScaled(XCTUnwrap(x.grad), tensor(fx, "grad.x"), "grad.x")
        try assertCloseScaled(XCTUnwrap(text.grad), tensor(fx, "grad.text"), "grad.text")
        var checked = 0
        for (key, expected) in fx where key.hasPrefix("grad.") && key != "grad.x" && key != "grad.text" {
            let name = String(key.dropFirst(5))
            let p = try XCTUnwrap(model.parameter(name), name)
            try assertCloseScaled(XCTUnwrap(p.grad, name), expected, key)
            checked += 1
        }
        XCTAssertEqual(checked, 11)

        // With a text mask (true = keep): the second sample ignores its last two tokens.
        let mask = try tensor(fx, "in.text_mask").to(dtype: .bool)
        let masked = try withNoGrad { try model(x: x, t: t, text: text, textMask: mask) }
        try assertCloseScaled(masked, tensor(fx, "out_masked"), "out_masked")
        XCTAssertGreaterThan(try (tensor(fx, "out_masked") - tensor(fx, "out")).abs().amax().item(), 1e-3)
        // A uint8 mask means the same.
        let maskedU8 = try withNoGrad { try model(x: x, t: t, text: text, textMask: tensor(fx, "in.text_mask")) }
        try assertCloseScaled(maskedU8, tensor(fx, "out_masked"), "out_masked (uint8)")
    }

    func testStateDictKeysAreTheReferenceKeys() throws {
        let fx = try fixture("paris_expert")
        let reference = referenceStateDict(fx)
        let model = try ParisExpert(Self.fixtureConfig)
        XCTAssertEqual(Set(model.stateDictKeys()), Set(reference.keys))
        for key in ["patch_embed.weight", "pos_embed", "time_embed.mlp.0.weight", "time_embed.mlp.2.bias",
                    "text_proj.weight", "t_block.1.weight", "layers.1.scale_shift_table", "layers.0.attn.in_proj_weight",
                    "layers.0.attn.out_proj.weight", "layers.0.cross_attn.in_proj_bias", "layers.1.mlp.0.weight",
                    "layers.1.mlp.2.bias", "final_layer.linear.weight", "final_layer.scale_shift_table"] {
            XCTAssertNotNil(reference[key], key)
        }
        // pos_embed is a buffer: saved and loaded, never trained.
        XCTAssertNil(model.parameter("pos_embed"))

        var missing = reference
        missing["layers.1.cross_attn.in_proj_weight"] = nil
        XCTAssertThrowsError(try model.loadStateDict(missing)) {
            XCTAssertTrue("\($0)".contains("layers.1.cross_attn.in_proj_weight"), "\($0)")
        }
        var extra = reference
        extra["y_embedder.y_embedding"] = try Tensor.zeros([5, 12])
        XCTAssertThrowsError(try model.loadStateDict(extra)) {
            XCTAssertTrue("\($0)".contains("y_embedder.y_embedding"), "\($0)")
        }
    }

    func testAnalyticParameterCounts() throws {
        var configs = [Self.fixtureConfig, .cpuTiny, .cpuSmall]
        var zero = ParisExpertConfig.cpuTiny
        zero.nullText = .zero
        zero.mlpRatio = 2.5
        configs.append(zero)
        for config in configs {
            let model = try ParisExpert(config)
            XCTAssertEqual(model.parameterCount, config.parameterCount, "\(config)")
            XCTAssertEqual(try stateDictScalars(model), config.stateDictCount, "\(config)")
        }
        XCTAssertEqual(ParisExpertConfig.cpuTiny.parameterCount, 222_384)
        XCTAssertEqual(ParisExpertConfig.cpuSmall.parameterCount, 1_271_820)
        // The released Paris expert: "605M/606M" parameters.
        XCTAssertEqual(ParisExpertConfig.paris.parameterCount, 605_675_536)
        XCTAssertEqual(ParisExpertConfig.paris.stateDictCount, 605_970_448)
        XCTAssertTrue((605_000_000..<606_000_000).contains(ParisExpertConfig.paris.parameterCount))
        XCTAssertEqual(ParisExpertConfig.parisB2.parameterCount, 118_370_320)
        XCTAssertEqual(try ParisExpertConfig.preset(named: "paris-XL/2"), .paris)
        // The model catalogue lists the Paris presets with their state-dict size (pos_embed included, as the port).
        let catalog = Dictionary(uniqueKeysWithValues: ModelCatalog.entries.map { ($0.name, $0.parameterCount) })
        XCTAssertEqual(catalog["paris-XL/2"], 605_970_448)
        XCTAssertEqual(catalog["paris-T/4"], ParisExpertConfig.cpuTiny.stateDictCount)
        XCTAssertEqual(catalog["router-B/2"], 129_136_904)
        XCTAssertTrue(ModelCatalog.render().contains("router-T/4"))
        XCTAssertThrowsError(try ParisExpertConfig.preset(named: "paris-Q/3")) {
            XCTAssertTrue("\($0)".contains("paris-T/4"), "\($0)")
        }
    }

    func testBadInputsGiveClearErrors() throws {
        let c = Self.fixtureConfig
        let model = try ParisExpert(c)
        let x = try Tensor.randn([2, 3, 8, 8]), t = try Tensor([10, 500] as [Float], shape: [2])
        let text = try Tensor.randn([2, 5, 12])
        func expectError(_ fragment: String, _ body: () throws -> Tensor) {
            XCTAssertThrowsError(try body()) { XCTAssertTrue("\($0)".contains(fragment), "\($0)") }
        }
        expectError("[B, 3, 8, 8]") { try model(x: Tensor.randn([2, 4, 8, 8]), t: t, text: text) }    // channels
        expectError("[B, 3, 8, 8]") { try model(x: Tensor.randn([2, 3, 16, 16]), t: t, text: text) }  // size
        expectError("text_dim 12") { try model(x: x, t: t, text: Tensor.randn([2, 5, 7])) }           // text width
        expectError("text of shape") { try model(x: x, t: t, text: Tensor.randn([3, 5, 12])) }        // text batch
        expectError("t of shape [2]") { try model(x: x, t: Tensor.zeros([2, 1]), text: text) }
        expectError("text_mask of shape [2, 5]") {
            try model(x: x, t: t, text: text, textMask: Tensor.ones([2, 4], dtype: .bool))
        }
        XCTAssertThrowsError(try ParisExpert(ParisExpertConfig(inputSize: 8, inChannels: 3, patchSize: 2, hiddenSize: 18,
                                                               depth: 1, numHeads: 4, textDim: 4, textLength: 1,
                                                               nullText: .zero))) {
            XCTAssertTrue("\($0)".contains("divisible by num_heads"), "\($0)")
        }
    }

    func testConfigIsSnakeCaseJSON() throws {
        let data = try JSONEncoder().encode(ParisExpertConfig.paris)
        let json = try XCTUnwrap(String(data: data, encoding: .utf8))
        for key in ["\"hidden_size\":1152", "\"text_dim\":768", "\"null_text\":\"empty_prompt\"", "\"patch_size\":2",
                    "\"frequency_embedding_size\":256"] {
            XCTAssertTrue(json.contains(key), json)
        }
        XCTAssertEqual(try JSONDecoder().decode(ParisExpertConfig.self, from: data), .paris)
    }

    func testInitialisationAndNullText() throws {
        Runtime.manualSeed(0)
        let model = try ParisExpert(.cpuTiny)
        XCTAssertEqual(model.namedParameters().first?.0, "null_text_embedding")
        let null = try model.nullText(batch: 2)
        XCTAssertEqual(null.shape, [2, 32, 384])
        // PixArt-α initialisation: the final linear is zero, so the untrained expert predicts 0.
        let x = try Tensor.randn([2, 3, 32, 32])
        let out = try withNoGrad { try model(x: x, t: Tensor([0, 999] as [Float], shape: [2]), text: null) }
        XCTAssertEqual(out.shape, [2, 3, 32, 32])
        XCTAssertEqual(try out.abs().amax().item(), 0)
        // The position embedding is the fixed sin-cos table.
        try assertClose(model.posEmbed, sinCos2DPositionEmbedding(embedDim: 64, gridSize: 8), "pos_embed")

        // Caption dropout: sample 0 gets the null text and an all-true mask, sample 1 is unchanged.
        let text = try Tensor.randn([2, 32, 384])
        let mask = try Tensor.cat([Tensor.ones([2, 20], dtype: .bool), Tensor.zeros([2, 12], dtype: .bool)], dim: 1)
        let (dropped, droppedMask) = try model.dropCaptions(text: text, textMask: mask,
                                                            drop: Tensor([1, 0] as [Float], shape: [2]).ne(0))
        try assertClose(dropped.select(0, 0), null.select(0, 0), "dropped caption")
        try assertClose(dropped.select(0, 1), text.select(0, 1), "kept caption")
        XCTAssertEqual(try XCTUnwrap(droppedMask).to(dtype: .int64).sum(dims: [1]).toArray(as: Int64.self), [32, 20])

        var zeroConfig = ParisExpertConfig.cpuTiny
        zeroConfig.nullText = .zero
        XCTAssertEqual(try ParisExpert(zeroConfig).nullText(batch: 1).abs().sum().item(), 0)
        XCTAssertThrowsError(try ParisExpert(Self.fixtureConfig).nullText(batch: 1)) {
            XCTAssertTrue("\($0)".contains("empty_prompt"), "\($0)")
        }
    }
}
