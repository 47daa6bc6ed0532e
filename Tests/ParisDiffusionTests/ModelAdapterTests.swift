import ParisDiffusion
import ParisModels
import Torch
import XCTest

/// The DiT and Paris-expert adapters call the models as the samplers expect.
final class ModelAdapterTests: XCTestCase {
    /// With learn_sigma the velocity is the first C of the 2·C output channels; nil labels mean the null class.
    func testDiTAdapterSlicesSigmaAndUsesNullClass() throws {
        Runtime.manualSeed(0)
        var config = try DiTConfig.preset(named: "DiT-N/4")
        config.learnSigma = true
        let model = try DiT(config)
        try withNoGrad {  // a non-zero output: the zero-initialised layers get random weights
            for block in model.blocks { try block.adaLNModulation.weight.normal_(std: 0.05) }
            try model.finalLayer.linear.weight.normal_(std: 0.05)
        }
        let x = try Tensor.randn([2, 1, 28, 28]), t = try Tensor([10, 900] as [Float])
        let null = try Tensor.full([2], Double(config.numClasses), dtype: .int64)
        let v = try VelocityModel.dit(model)(x, t, nil)
        XCTAssertEqual(v.shape, [2, 1, 28, 28])
        try assertClose(v, try model(x: x, t: t, y: null).slice(1, 0, 1), "null-class velocity")
    }

    /// nil text means the expert's null text; given text is passed through.
    func testExpertAdapterUsesNullText() throws {
        Runtime.manualSeed(0)
        let model = try ParisExpert(.cpuTiny)
        try withNoGrad {
            for layer in model.layers { try layer.crossAttn.outProj.weight.normal_(std: 0.05) }
            try model.finalLayer.linear.weight.normal_(std: 0.05)
        }
        let x = try Tensor.randn([2, 3, 32, 32]), t = try Tensor([100, 500] as [Float])
        let text = try Tensor.randn([2, ParisExpertConfig.cpuTiny.textLength, ParisExpertConfig.cpuTiny.textDim])
        let adapter = VelocityModel.expert(model)
        try assertClose(adapter(x, t, nil), try model(x: x, t: t, text: model.nullText(batch: 2)), "null text")
        try assertClose(adapter(x, t, text), try model(x: x, t: t, text: text), "with text")
    }
}
