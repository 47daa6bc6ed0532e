import Foundation
import ParisDiffusion
@testable import ParisEnsemble
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import Torch
import XCTest

/// Issue #18, item 8: a NaN or ∞ in sampling (`--cfg 1e30`, flipped bytes in an expert's weights) names the expert,
/// the router or the guidance setting, at the step it happened, instead of ending in black PNGs and an
/// `EncodingError` on trace.json.
final class NonFiniteTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        Runtime.threads = 1
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-nonfinite-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// A well-behaved member: v = −x (+ the mean text token when conditioned).
    let calm = MixtureMember.velocity(name: "calm") { x, _, text in
        guard let text else { return try 0.0 - x }
        return try (0.0 - x) + FlowPath.broadcast(text.tokens.mean(dims: [1, 2]), like: x)
    }

    /// The router [0.5, 0.5] for every sample.
    let evenRouter: MixtureOfExperts.RouterFunction = { x, _, _ in try Tensor.full([x.size(0), 2], 0.5) }

    let text = try! TextCondition(tokens: Tensor.full([2, 3, 4], 0.25), mask: nil)

    /// Samples 3 uniform Euler steps (t = 1, 2/3, 1/3) of two 1×2×2 samples with CFG `scale`.
    func sample(_ members: [MixtureMember?], router: MixtureOfExperts.RouterFunction? = nil, scale: Double = 2,
                strategy: RoutingStrategy = .full) throws -> RoutingTrace {
        let mixture = try MixtureOfExperts(members: members, router: router ?? evenRouter)
        let sampler = try MixtureSampler(config: SamplerConfig(steps: 3, guidanceScale: scale), strategy: strategy)
        let noise = try MixtureSampler.noise(seeds: [1, 2], channels: 1, size: 2)
        return try sampler.sample(mixture, noise: noise, text: text, seeds: [1, 2]).trace
    }

    /// An expert whose own velocity turns NaN from the second step on (t < 1, network time < 1000), as weights with
    /// a NaN do: the error names that expert, the step and t, and blames its weights, not the guidance.
    func testNaNVelocityNamesTheExpertAndItsWeights() throws {
        let broken = MixtureMember.velocity(name: "expert_1") { x, t, _ in
            try x * (t.amax().item() < 999 ? Double.nan : 1.0)
        }
        XCTAssertEqual(try sample([calm, calm]).steps.count, 3, "sane members sample")
        assertThrows({ try self.sample([self.calm, broken]) },
                     contains: "expert 1 (expert_1) produced a non-finite velocity at t=0.6667 (step 2 of 3) with cfg 2")
        assertThrows({ try self.sample([self.calm, broken]) }, contains: "so it is the weights, not the guidance")
        // Without guidance too (cfg 1: one pass, nothing else to blame).
        assertThrows({ try self.sample([self.calm, broken], scale: 1) },
                     contains: "expert 1 (expert_1) produced a non-finite velocity at t=0.6667 (step 2 of 3) with cfg 1 "
                        + "(no guidance): its own (unguided) output is already non-finite")
        // Top-1 on the other expert's rows only: the same check on the rows it runs on.
        let right: MixtureOfExperts.RouterFunction = { x, _, _ in
            try Tensor((0..<x.size(0)).flatMap { $0 == 0 ? [Float(0.9), 0.1] : [0.1, 0.9] }, shape: [x.size(0), 2])
        }
        assertThrows({ try self.sample([self.calm, broken], router: right, strategy: .top1) },
                     contains: "expert 1 (expert_1) produced a non-finite velocity at t=0.6667 (step 2 of 3)")
    }

    /// Finite conditional and unconditional velocities whose difference times the scale overflows float32
    /// (6·10³⁷ · 10 > 3.4·10³⁸): the error names the guidance setting, not the expert's weights.
    func testGuidanceOverflowNamesTheGuidance() throws {
        let loud = MixtureMember.velocity(name: "expert_0") { x, _, text in
            try x * 0.0 + (text == nil ? -3e37 : 3e37)
        }
        assertThrows({ try self.sample([loud, self.calm], scale: 10) },
                     contains: "expert 0 (expert_0) produced a non-finite velocity at t=1 (step 1 of 3) with cfg 10: "
                        + "its unguided velocities (with the prompt and with the null prompt) are finite, so it is the "
                        + "guidance setting")
        // A diverged state (the input itself is huge) is told apart from broken weights.
        let growing = MixtureMember.velocity(name: "expert_0") { x, _, _ in try x * -1e20 }  // overflows at step 2
        assertThrows({ try self.sample([growing, self.calm], scale: 1) },
                     contains: "its input x_t is already at max |x_t| = ")
        assertThrows({ try self.sample([growing, self.calm], scale: 1) },
                     contains: "the sampling diverged in earlier steps, without guidance")
        assertThrows({ try self.sample([growing, self.calm], scale: 2) },
                     contains: "the sampling diverged in earlier steps, most likely from the guidance (cfg 2)")
    }

    /// A router whose probabilities are NaN: the error names the router, not an expert.
    func testNaNRouterNamesTheRouter() throws {
        let nanRouter: MixtureOfExperts.RouterFunction = { x, _, _ in try Tensor.full([x.size(0), 2], .nan) }
        assertThrows({ try self.sample([self.calm, self.calm], router: nanRouter) },
                     contains: "the router produced non-finite probabilities at t=1 (step 1 of 3) with cfg 2: its own "
                        + "(unguided) output is already non-finite on a finite input")
    }

    /// `--cfg 1e30` (or ∞, NaN) is refused when the settings are made, naming the option, before anything is loaded.
    func testAbsurdGuidanceIsRefusedUpFront() throws {
        for bad in [1e30, -1e30, .infinity, .nan, SamplerConfig.maxGuidanceScale + 1] {
            assertThrows({ try SamplerConfig(steps: 3, guidanceScale: bad) },
                         contains: "the guidance scale (--cfg, guidance_scale) must be finite and within ±100")
        }
        XCTAssertNoThrow(try SamplerConfig(guidanceScale: SamplerConfig.maxGuidanceScale))
        XCTAssertNoThrow(try SamplerConfig(guidanceScale: 0))
        let json = Data(#"{"guidance_scale": 1e30}"#.utf8)
        assertThrows({ try JSONDecoder().decode(SamplerConfig.self, from: json) }, contains: "--cfg, guidance_scale")
    }

    /// The single-model sampler (`FlowSampler`) checks its guided velocity the same way.
    func testSingleModelSamplerNamesTheModel() throws {
        let sampler = try FlowSampler(SamplerConfig(steps: 2, guidanceScale: 10))
        let noise = try Tensor.randn([1, 1, 2, 2])
        let condition = try Tensor.ones([1, 1, 2, 2])
        // v = 3·10³⁷ on the condition (ones), −3·10³⁷ on the null condition (class label 0: zeros).
        let loud = VelocityModel { x, _, c in try x * 0.0 + (try c! * 6e37 - 3e37) }
        assertThrows({ try sampler.sample(loud, noise: noise, condition: condition, null: .classLabel(0)) },
                     contains: "the model produced a non-finite velocity at t=1 (step 1 of 2) with cfg 10: its unguided "
                        + "velocities (with the prompt and with the null prompt) are finite")
        let broken = VelocityModel { x, _, _ in try x * Double.nan }
        assertThrows({ try sampler.sample(broken, noise: noise, condition: condition, null: .classLabel(0)) },
                     contains: "so it is the weights")
    }

    /// End to end: expert 0's weights hold a NaN (as flipped bytes make), and `paris sample --force` over a good
    /// samples folder fails naming that expert; the previous samples stay byte for byte and no black PNG, trace or
    /// staging folder is left.
    func testForcedSampleWithBrokenExpertNamesItAndKeepsTheOldSamples() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        var job = SampleJob(run: run, name: "good", prompts: ["a cat", "a car"], imagesPerPrompt: 1, strategy: .top2,
                            sampler: try SamplerConfig(steps: 3, guidanceScale: 2), seed: 11, batchSize: 2)
        let first = try job.run(encode: TinyRun.encoder)
        let before = fileTree(first.folder)
        XCTAssertEqual(before.count, 4, "\(before.keys.sorted())")  // 2 images, grid, trace

        let weights = run.expert(0).appendingPathComponent(ExpertCheckpoint.weightsName)
        var tensors = try SafeTensors.load(weights).tensors
        let name = "final_layer.linear.weight"
        let w = try XCTUnwrap(tensors[name], "\(tensors.keys.sorted())")
        tensors[name] = try w * Double.nan
        try SafeTensors.save(tensors, to: weights, metadata: ["paris_class": ExpertCheckpoint.className])

        job.overwrite = true
        assertThrows({ try job.run(encode: TinyRun.encoder) },
                     contains: "expert 0 (expert_0) produced a non-finite velocity at t=1 (step 1 of 3) with cfg 2: its "
                        + "own (unguided) output is already non-finite on a finite input, so it is the weights")
        XCTAssertEqual(fileTree(first.folder), before, "a failed --force sample changed the previous samples")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.samples.path), ["good"],
                       "no staging folder is left behind")
    }
}
