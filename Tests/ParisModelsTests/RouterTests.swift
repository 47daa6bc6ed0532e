import Foundation
import ParisModels
import Torch
import XCTest

final class RouterTests: XCTestCase {
    /// The configuration of scripts/fixtures/paris.py's `router_fixture`.
    static let fixtureConfig = RouterConfig(inputSize: 8, inChannels: 3, patchSize: 2, hiddenSize: 16, depth: 2,
                                            numHeads: 2, numExperts: 5)

    func testForwardAndGradientParity() throws {
        let fx = try fixture("paris_router")
        let model = try Router(Self.fixtureConfig)
        try model.loadStateDict(referenceStateDict(fx))
        let x = try tensor(fx, "in.x").clone().requiresGrad(true)
        let t = try tensor(fx, "in.t")
        let logits = try model(x: x, t: t)
        try assertCloseScaled(logits, tensor(fx, "out"), "logits")
        try (logits * tensor(fx, "r")).sum().backward()
        try assertCloseScaled(XCTUnwrap(x.grad), tensor(fx, "grad.x"), "grad.x")
        var checked = 0
        for (key, expected) in fx where key.hasPrefix("grad.") && key != "grad.x" {
            let name = String(key.dropFirst(5))
            let p = try XCTUnwrap(model.parameter(name), name)
            try assertCloseScaled(XCTUnwrap(p.grad, name), expected, key)
            checked += 1
        }
        XCTAssertEqual(checked, 9)
        let p = try withNoGrad { try model.probabilities(x: x, t: t) }
        try assertClose(p.sum(dims: [1]), Tensor.ones([2]), atol: 1e-5, "probabilities sum to 1")
    }

    func testStateDictKeysAreTheReferenceKeys() throws {
        let reference = referenceStateDict(try fixture("paris_router"))
        let model = try Router(Self.fixtureConfig)
        XCTAssertEqual(Set(model.stateDictKeys()), Set(reference.keys))
        for key in ["patch_embed.weight", "pos_embed", "cls_token", "time_embed.mlp.0.weight",
                    "layers.0.adaLN_modulation.1.weight", "layers.1.attn.in_proj_weight", "layers.1.attn.out_proj.bias",
                    "layers.0.mlp.0.weight", "layers.0.mlp.2.bias", "head.0.weight", "head.2.weight", "head.2.bias",
                    "head.4.weight", "head.4.bias"] {
            XCTAssertNotNil(reference[key], key)
        }
        var wrongShape = reference
        wrongShape["head.4.weight"] = try Tensor.zeros([8, 16])
        XCTAssertThrowsError(try model.loadStateDict(wrongShape)) {
            XCTAssertTrue("\($0)".contains("head.4.weight"), "\($0)")
        }
        var missing = reference
        missing["cls_token"] = nil
        XCTAssertThrowsError(try model.loadStateDict(missing)) { XCTAssertTrue("\($0)".contains("cls_token"), "\($0)") }
    }

    func testAnalyticParameterCounts() throws {
        for config in [Self.fixtureConfig, .cpuTiny, .cpuSmall] {
            let model = try Router(config)
            XCTAssertEqual(model.parameterCount, config.parameterCount, "\(config)")
            XCTAssertEqual(try stateDictScalars(model), config.stateDictCount, "\(config)")
        }
        XCTAssertEqual(RouterConfig.cpuTiny.parameterCount, 177_992)
        XCTAssertEqual(RouterConfig.cpuSmall.parameterCount, 1_260_936)
        // The released Paris router: "129M" parameters.
        XCTAssertEqual(RouterConfig.paris.parameterCount, 128_940_296)
        XCTAssertEqual(RouterConfig.paris.stateDictCount, 129_136_904)
        XCTAssertEqual(try RouterConfig.preset(named: "router-B/2"), .paris)
        XCTAssertThrowsError(try RouterConfig.preset(named: "router-X")) {
            XCTAssertTrue("\($0)".contains("router-T/4"), "\($0)")
        }
    }

    func testBadInputsGiveClearErrors() throws {
        let model = try Router(Self.fixtureConfig)
        let t = try Tensor([10, 500] as [Float], shape: [2])
        XCTAssertThrowsError(try model(x: Tensor.randn([2, 4, 8, 8]), t: t)) {
            XCTAssertTrue("\($0)".contains("[B, 3, 8, 8]"), "\($0)")
        }
        XCTAssertThrowsError(try model(x: Tensor.randn([2, 3, 8, 8]), t: Tensor.zeros([3]))) {
            XCTAssertTrue("\($0)".contains("t of shape [2]"), "\($0)")
        }
        XCTAssertThrowsError(try Router(RouterConfig(inputSize: 9, inChannels: 3, patchSize: 2, hiddenSize: 16,
                                                     depth: 1, numHeads: 2, numExperts: 2))) {
            XCTAssertTrue("\($0)".contains("not divisible by patch_size"), "\($0)")
        }
    }

    func testConfigJSONAndInitialisation() throws {
        let data = try JSONEncoder().encode(RouterConfig.paris)
        let json = try XCTUnwrap(String(data: data, encoding: .utf8))
        XCTAssertTrue(json.contains("\"num_experts\":8") && json.contains("\"hidden_size\":768"), json)
        XCTAssertEqual(try JSONDecoder().decode(RouterConfig.self, from: data), .paris)

        // adaLN-Zero: every block starts as the identity, so the logits depend on the CLS token and the head only.
        let model = try Router(.cpuTiny)
        let t = try Tensor([3, 700] as [Float], shape: [2])
        let logits = try withNoGrad { try model(x: Tensor.randn([2, 3, 32, 32]), t: t) }
        XCTAssertEqual(logits.shape, [2, 8])
        try assertClose(logits.select(0, 0), logits.select(0, 1), atol: 1e-6, "identical logits at init")
    }
}
