import Foundation
import XCTest

@testable import Torch

/// AdamW, gradient clipping, the learning-rate schedule and the EMA against PyTorch 2.11 (fixtures `optim_*`,
/// written by scripts/fixtures/optim.py), and the optimizer's state round trip.
final class OptimTests: XCTestCase {
    // The hyperparameters of scripts/fixtures/optim.py.
    static let lrs = [1e-2, 8e-3, 6e-3, 4e-3, 2e-3]
    static let betas = (0.9, 0.99), eps = 1e-8, weightDecay = 0.1

    /// Gives `p` the gradient `g` exactly: d/dp sum(p · g) = g.
    private func setGrad(_ p: Tensor, _ g: Tensor) throws {
        XCTAssertNil(p.grad)
        try (p * g).sum().backward()
    }

    private func makeParams(_ fx: [String: Tensor]) throws -> [Tensor] {
        try (0..<3).map { try tensor(fx, "init.p\($0)").clone().requiresGrad(true) }
    }

    /// Runs steps `range` of the fixture's schedule of learning rates and gradients.
    private func run(_ opt: AdamW, _ params: [Tensor], _ fx: [String: Tensor], steps range: Range<Int>,
                     check: ((Int) throws -> Void)? = nil) throws {
        for k in range {
            opt.lr = Self.lrs[k]
            for i in 0..<2 { try setGrad(params[i], try tensor(fx, "grad.step\(k).p\(i)")) }
            try opt.step()
            try opt.zeroGrad()
            try check?(k)
        }
    }

    func testAdamWMatchesFusedBitForBitAndDefaultClosely() throws {
        let fx = try fixture("optim_adamw")
        let params = try makeParams(fx)
        let opt = try AdamW(params, lr: Self.lrs[0], betas: Self.betas, eps: Self.eps, weightDecay: Self.weightDecay)
        try run(opt, params, fx, steps: 0..<5) { k in
            for i in 0..<3 {
                XCTAssertTrue(try params[i].equal(tensor(fx, "fused.step\(k).p\(i)")),
                              "step \(k), parameter \(i): not bit-identical to AdamW(fused=True)")
                try assertClose(params[i], try tensor(fx, "plain.step\(k).p\(i)"), rtol: 1e-6, atol: 1e-7,
                                "step \(k), parameter \(i) against the default AdamW")
            }
        }
        XCTAssertNil(opt.state[2], "a parameter without a gradient gets no state")
        XCTAssertTrue(try params[2].equal(tensor(fx, "init.p2")), "and is not changed")
        let sd = try opt.stateDict()
        for i in 0..<2 {
            for name in ["exp_avg", "exp_avg_sq", "step"] {
                let key = "state.\(i).\(name)"
                XCTAssertTrue(try sd[key]!.equal(tensor(fx, "fused.\(key)")), key)
                XCTAssertEqual(sd[key]!.dtype, .float32, key)
            }
        }
        XCTAssertEqual(sd["state.0.step"]!.shape, [])
        XCTAssertNil(sd["state.2.exp_avg"])
    }

    func testStateRoundTripThroughSafeTensorsResumesBitExactly() throws {
        let fx = try fixture("optim_adamw")
        let a = try makeParams(fx)
        let optA = try AdamW(a, lr: Self.lrs[0], betas: Self.betas, eps: Self.eps, weightDecay: Self.weightDecay)
        try run(optA, a, fx, steps: 0..<3)

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("adamw-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SafeTensors.save(try optA.stateDict(), to: url)
        let b = try a.map { try $0.detach().clone().requiresGrad(true) }
        let optB = try AdamW(b, lr: 0.5, betas: (0.5, 0.5), eps: 1e-3, weightDecay: 0)
        try optB.loadStateDict(try SafeTensors.load(url).tensors)
        XCTAssertEqual(optB.betas.0, Self.betas.0)
        XCTAssertEqual(optB.betas.1, Self.betas.1)
        XCTAssertEqual(optB.weightDecay, Self.weightDecay)
        XCTAssertEqual(optB.eps, Self.eps)

        try run(optA, a, fx, steps: 3..<5)
        try run(optB, b, fx, steps: 3..<5)
        for i in 0..<3 {
            XCTAssertTrue(try a[i].equal(b[i]), "parameter \(i) after resuming")
            XCTAssertTrue(try a[i].equal(tensor(fx, "fused.step4.p\(i)")), "parameter \(i) against PyTorch")
        }
        let sa = try optA.stateDict(), sb = try optB.stateDict()
        XCTAssertEqual(Set(sa.keys), Set(sb.keys))
        for (k, t) in sa { XCTAssertTrue(try t.equal(sb[k]!), k) }
    }

    func testLoadStateDictErrorsListEveryProblemAndChangeNothing() throws {
        let params = [try Tensor.zeros([4, 3]).requiresGrad(true), try Tensor.zeros([3]).requiresGrad(true)]
        let opt = try AdamW(params, lr: 0.1)
        let bad: [String: Tensor] = [
            "state.0.exp_avg": try Tensor.zeros([3, 4]),
            "state.0.exp_avg_sq": try Tensor.zeros([4, 3]),
            "state.0.step": try Tensor.zeros([]),
            "state.1.exp_avg": try Tensor.zeros([3]),
            "state.5.step": try Tensor.zeros([]),
            "momentum_buffer": try Tensor.zeros([1]),
            "param_groups.0.betas": try Tensor([0.9]),
        ]
        XCTAssertThrowsError(try opt.loadStateDict(bad)) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("'state.0.exp_avg' has shape [3, 4], but parameter 0 needs [4, 3]"), m)
            XCTAssertTrue(m.contains("parameter 1's state lacks 'state.1.exp_avg_sq'"), m)
            XCTAssertTrue(m.contains("parameter 1's state lacks 'state.1.step'"), m)
            XCTAssertTrue(m.contains("'state.5.step' is for parameter 5, but the optimizer has 2 parameters"), m)
            XCTAssertTrue(m.contains("unexpected key 'momentum_buffer'"), m)
            XCTAssertTrue(m.contains("'param_groups.0.betas' must have shape [2], got [1]"), m)
        }
        XCTAssertEqual(opt.lr, 0.1)
        XCTAssertTrue(opt.state.allSatisfy { $0 == nil })
        XCTAssertThrowsError(try opt.loadStateDict(["param_groups.0.lr": try Tensor(scalar: -1, dtype: .float64)]))
    }

    func testAdamWArgumentsAndModuleInit() throws {
        let p = try Tensor.zeros([2]).requiresGrad(true)
        XCTAssertThrowsError(try AdamW([p], lr: -1))
        XCTAssertThrowsError(try AdamW([p], betas: (1.0, 0.999)))
        XCTAssertThrowsError(try AdamW([p, p])) { XCTAssertTrue("\($0)".contains("more than once"), "\($0)") }
        let linear = try Linear(3, 2)
        let opt = try AdamW(linear, lr: 1e-2)
        XCTAssertEqual(opt.parameters.count, 2)
        XCTAssertEqual(opt.weightDecay, 0.01)
        XCTAssertEqual(opt.betas.1, 0.999)
        try opt.step()  // no gradients yet: nothing happens
        XCTAssertTrue(opt.state.allSatisfy { $0 == nil })
    }

    func testClipGradNorm() throws {
        let fx = try fixture("optim_clip")
        for (name, maxNorm, normType) in [("clip", 1.0, 2.0), ("noclip", 100.0, 2.0), ("inf", 0.5, Double.infinity),
                                          ("l1", 2.0, 1.0)] {
            var params: [Tensor] = []
            for i in 0..<3 {
                let g = try tensor(fx, "grad.\(i)")
                let p = try Tensor.zeros(g.shape).requiresGrad(true)
                try setGrad(p, g)
                params.append(p)
            }
            params.append(try Tensor.zeros([2]).requiresGrad(true))  // no gradient: ignored
            let total = try clipGradNorm(params, maxNorm: maxNorm, normType: normType)
            let expected = try tensor(fx, "\(name).total").item()
            XCTAssertEqual(total, expected, accuracy: 1e-6 * abs(expected), name)
            for i in 0..<3 {
                try assertClose(params[i].grad!, try tensor(fx, "\(name).grad.\(i)"), rtol: 1e-6, atol: 1e-7,
                                "\(name): gradient \(i)")
            }
            XCTAssertNil(params[3].grad)
        }
        XCTAssertEqual(try clipGradNorm([try Tensor.zeros([2]).requiresGrad(true)], maxNorm: 1), 0)
        XCTAssertThrowsError(try clipGradNorm([], maxNorm: -1))
    }

    func testScheduleMatchesLambdaLR() throws {
        let fx = try fixture("optim_schedule")
        let cases: [(String, LRSchedule)] = [
            ("warm", LRSchedule(baseLR: 1e-3, warmupSteps: 10, totalSteps: 50, minLR: 1e-5)),
            ("nowarm", LRSchedule(baseLR: 3e-4, warmupSteps: 0, totalSteps: 20, minLR: 0)),
            ("allwarm", LRSchedule(baseLR: 2e-4, warmupSteps: 8, totalSteps: 8, minLR: 1e-6)),
        ]
        for (name, schedule) in cases {
            let expected = try tensor(fx, "\(name).lr").toArray(as: Double.self)
            for (s, lr) in expected.enumerated() {
                XCTAssertEqual(schedule.lr(step: s), lr, accuracy: 1e-12 * lr + 1e-18, "\(name) step \(s)")
            }
        }
        let s = cases[0].1
        XCTAssertEqual(s.lr(step: 9), 1e-3, accuracy: 1e-15, "warmup ends at the base rate")
        XCTAssertEqual(s.lr(step: 10), 1e-3, accuracy: 1e-15, "the cosine starts at the base rate")
        XCTAssertEqual(s.lr(step: 50), 1e-5, accuracy: 1e-15)
        XCTAssertEqual(s.lr(step: 500), 1e-5, accuracy: 1e-15)
    }

    func testScheduleCodable() throws {
        let s = LRSchedule(baseLR: 1e-4, warmupSteps: 100, totalSteps: 1000, minLR: 1e-6)
        let json = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        for key in ["base_lr", "warmup_steps", "total_steps", "min_lr"] { XCTAssertTrue(json.contains(key), json) }
        XCTAssertEqual(try JSONDecoder().decode(LRSchedule.self, from: Data(json.utf8)), s)
        let partial = try JSONDecoder().decode(LRSchedule.self, from: Data(#"{"base_lr": 0.1, "total_steps": 5}"#.utf8))
        XCTAssertEqual(partial, LRSchedule(baseLR: 0.1, totalSteps: 5))
        XCTAssertThrowsError(try JSONDecoder().decode(
            LRSchedule.self, from: Data(#"{"base_lr": 0.1, "total_steps": 5, "min_lr": 0.2}"#.utf8)))
        let p = try Tensor.zeros([1]).requiresGrad(true)
        let opt = try AdamW([p])
        s.apply(to: opt, step: 0)
        XCTAssertEqual(opt.lr, 1e-6)
    }

    func testEMAMatchesDiTUpdate() throws {
        let fx = try fixture("optim_ema")
        func weights(_ k: Int) throws -> [String: Tensor] {
            ["weight": try tensor(fx, "model\(k).weight"), "bias": try tensor(fx, "model\(k).bias")]
        }
        let model = try Linear(4, 5)
        try model.loadStateDict(try weights(0))
        let ema = try EMA(model, decay: 0.9)
        XCTAssertEqual(ema.names, ["weight", "bias"])
        for k in 1...3 {
            try model.loadStateDict(try weights(k))
            try ema.update(from: model)
            for name in ["weight", "bias"] {
                try assertClose(ema.stateDict()[name]!, try tensor(fx, "ema\(k).\(name)"), rtol: 1e-6, atol: 1e-7,
                                "EMA \(name) after update \(k)")
            }
        }
        XCTAssertFalse(ema.tensors[0].requiresGrad)

        let copy = try Linear(4, 5)
        try ema.copy(to: copy)
        XCTAssertTrue(try copy.weight.equal(ema.tensors[0]))
        let restored = try EMA(copy, decay: 0.9)
        try restored.update(from: model, decay: 0)
        XCTAssertTrue(try restored.tensors[1].equal(model.bias!), "decay 0 copies the parameters")
        try restored.loadStateDict(ema.stateDict())
        XCTAssertTrue(try restored.tensors[1].equal(ema.tensors[1]))

        XCTAssertThrowsError(try ema.update(from: try Linear(4, 5, bias: false)))
        XCTAssertThrowsError(try ema.loadStateDict(["weight": try Tensor.zeros([4, 5])])) { error in
            XCTAssertTrue("\(error)".contains("missing key 'bias'"), "\(error)")
            XCTAssertTrue("\(error)".contains("EMA has [5, 4], the state dict has [4, 5]"), "\(error)")
        }
    }
}
