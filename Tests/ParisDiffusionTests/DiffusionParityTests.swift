import Foundation
import ParisDiffusion
import Torch
import XCTest

/// Parity with scripts/fixtures/diffusion.py: the same tiny linear model, the same seeds, the same draws.
final class DiffusionParityTests: XCTestCase {
    static let numClasses = 3
    static let labels: [Int64] = [0, 2, 1]

    struct Tiny {
        let w: Tensor, b: Tensor, e: Tensor

        init(_ fx: [String: Tensor]) throws {
            w = try tensor(fx, "param.W")
            b = try tensor(fx, "param.b")
            e = try tensor(fx, "param.E")
        }

        /// v = x·Wᵀ + (t_net/1000)·b + E[c].
        func callAsFunction(_ x: Tensor, _ tnet: Tensor, _ c: Tensor?) throws -> Tensor {
            guard let c else { throw DiffusionError("the tiny model needs labels") }
            let out = try x.flatten(start: 1).matmul(w.transpose(0, 1)) + (tnet / 1000.0).unsqueeze(1) * b
                + e.indexSelect(dim: 0, index: c)
            return try out.reshape(x.shape)
        }
    }

    func labels() throws -> Tensor { try Tensor(Self.labels) }

    func testFlowMatchingLoss() throws {
        let fx = try fixture("diffusion")
        let tiny = try Tiny(fx), x0 = try tensor(fx, "x0")
        let cases: [(String, UInt64, Objective, Double)] = [
            ("fm_uniform", 1, .flowMatching(.uniform), 0.5),
            ("fm_logit", 2, .flowMatching(.logitNormal(mean: -0.5, std: 1.2)), 0),
        ]
        for (name, seed, objective, p) in cases {
            Runtime.manualSeed(seed)
            let out = try objective.loss(model: { x, t, c in try tiny(x, t, c) }, x0: x0, condition: labels(),
                                         dropout: p > 0 ? ConditionDropout(probability: p) : nil,
                                         null: .classLabel(Self.numClasses))
            try assertClose(out.t, tensor(fx, "\(name).t"), name + ".t")
            try assertClose(out.networkTime, tensor(fx, "\(name).t") * 1000.0, name + ".network_time")
            try assertClose(out.perSample, tensor(fx, "\(name).per_sample"), name + ".per_sample")
            try assertClose(out.loss, tensor(fx, "\(name).loss"), name + ".loss")
            XCTAssertEqual(out.dropped != nil, p > 0)
            if let dropped = out.dropped {
                let expected = try tensor(fx, "\(name).cond").eq(Double(Self.numClasses))
                XCTAssertTrue(try dropped.equal(expected), "drop mask")
            }
        }
    }

    func testDDPMLoss() throws {
        let fx = try fixture("diffusion")
        let tiny = try Tiny(fx), x0 = try tensor(fx, "x0")
        for (name, seed, kind) in [("ddpm_linear", UInt64(3), BetaSchedule.linear), ("ddpm_cosine", 4, .cosine)] {
            Runtime.manualSeed(seed)
            let out = try Objective.ddpmEpsilon(kind, numTimesteps: 1000)
                .loss(model: { x, t, c in try tiny(x, t, c) }, x0: x0, condition: labels())
            let steps = try tensor(fx, "\(name).steps")
            XCTAssertTrue(try out.networkTime.equal(steps.to(dtype: .float32)), "\(name) steps")
            try assertClose(out.t, steps.to(dtype: .float32) / 999.0, name + ".t")
            try assertClose(out.perSample, tensor(fx, "\(name).per_sample"), name + ".per_sample")
            try assertClose(out.loss, tensor(fx, "\(name).loss"), name + ".loss")
        }
    }

    func testScheduleTables() throws {
        let fx = try fixture("diffusion")
        for kind in BetaSchedule.allCases {
            let schedule = try DDPMSchedule(kind)
            try assertClose(Tensor(schedule.betas), tensor(fx, "\(kind.rawValue).betas"), rtol: 1e-12, atol: 1e-15,
                            "\(kind) betas")
            try assertClose(schedule.alphasCumprodTensor(), tensor(fx, "\(kind.rawValue).alphas_cumprod"),
                            rtol: 1e-12, atol: 1e-15, "\(kind) alphas_cumprod")
        }
        let cosine = try DDPMSchedule(.cosine)
        XCTAssertEqual(cosine.betas.max(), DDPMSchedule.cosineMaxBeta)
    }

    func testEulerTrajectoryWithGuidance() throws {
        let fx = try fixture("diffusion")
        let tiny = try Tiny(fx)
        let sampler = try FlowSampler(SamplerConfig(solver: .euler, steps: 6, timeGrid: .uniform, guidanceScale: 3))
        let noise = try FlowSampler.initialNoise(shape: [3, 1, 2, 2], seed: 5)
        var seen: [Int] = []
        let states = try sampler.trajectory(VelocityModel { x, t, c in try tiny(x, t, c) }, noise: noise,
                                            condition: labels(), null: .classLabel(Self.numClasses)) {
            seen.append($0.step)
            XCTAssertEqual($0.steps, 6)
        }
        XCTAssertEqual(seen, Array(0..<6))
        try assertClose(Tensor.stack(states), tensor(fx, "euler.states"), "euler states")
        let last = try sampler.sample(VelocityModel { x, t, c in try tiny(x, t, c) }, noise: noise,
                                      condition: labels(), null: .classLabel(Self.numClasses))
        try assertClose(last, states[6], "sample = last state")
    }

    func testHeunTrajectoryOnDiffusersGrid() throws {
        let fx = try fixture("diffusion")
        let tiny = try Tiny(fx)
        let config = try SamplerConfig(solver: .heun, steps: 4, timeGrid: .diffusers, guidanceScale: 2.5)
        let times = try config.times()
        try assertClose(Tensor(times), tensor(fx, "heun.times"), rtol: 0, atol: 1e-12, "diffusers grid")
        let noise = try FlowSampler.initialNoise(shape: [3, 1, 2, 2], seed: 6)
        let states = try FlowSampler(config).trajectory(VelocityModel { x, t, c in try tiny(x, t, c) }, noise: noise,
                                                        condition: labels(), null: .classLabel(Self.numClasses))
        try assertClose(Tensor.stack(states), tensor(fx, "heun.states"), "heun states")
    }

    func testEpsilonToVelocity() throws {
        let fx = try fixture("diffusion")
        let tiny = try Tiny(fx)
        let x = try tensor(fx, "eps.x")
        let tnet = try Tensor([0.0, 0.3, 0.97, 1.0] as [Float]) * 1000.0
        let labels = try Tensor([0, 1, 2, 3] as [Int64])
        for kind in BetaSchedule.allCases {
            for mapping in [EpsilonConversion.TimeMapping.snrMatched, .direct] {
                let key = "eps.\(kind.rawValue).\(mapping.rawValue)"
                let conversion = EpsilonConversion(schedule: try DDPMSchedule(kind), options: .init(mapping: mapping))
                let (steps, _) = try conversion.steps(flowTime: tnet.to(dtype: .float64) / 1000.0)
                XCTAssertTrue(try steps.equal(tensor(fx, key + ".steps")), key + " steps")
                let v = try conversion.velocityModel(epsilon: { x, t, c in try tiny(x, t, c) })(x, tnet, labels)
                try assertClose(v, tensor(fx, key + ".v"), rtol: 1e-5, atol: 1e-5, key + ".v")
            }
        }
    }
}
