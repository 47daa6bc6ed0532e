import Foundation
import ParisDiffusion
import Torch
import XCTest

/// `ODESolver.integrate` against closed-form ODEs: dx/dt = a·x (x(0) = x(1)·e^(−a)), v constant, v = t.
final class ODESolverTests: XCTestCase {
    let a = 1.5
    let x1: [Double] = [1, -2, 0.5]

    func integrate(_ solver: ODESolver, _ times: [Double], _ v: ODESolver.Velocity) throws -> [Double] {
        try solver.integrate(Tensor(x1), times: times, velocity: v).toArray(as: Double.self)
    }

    /// On any grid one step multiplies x by 1 + a·h (Euler) or 1 + a·h + (a·h)²/2 (Heun), h = t_{i+1} − t_i.
    func testLinearODEStepByStep() throws {
        let times = try TimeGrid.diffusers.times(steps: 7, shift: 3)
        let hs = zip(times.dropFirst(), times).map { $0 - $1 }
        let euler = hs.reduce(1.0) { $0 * (1 + a * $1) }
        let heun = hs.reduce(1.0) { $0 * (1 + a * $1 + (a * $1) * (a * $1) / 2) }
        for (solver, factor) in [(ODESolver.euler, euler), (.heun, heun)] {
            let x = try integrate(solver, times) { x, _ in try x * self.a }
            for (got, start) in zip(x, x1) { XCTAssertEqual(got, start * factor, accuracy: 1e-12, "\(solver)") }
        }
    }

    /// Against the exact x(0) = x(1)·e^(−a): Euler's error halves when the steps double (first order), Heun's
    /// falls by 4 (second order). With 50 steps Heun's global error is about (a³/6)·h²·|x(0)| ≈ 1.0e-4 for
    /// |x(1)| = 2, Euler's about (a²/2)·h·|x(0)| ≈ 1e-2.
    func testLinearODEConvergesAtTheSolversOrder() throws {
        func error(_ solver: ODESolver, steps: Int) throws -> Double {
            let x = try integrate(solver, TimeGrid.uniform.times(steps: steps)) { x, _ in try x * self.a }
            return zip(x, x1).map { abs($0 - $1 * exp(-a)) }.max()!
        }
        let eulerRatio = try error(.euler, steps: 25) / error(.euler, steps: 50)
        let heunRatio = try error(.heun, steps: 25) / error(.heun, steps: 50)
        XCTAssertEqual(eulerRatio, 2, accuracy: 0.2)
        XCTAssertEqual(heunRatio, 4, accuracy: 0.4)
        XCTAssertLessThan(try error(.heun, steps: 50), 1.5e-4)
        XCTAssertGreaterThan(try error(.euler, steps: 50), 5e-3)
    }

    /// v = c is exact for both: x(0) = x(1) − c. v = t: Heun (the trapezoid rule) is exact, x(0) = x(1) − 1/2;
    /// Euler on the uniform grid sums h·t_i: x(0) = x(1) − (N + 1)/(2N).
    func testConstantAndTimeLinearVelocities() throws {
        let n = 4, times = try TimeGrid.uniform.times(steps: n)
        for solver in ODESolver.allCases {
            let x = try integrate(solver, times) { x, _ in try x * 0 + 0.25 }
            for (got, start) in zip(x, x1) { XCTAssertEqual(got, start - 0.25, accuracy: 1e-12, "\(solver) v = c") }
        }
        let heun = try integrate(.heun, times) { x, t in try x * 0 + t }
        let euler = try integrate(.euler, times) { x, t in try x * 0 + t }
        for i in x1.indices {
            XCTAssertEqual(heun[i], x1[i] - 0.5, accuracy: 1e-12, "heun v = t")
            XCTAssertEqual(euler[i], x1[i] - Double(n + 1) / Double(2 * n), accuracy: 1e-12, "euler v = t")
        }
    }

    /// Euler evaluates v at t_0 … t_{N−1}; Heun at t_i then t_{i+1} on each step. Progress reports each step
    /// with its new state; the velocity runs without autograd.
    func testEvaluationOrderAndProgress() throws {
        let times = try TimeGrid.uniform.times(steps: 3)
        for (solver, expected) in [(ODESolver.euler, Array(times.prefix(3))),
                                   (.heun, [times[0], times[1], times[1], times[2], times[2], times[3]])] {
            var seen: [Double] = [], steps: [Int] = [], last: Tensor? = nil
            let x = try solver.integrate(Tensor(x1).requiresGrad(true), times: times, velocity: { x, t in
                seen.append(t)
                XCTAssertFalse(isGradEnabled, "\(solver) velocity under autograd")
                return try x * self.a
            }, progress: { p in
                steps.append(p.step)
                XCTAssertEqual(p.steps, 3)
                XCTAssertEqual(p.tNext, times[p.step + 1])
                last = p.x
            })
            XCTAssertEqual(seen, expected, "\(solver)")
            XCTAssertEqual(steps, [0, 1, 2], "\(solver)")
            XCTAssertTrue(try x.equal(last!), "\(solver): the last progress state is the result")
        }
    }

    /// A bad time list is refused before the velocity is ever called.
    func testTimesAreValidated() throws {
        var calls = 0
        XCTAssertThrowsError(try ODESolver.euler.integrate(Tensor(x1), times: [1, 0.5, 0.7, 0]) { x, _ in
            calls += 1
            return x
        }) { XCTAssertTrue("\($0)".contains("decrease strictly"), "\($0)") }
        XCTAssertEqual(calls, 0)
    }
}
