import ParisDiffusion
import ParisModels
import Torch
import XCTest

/// `ExpertVelocity`: the guided velocity of a Paris expert, flow-matching or DDPM ε.
final class ExpertVelocityTests: XCTestCase {
    static let config = ParisExpertConfig(inputSize: 8, inChannels: 3, patchSize: 2, hiddenSize: 16, depth: 2,
                                          numHeads: 2, textDim: 12, textLength: 5, nullText: .learned)

    /// A small expert with random weights everywhere (the zero-initialised layers too), so every input matters.
    func expert() throws -> ParisExpert {
        Runtime.manualSeed(0)
        let model = try ParisExpert(Self.config)
        try withNoGrad {
            for layer in model.layers { try layer.crossAttn.outProj.weight.normal_(std: 0.2) }
            try model.finalLayer.linear.weight.normal_(std: 0.2)
        }
        model.train(false)
        return model
    }

    /// x [2, 3, 8, 8], network times [2], prompts [2, L, 12] with some padding in the mask.
    func inputs(length: Int = config.textLength) throws -> (Tensor, Tensor, TextCondition) {
        Runtime.manualSeed(1)
        let x = try Tensor.randn([2, 3, 8, 8]), t = try Tensor([120, 870] as [Float])
        let mask = try Tensor((0..<(2 * length)).map { $0 % length < length - $0 / length }, shape: [2, length])
        return (x, t, try TextCondition(tokens: Tensor.randn([2, length, 12]), mask: mask))
    }

    /// With prompts of the null text's length, cond and uncond run in one forward pass on [x; x]; that equals
    /// the two separate passes v_u + s·(v_c − v_u) (and s = 1 is the conditional pass, nil text the null text).
    func testOnePassGuidanceEqualsTwoPasses() throws {
        let model = try expert()
        let velocity = try ExpertVelocity(model, objective: .flowMatching(.uniform))
        XCTAssertNil(velocity.conversion)
        let (x, t, text) = try inputs()
        try withNoGrad {
            let vc = try model(x: x, t: t, text: text.tokens, textMask: text.mask)
            let vu = try model(x: x, t: t, text: model.nullText(batch: 2))
            XCTAssertGreaterThan(try (vc - vu).abs().amax().item(), 1e-2, "the text must change the output")
            for s in [0.0, 4.0] {
                try assertClose(velocity(x, t, text, scale: s), Guidance.combine(conditional: vc, unconditional: vu,
                                                                                 scale: s),
                                rtol: 1e-5, atol: 1e-5, "one pass, s = \(s)")
            }
            try assertClose(velocity(x, t, text, scale: 1), vc, "s = 1")
            try assertClose(velocity(x, t, nil, scale: 4), vu, "no text")
        }
    }

    /// Prompts of another length cannot be stacked with the null text: two passes.
    func testOtherPromptLengthsTakeTwoPasses() throws {
        let model = try expert()
        let velocity = try ExpertVelocity(model, objective: .flowMatching(.uniform))
        let (x, t, text) = try inputs(length: 3)
        try withNoGrad {
            let vc = try model(x: x, t: t, text: text.tokens, textMask: text.mask)
            let vu = try model(x: x, t: t, text: model.nullText(batch: 2))
            try assertClose(velocity(x, t, text, scale: 3), Guidance.combine(conditional: vc, unconditional: vu,
                                                                             scale: 3), "two passes")
        }
    }

    /// A DDPM ε expert's output goes through `EpsilonConversion` (v = ε̂ − x̂0 at the SNR-matched step), not
    /// straight out; guided, the one pass again equals the two.
    func testEpsilonExpertGoesThroughTheConversion() throws {
        let model = try expert()
        let objective = Objective.ddpmEpsilon(.cosine, numTimesteps: 1000)
        let velocity = try ExpertVelocity(model, objective: objective, conversion: .init(x0Clamp: 5))
        XCTAssertEqual(velocity.conversion?.options, .init(x0Clamp: 5))
        let conversion = EpsilonConversion(schedule: try DDPMSchedule(.cosine), options: .init(x0Clamp: 5))
        let (x, t, text) = try inputs()
        try withNoGrad {
            let vc = try conversion.velocityModel { x, t, _ in
                try model(x: x, t: t, text: text.tokens, textMask: text.mask)
            }(x, t, nil)
            let vu = try conversion.velocityModel { x, t, _ in try model(x: x, t: t, text: model.nullText(batch: 2)) }(
                x, t, nil)
            let raw = try model(x: x, t: t, text: text.tokens, textMask: text.mask)
            XCTAssertGreaterThan(try (vc - raw).abs().amax().item(), 1e-2, "the conversion must change the output")
            try assertClose(velocity.velocity(x, t, text: text), vc, "converted, conditional")
            try assertClose(velocity(x, t, text, scale: 2.5),
                            Guidance.combine(conditional: vc, unconditional: vu, scale: 2.5),
                            rtol: 1e-5, atol: 1e-5, "converted, guided")
        }
    }

    func testTextConditionShapesAreChecked() throws {
        assertThrows({ try TextCondition(tokens: Tensor.zeros([2, 5]), mask: nil) }, contains: "[B, L, D]")
        assertThrows({ try TextCondition(tokens: Tensor.zeros([2, 5, 12]), mask: Tensor.ones([2, 4], dtype: .bool)) },
                     contains: "expected [2, 5]")
        let text = try TextCondition(tokens: Tensor.randn([3, 5, 12]), mask: Tensor.ones([3, 5], dtype: .bool))
        let rows = try text.rows(Tensor([2, 0] as [Int64]))
        XCTAssertEqual(rows.batch, 2)
        try assertClose(rows.tokens.select(0, 0), text.tokens.select(0, 2))
        XCTAssertEqual(rows.mask?.shape, [2, 5])
    }
}
