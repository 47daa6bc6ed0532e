import Foundation
import ParisDiffusion
import ParisModels
import Torch
import XCTest

/// The text-conditioned router p(k | x_t, t, c): its config, state dict, caption input and null caption, and that
/// the text-free router is what it always was.
final class TextRouterTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    static let textConfig = RouterTests.fixtureConfig.withText(6)

    /// A router with every parameter random (adaLN-Zero would make the output ignore t and the caption).
    func randomRouter(_ config: RouterConfig) throws -> Router {
        Runtime.manualSeed(3)
        let model = try Router(config)
        try withNoGrad { for (_, p) in model.namedParameters() { try Init.normal_(p, std: 0.3) } }
        model.train(false)
        return model
    }

    func testShapesNullCaptionAndBadText() throws {
        let model = try randomRouter(Self.textConfig)
        XCTAssertEqual(model.config.kind, .textConditioned)
        let x = try Tensor.randn([2, 3, 8, 8]), t = try Tensor([100, 900] as [Float], shape: [2])
        let c1 = try Tensor.randn([2, 6]), c2 = try Tensor.randn([2, 6])
        let logits = try model(x: x, t: t, text: c1)
        XCTAssertEqual(logits.shape, [2, 5])
        // The caption changes the routing.
        let other = try model(x: x, t: t, text: c2)
        let change: Double = try (logits - other).abs().amax().item()
        XCTAssertGreaterThan(change, 1e-4)
        // No text is the learned null caption for every sample.
        let null = try XCTUnwrap(model.nullTextEmbedding)
        XCTAssertEqual(null.shape, [1, 6])
        try assertClose(model(x: x, t: t), model(x: x, t: t, text: null.expand([2, 6])), atol: 1e-6, "null caption")
        try assertClose(model.probabilities(x: x, t: t, text: c1).sum(dims: [1]), Tensor.ones([2]), atol: 1e-5, "sum")
        XCTAssertThrowsError(try model(x: x, t: t, text: Tensor.randn([2, 5]))) {
            XCTAssertTrue("\($0)".contains("[2, 6]"), "\($0)")
        }
        XCTAssertThrowsError(try model(x: x, t: t, text: Tensor.randn([3, 6]))) {
            XCTAssertTrue("\($0)".contains("[2, 6]"), "\($0)")
        }
        // The text-free router refuses a caption instead of ignoring it.
        let free = try randomRouter(RouterTests.fixtureConfig)
        XCTAssertNil(free.nullTextEmbedding)
        XCTAssertThrowsError(try free(x: x, t: t, text: c1)) { XCTAssertTrue("\($0)".contains("text-free"), "\($0)") }
    }

    func testNullCaptionLearnsThroughDropout() throws {
        let model = try randomRouter(Self.textConfig)
        model.train(true)
        let null = try XCTUnwrap(model.nullTextEmbedding)
        let x = try Tensor.randn([4, 3, 8, 8]), t = try Tensor.full([4], 500), c = try Tensor.randn([4, 6])
        for (p, expectGradient) in [(0.0, false), (1.0, true)] {
            try model.zeroGrad()
            let dropped = try ConditionDropout(probability: p).apply(to: c, null: .embedding(null)).condition
            try (model(x: x, t: t, text: dropped) * Tensor.randn([4, 5])).sum().backward()
            let g = try null.grad.map { try $0.abs().sum().item() as Double } ?? 0
            XCTAssertEqual(g > 0, expectGradient, "dropout \(p): |grad null| = \(g)")
            let w = try XCTUnwrap(model.parameter("text_embed.0.weight")?.grad)
            XCTAssertGreaterThan(try w.abs().sum().item() as Double, 0, "dropout \(p): text_embed learns")
        }
    }

    func testConfigStateDictAndPresets() throws {
        let config = Self.textConfig
        let model = try Router(config)
        XCTAssertEqual(model.parameterCount, config.parameterCount)
        let keys = Set(model.stateDictKeys())
        for key in ["text_embed.0.weight", "text_embed.0.bias", "text_embed.2.weight", "text_embed.2.bias",
                    "null_text_embedding"] {
            XCTAssertTrue(keys.contains(key), key)
        }
        let entries = Dictionary(uniqueKeysWithValues: config.stateDictEntries.map { ($0.name, $0.shape) })
        let state = try model.stateDict()
        XCTAssertEqual(Set(entries.keys), Set(state.keys))
        for (name, tensor) in state { XCTAssertEqual(entries[name], tensor.shape, name) }
        // The text-free router's keys are exactly the released router's (no text weights).
        let free = Set(try Router(RouterTests.fixtureConfig).stateDictKeys())
        XCTAssertEqual(keys.subtracting(free).sorted(), ["null_text_embedding", "text_embed.0.bias",
                                                          "text_embed.0.weight", "text_embed.2.bias",
                                                          "text_embed.2.weight"])

        for name in ["router-T/4-text", "router-S/4-text", "router-B/2-text"] {
            let p = try RouterConfig.preset(named: name)
            XCTAssertEqual(p.kind, .textConditioned, name)
            XCTAssertEqual(p.textDim, 384, name)
            var base = p
            base.textDim = nil
            XCTAssertEqual(base, try RouterConfig.preset(named: String(name.dropLast(5))), name)
        }
        XCTAssertEqual(try RouterConfig.preset(named: "router-T/4").kind, .textFree)
        // docs/training.md: router-T/4-text has 207,176 parameters.
        XCTAssertEqual(try Router(RouterConfig.preset(named: "router-T/4-text")).parameterCount, 207_176)
        XCTAssertThrowsError(try RouterConfig.preset(named: "router-T/4").withText(0).validate()) {
            XCTAssertTrue("\($0)".contains("text_dim"), "\($0)")
        }
    }

    func testTextFreeJSONIsUnchangedAndOldConfigsDecode() throws {
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(RouterConfig.cpuTiny)) as! [String: Any]
        XCTAssertNil(json["text_dim"], "a text-free config writes no text_dim")
        XCTAssertEqual(Set(json.keys), ["input_size", "in_channels", "patch_size", "hidden_size", "depth", "num_heads",
                                        "mlp_ratio", "num_experts", "frequency_embedding_size", "norm_eps"])
        // A config written before text-conditioned routers existed.
        let old = #"{"input_size": 32, "in_channels": 3, "patch_size": 4, "hidden_size": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 4, "num_experts": 8, "frequency_embedding_size": 256, "norm_eps": 1e-5}"#
        let decoded = try JSONDecoder().decode(RouterConfig.self, from: Data(old.utf8))
        XCTAssertEqual(decoded, .cpuTiny)
        XCTAssertEqual(decoded.kind, .textFree)
        let text = try JSONDecoder().decode(RouterConfig.self, from: JSONEncoder().encode(RouterConfig.cpuTiny.withText()))
        XCTAssertEqual(text.textDim, 384)
    }

    func testPooledIsTheMaskedMeanNormalised() throws {
        // Two captions of 3 tokens of width 2; the second has one padding token.
        let tokens = try Tensor([1, 0, 3, 0, 100, 100, 0, 2, 0, 4, 9, 9] as [Float], shape: [2, 3, 2])
        let mask = try Tensor([1, 1, 1, 1, 1, 0] as [Float], shape: [2, 3]).ne(0)
        let pooled = try TextCondition(tokens: tokens, mask: mask).pooled()
        let a: [Float] = [104 / 3, 100 / 3], b: [Float] = [0, 3]
        func unit(_ v: [Float]) -> [Float] { let n = (v[0] * v[0] + v[1] * v[1]).squareRoot(); return v.map { $0 / n } }
        try assertClose(pooled, Tensor(unit(a) + unit(b), shape: [2, 2]), atol: 1e-6, "pooled")
    }
}
