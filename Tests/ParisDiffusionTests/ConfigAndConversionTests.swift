import Foundation
import ParisDiffusion
import Torch
import XCTest

/// Config round trips, clear errors for bad values, and properties of the samplers and the ε→v conversion.
final class ConfigAndConversionTests: XCTestCase {
    func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    /// The error message of `body`, failing when it does not throw.
    func message(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testObjectiveJSONRoundTrip() throws {
        let objectives: [Objective] = [.flowMatching(.uniform), .flowMatching(.logitNormal(mean: 0.5, std: 0.8)),
                                       .ddpmEpsilon(.cosine, numTimesteps: 1000), .ddpmEpsilon(.linear, numTimesteps: 500)]
        for o in objectives {
            let data = try JSONEncoder().encode(o)
            XCTAssertEqual(try JSONDecoder().decode(Objective.self, from: data), o)
        }
        let json = String(decoding: try JSONEncoder().encode(Objective.flowMatching(.logitNormal(mean: 0, std: 1))),
                          as: UTF8.self)
        XCTAssertTrue(json.contains("\"time_sampling\":\"logit_normal\"") && json.contains("\"logit_std\""), json)
        XCTAssertEqual(try decode(Objective.self, #"{"type": "ddpm_epsilon"}"#), .ddpmEpsilon(.linear, numTimesteps: 1000))
        XCTAssertEqual(try decode(Objective.self, #"{"type": "flow_matching", "time_sampling": "logit_normal"}"#),
                       .flowMatching(.logitNormal(mean: 0, std: 1)))
        let sampler = try decode(SamplerConfig.self,
                                 #"{"solver": "heun", "steps": 20, "time_grid": "diffusers", "guidance_scale": 4}"#)
        XCTAssertEqual(sampler, try SamplerConfig(solver: .heun, steps: 20, timeGrid: .diffusers, guidanceScale: 4))
        XCTAssertEqual(try decode(SamplerConfig.self, "{}"), try SamplerConfig())
    }

    func testBadConfigsGiveClearErrors() throws {
        XCTAssertTrue(message { _ = try self.decode(Objective.self, #"{"type": "score_matching"}"#) }
            .contains("unknown objective type 'score_matching'"))
        XCTAssertTrue(message { _ = try self.decode(Objective.self, #"{"type": "flow_matching", "time_sampling": "beta"}"#) }
            .contains("unknown time_sampling 'beta'"))
        XCTAssertTrue(message {
            _ = try self.decode(Objective.self, #"{"type": "ddpm_epsilon", "beta_schedule": "quadratic"}"#)
        }.contains("unknown beta_schedule 'quadratic'"))
        XCTAssertTrue(message {
            _ = try self.decode(Objective.self, #"{"type": "flow_matching", "time_sampling": "logit_normal", "logit_std": -1}"#)
        }.contains("logit_std must be positive"))
        XCTAssertTrue(message { _ = try self.decode(Objective.self, #"{"type": "ddpm_epsilon", "num_timesteps": 0}"#) }
            .contains("num_timesteps must be at least 2"))
        XCTAssertTrue(message { _ = try self.decode(SamplerConfig.self, #"{"steps": -3}"#) }
            .contains("steps must be ≥ 1, not -3"))
        XCTAssertTrue(message { _ = try self.decode(SamplerConfig.self, #"{"solver": "rk4"}"#) }
            .contains("unknown solver 'rk4'"))
        XCTAssertTrue(message { _ = try self.decode(SamplerConfig.self, #"{"time_grid": "karras"}"#) }
            .contains("unknown time_grid 'karras'"))
        XCTAssertTrue(message { _ = try SamplerConfig(steps: 0) }.contains("steps must be ≥ 1, not 0"))
        XCTAssertTrue(message { _ = try TimeGrid.uniform.times(steps: -1) }.contains("steps must be ≥ 1, not -1"))
        XCTAssertTrue(message { _ = try ConditionDropout(probability: 1.5) }.contains("must be in [0, 1], got 1.5"))
        XCTAssertTrue(message { _ = try ConditionDropout(probability: -0.1) }.contains("must be in [0, 1]"))
        XCTAssertTrue(message { _ = try self.decode(ConditionDropout.self, #"{"probability": 2}"#) }
            .contains("must be in [0, 1]"))
        XCTAssertTrue(message { try FlowSampler.validate(times: [1, 0.5, 0.7, 0]) }.contains("decrease strictly"))
        XCTAssertTrue(message { try FlowSampler.validate(times: [1.5, 0]) }.contains("[0, 1]"))
        XCTAssertTrue(message { try FlowSampler.validate(times: [1]) }.contains("at least 2"))
        XCTAssertTrue(message { _ = try DDPMSchedule(.linear, numTimesteps: 1) }.contains("at least 2"))
    }

    /// Issue #18: `--steps 1000000000` reserved 8 GB for the time grid and 10¹² aborted; a DDPM num_timesteps of
    /// 10¹² in a config allocated its β table likewise. Both are bounded before anything is allocated.
    func testStepAndTimestepBounds() throws {
        XCTAssertEqual(SamplerConfig.maxSteps, 10_000)
        XCTAssertEqual(try SamplerConfig(steps: SamplerConfig.maxSteps).times().count, SamplerConfig.maxSteps + 1)
        for steps in [SamplerConfig.maxSteps + 1, 1_000_000_000, 1_000_000_000_000, Int.max] {
            XCTAssertTrue(message { _ = try SamplerConfig(steps: steps) }.contains("steps must be ≤ 10000"), "\(steps)")
            XCTAssertTrue(message { _ = try TimeGrid.diffusers.times(steps: steps) }.contains("≤ 10000"), "\(steps)")
            XCTAssertTrue(message { _ = try self.decode(SamplerConfig.self, #"{"steps": \#(steps)}"#) }
                .contains("not \(steps)"))
        }
        // A config that was valid when made but edited afterwards is checked again where it is used.
        var edited = try SamplerConfig()
        edited.steps = 1_000_000_000_000
        XCTAssertTrue(message { _ = try FlowSampler(edited) }.contains("SamplerConfig.maxSteps"))
        XCTAssertTrue(message { _ = try edited.times() }.contains("SamplerConfig.maxSteps"))
        XCTAssertTrue(message { try FlowSampler.validate(times: [Double](repeating: 0.5, count: 10_002)) }
            .contains("at most 10001 entries"))

        XCTAssertEqual(DDPMSchedule.maxTimesteps, 100_000)
        XCTAssertEqual(try DDPMSchedule(.cosine, numTimesteps: 4000).betas.count, 4000)
        XCTAssertTrue(message { _ = try DDPMSchedule(.linear, numTimesteps: 1_000_000_000_000) }
            .contains("num_timesteps must be ≤ 100000"))
        XCTAssertTrue(message {
            _ = try self.decode(Objective.self, #"{"type": "ddpm_epsilon", "num_timesteps": 1000000000000}"#)
        }.contains("num_timesteps must be ≤ 100000"))
    }

    func testSamplerInputErrors() throws {
        let model = VelocityModel { x, _, _ in x }
        let x = try Tensor.randn([2, 1, 2, 2])
        let guided = try FlowSampler(SamplerConfig(steps: 2, guidanceScale: 3))
        XCTAssertTrue(message { _ = try guided.sample(model, noise: x, condition: Tensor([0, 1] as [Int64])) }
            .contains("needs a null condition"))
        XCTAssertTrue(message {
            _ = try guided.sample(model, noise: x, condition: Tensor([0, 1, 1] as [Int64]), null: .classLabel(5))
        }.contains("batch 3"))
        XCTAssertTrue(message {
            _ = try NullCondition.embedding(Tensor.zeros([3, 4])).batch(like: Tensor.zeros([2, 5, 4]))
        }.contains("null embedding has shape [3, 4]"))
        let objective = Objective.flowMatching(.uniform)
        XCTAssertTrue(message {
            _ = try objective.loss(model: { x, _, _ in try x.sum(dims: [1]) }, x0: x)
        }.contains("the model's output has shape"))
        XCTAssertTrue(message {
            _ = try objective.loss(model: { x, _, _ in x }, x0: x, condition: Tensor([0, 1] as [Int64]),
                                   dropout: ConditionDropout(probability: 0.5))
        }.contains("needs a null condition"))
    }

    func testTimeBucketedLoss() throws {
        let out = ObjectiveLoss(loss: try Tensor(scalar: 0), perSample: try Tensor([1, 2, 3, 5] as [Float]),
                                t: try Tensor([0.05, 0.5, 0.55, 1.0] as [Float]), networkTime: try Tensor.zeros([4]),
                                dropped: nil)
        var buckets = try TimeBucketedLoss(buckets: 4)
        try buckets.add(out)
        XCTAssertEqual(buckets.counts, [1, 0, 2, 1])
        XCTAssertEqual(buckets.means, [1, nil, 2.5, 5])
        buckets.reset()
        XCTAssertEqual(buckets.counts, [0, 0, 0, 0])
        XCTAssertTrue(message { _ = try TimeBucketedLoss(buckets: 0) }.contains("at least 1"))
    }

    func testTimeGrids() throws {
        XCTAssertEqual(try TimeGrid.uniform.times(steps: 4), [1, 0.75, 0.5, 0.25, 0])
        let diffusers = try TimeGrid.diffusers.times(steps: 3)
        XCTAssertEqual(diffusers.count, 4)
        XCTAssertEqual(diffusers[0], 1)
        XCTAssertEqual(diffusers[2], Double(Float(0.001)))
        XCTAssertEqual(diffusers[3], 0)
        let shifted = try TimeGrid.uniform.times(steps: 2, shift: 3)
        XCTAssertEqual(shifted[1], 3 * 0.5 / (1 + 2 * 0.5), accuracy: 1e-12)
    }

    func testConditionDropoutAndNullConditions() throws {
        Runtime.manualSeed(3)
        let labels = try Tensor((0..<1000).map { Int64($0 % 7) })
        let (dropped, mask) = try ConditionDropout(probability: 0.25).apply(to: labels, null: .classLabel(7))
        let fraction = try mask.to(dtype: .float32).mean().item()
        XCTAssertEqual(fraction, 0.25, accuracy: 0.05)
        XCTAssertTrue(try dropped.eq(7).equal(mask))
        XCTAssertTrue(try dropped.masked(mask.logicalNot()).equal(labels.masked(mask.logicalNot())))
        // p = 0 draws nothing: the generator's next number is unchanged.
        Runtime.manualSeed(4)
        _ = try ConditionDropout(probability: 0).apply(to: labels, null: .classLabel(7))
        let after = try Tensor.rand([1]).item()
        Runtime.manualSeed(4)
        XCTAssertEqual(after, try Tensor.rand([1]).item())
        // Embedding conditions: [B, L, D] with a null [L, D].
        let emb = try Tensor.randn([3, 2, 4]), null = try Tensor.full([2, 4], 9)
        let replaced = try ConditionDropout.replace(emb, where: Tensor([false, true, false]), with: .embedding(null))
        try assertClose(replaced.select(0, 1), null)
        try assertClose(replaced.select(0, 0), emb.select(0, 0))
    }

    /// Guidance with s = 1 is one plain conditional call; s ≠ 1 batches cond and uncond in one call.
    func testGuidanceBatching() throws {
        var batches: [Int] = []
        let model = VelocityModel { x, t, c in
            batches.append(x.size(0))
            XCTAssertEqual(t.shape, [x.size(0)])
            return try x * 0 + c!.to(dtype: .float32).reshape([x.size(0), 1, 1, 1])
        }
        let x = try Tensor.zeros([2, 1, 1, 1]), c = try Tensor([1, 3] as [Int64])
        let v1 = try FlowSampler(SamplerConfig(steps: 1, guidanceScale: 1))
            .guidedVelocity(model, x: x, t: 1, condition: c, null: .classLabel(0))
        XCTAssertEqual(try v1.flatten().toArray(as: Float.self), [1, 3])
        let v4 = try FlowSampler(SamplerConfig(steps: 1, guidanceScale: 4))
            .guidedVelocity(model, x: x, t: 1, condition: c, null: .classLabel(0))
        XCTAssertEqual(try v4.flatten().toArray(as: Float.self), [4, 12])  // 0 + 4·(c − 0)
        XCTAssertEqual(batches, [2, 4])
    }

    /// For one data point x0, the exact ε network of a DDPM schedule is ε̂(u, τ) = (u − √ᾱ_τ·x0)/√(1−ᾱ_τ).
    /// Converted with SNR matching it must give (nearly) the exact flow velocity (x_t − x0)/t, and Euler sampling
    /// with it must land on x0.
    func testEpsilonConversionOfAnExactEpsilonModel() throws {
        let x0 = try Tensor([0.7, -1.2, 0.3, 2.0] as [Float], shape: [1, 1, 2, 2])
        for kind in BetaSchedule.allCases {
            let schedule = try DDPMSchedule(kind)
            let conversion = EpsilonConversion(schedule: schedule)
            let model = conversion.velocityModel { u, tau, _ in
                let (alpha, sigma) = try schedule.coefficients(at: tau.to(dtype: .int64))
                return try (u - FlowPath.broadcast(alpha, like: u) * x0) / FlowPath.broadcast(sigma, like: u)
            }
            Runtime.manualSeed(11)
            let noise = try Tensor.randn([1, 1, 2, 2])
            for t in [0.1, 0.3, 0.5, 0.7, 0.9] {
                let xt = try FlowPath.interpolate(x0: x0, noise: noise, t: Tensor([Float(t)]))
                let v = try model(xt, FlowPath.networkTime(t, batch: 1), nil)
                let exact = try FlowPath.velocity(x0: x0, noise: noise)
                let err = try (v - exact).abs().amax().item() / (try exact.abs().amax().item())
                XCTAssertLessThan(err, 0.05, "\(kind) t=\(t): relative error \(err)")
            }
            let sample = try FlowSampler(SamplerConfig(steps: 30)).sample(model, noise: noise)
            try assertClose(sample, x0, rtol: 0, atol: 0.05, "\(kind) sample")
        }
    }
}
