import Foundation
import ParisData
import ParisDiffusion
@testable import ParisEnsemble
import ParisModels
import ParisTestSupport
import Torch
import XCTest

/// The mixture with hand-built experts whose velocities are known functions, and a fake router.
final class MixtureTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    /// v0 = 2x + t/1000 (+ mean of the text tokens when conditioned); v1 = −x (+ 2·mean of the text).
    func members() -> [MixtureMember?] {
        func textTerm(_ text: TextCondition?, _ x: Tensor) throws -> Tensor {
            guard let text else { return try Tensor.zeros(x.shape) }
            return try FlowPath.broadcast(text.tokens.mean(dims: [1, 2]), like: x).expand(x.shape)
        }
        let v0 = MixtureMember.velocity(name: "a") { x, t, text in
            try x * 2.0 + FlowPath.broadcast(t / 1000.0, like: x) + textTerm(text, x)
        }
        let v1 = MixtureMember.velocity(name: "b") { x, _, text in try (0.0 - x) + textTerm(text, x) * 2.0 }
        return [v0, v1]
    }

    /// A router that gives sample 0 [0.7, 0.3] and sample 1 [0.2, 0.8].
    let router: MixtureOfExperts.RouterFunction = { x, _, _ in
        let rows = (0..<x.size(0)).map { $0 % 2 == 0 ? [0.7, 0.3] : [0.2, 0.8] }
        return try Tensor(rows.flatMap { $0 }.map { Float($0) }, shape: [x.size(0), 2])
    }

    func expected(_ x: Tensor, t: Double, weights: [[Double]], text: Double = 0, scale: Double = 1) throws -> Tensor {
        var out: [Tensor] = []
        for b in 0..<x.size(0) {
            let xb = try x.select(0, b)
            // CFG per expert: v_u + s·(v_c − v_u); only the text term differs between cond and uncond.
            let v0 = try xb * 2.0 + t + text * scale
            let v1 = try (0.0 - xb) + 2 * text * scale
            out.append(try v0 * weights[b][0] + v1 * weights[b][1])
        }
        return try Tensor.stack(out, dim: 0)
    }

    func run(_ strategy: RoutingStrategy, members: [MixtureMember?]? = nil, text: TextCondition? = nil,
             scale: Double = 1) throws -> (Tensor, StepRouting, Tensor) {
        let mixture = try MixtureOfExperts(members: members ?? self.members(), router: router)
        Runtime.manualSeed(1)
        let x = try Tensor.randn([2, 1, 2, 2])
        var g = SplitMix64(seed: 0)
        let routing = try RoutingWeights(strategy: strategy, available: mixture.members.map { $0 != nil })
        let (v, r) = try mixture.velocity(x: x, t: 0.5, text: text, guidance: scale, routing: routing,
                                          oracle: [1, 0], generator: &g)
        return (v, r, x)
    }

    func testFullMixtureIsExact() throws {
        let (v, r, x) = try run(.full)
        XCTAssertEqual(r.experts, [0, 1])
        XCTAssertEqual(r.t, 0.5)
        try assertClose(v, try expected(x, t: 0.5, weights: [[0.7, 0.3], [0.2, 0.8]]), rtol: 1e-6, atol: 1e-6)
    }

    func testTop1EvaluatesEachExpertOnItsOwnRows() throws {
        let (v, r, x) = try run(.top1)
        XCTAssertEqual(r.weights, [[1, 0], [0, 1]])
        try assertClose(v, try expected(x, t: 0.5, weights: r.weights), rtol: 1e-6, atol: 1e-6)
    }

    func testOracleIgnoresTheRouter() throws {
        let (v, r, x) = try run(.oracle)
        XCTAssertEqual(r.weights, [[0, 1], [1, 0]])
        try assertClose(v, try expected(x, t: 0.5, weights: r.weights), rtol: 1e-6, atol: 1e-6)
    }

    func testGuidanceIsAppliedPerExpert() throws {
        let tokens = try Tensor.full([2, 3, 4], 0.25)
        let text = try TextCondition(tokens: tokens, mask: nil)
        let (v, r, x) = try run(.full, text: text, scale: 3)
        try assertClose(v, try expected(x, t: 0.5, weights: r.weights, text: 0.25, scale: 3), rtol: 1e-6, atol: 1e-6)
    }

    func testMissingExpertIsRenormalisedAway() throws {
        var m = members()
        m[0] = nil
        let (v, r, x) = try run(.top2, members: m)
        XCTAssertEqual(r.weights, [[0, 1], [0, 1]])
        XCTAssertEqual(r.experts, [1])
        try assertClose(v, try expected(x, t: 0.5, weights: r.weights), rtol: 1e-6, atol: 1e-6)
        assertThrows({ try MixtureOfExperts(members: [nil, nil], router: self.router) }, contains: "all 2 experts")
    }

    /// A remote member that fails (down, slow or a bad answer: a `RemoteExpertError`) is dropped for the step: the
    /// step's weights are made again without it, a given cluster that was its own goes to the router's next choice,
    /// and `dropped` says so. A local member's error still fails the step.
    func testAFailingRemoteMemberIsDroppedForTheStep() throws {
        var m = members()
        let failing = MixtureMember(name: "remote", isRemote: true) { _, _, _, _ in
            throw RemoteExpertError(url: "http://127.0.0.1:1", reason: "down")
        }
        m[0] = failing
        for strategy in [RoutingStrategy.full, .top1, .oracle] {
            let (v, r, x) = try run(strategy, members: m)
            XCTAssertEqual(r.weights, [[0, 1], [0, 1]], "\(strategy)")
            XCTAssertEqual(r.experts, [1], "\(strategy)")
            XCTAssertEqual(r.dropped, [DroppedExpert(expert: 0, reason: "down")], "\(strategy)")
            try assertClose(v, try expected(x, t: 0.5, weights: r.weights), rtol: 1e-6, atol: 1e-6)
        }
        // A healthy remote member is used like a local one; a step without failures records no drop.
        let (_, healthy, _) = try run(.full)
        XCTAssertNil(healthy.dropped)
        // Every expert gone: a clear error. A local member that throws is not dropped.
        assertThrows({ try self.run(.full, members: [failing, failing]) }, contains: "every expert of the step is gone")
        let broken = MixtureMember(name: "local") { _, _, _, _ in throw RemoteExpertError(url: "x", reason: "local") }
        assertThrows({ try self.run(.full, members: [broken, self.members()[1]]) }, contains: "local")
    }

    func testSamplerIsDeterministicAndTraces() throws {
        let mixture = try MixtureOfExperts(members: members(), router: router)
        let sampler = try MixtureSampler(config: SamplerConfig(solver: .heun, steps: 3), strategy: .sample1)
        func once() throws -> (Tensor, RoutingTrace) {
            let noise = try MixtureSampler.noise(seeds: [5, 6], channels: 1, size: 2)
            return try sampler.sample(mixture, noise: noise, text: nil, seeds: [5, 6], routingSeed: 9)
        }
        let (a, ta) = try once(), (b, tb) = try once()
        XCTAssertTrue(try a.equal(b))
        XCTAssertEqual(ta, tb)
        XCTAssertEqual(ta.steps.count, 6)  // Heun: two evaluations per step
        let g = try sampler.config.times()
        XCTAssertEqual(ta.steps.map(\.t), [g[0], g[1], g[1], g[2], g[2], g[3]])
        // Noise of sample i depends on its own seed only.
        let single = try MixtureSampler.noise(seeds: [6], channels: 1, size: 2)
        XCTAssertTrue(try single.equal(MixtureSampler.noise(seeds: [5, 6], channels: 1, size: 2).slice(0, 1, 2)))
        // Without a router, only the oracle works.
        let noRouter = try MixtureOfExperts(members: members(), router: nil)
        assertThrows({ try sampler.sample(noRouter, noise: single, text: nil) }, contains: "needs a router")
    }
}
