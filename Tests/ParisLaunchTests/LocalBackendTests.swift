import Foundation
import ParisRun
import ParisTraining
import XCTest
@testable import ParisLaunch

/// The local backend with a stand-in `paris` script: parallel experts, the router after them, a failing expert,
/// resume, and status from jobs.json.
final class LocalBackendTests: XCTestCase {
    var folder: URL!
    var paris: URL!
    var run: RunLayout!
    let env = ProcessInfo.processInfo.environment

    override func setUpWithError() throws {
        folder = try LaunchFixtures.tempFolder("paris-local")
        paris = folder.appendingPathComponent("paris")
        try LaunchFixtures.writeStandIn(to: paris, expertSteps: 5, routerSteps: 3, numExperts: 3)
        run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 3)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func options(resume: Bool = false, parallel: Int = 2, experts: Set<Int>? = nil) -> LaunchOptions {
        LaunchOptions(backend: .local, paris: paris.path, resume: resume, parallel: parallel, experts: experts,
                      environment: env)
    }

    func testExpertsRunInParallelThenRouterThenEval() throws {
        var lines: [String] = []
        let outcome = try Launcher.launch(run: run, options: options()) { lines.append($0) }
        let status = try XCTUnwrap(outcome.status)
        XCTAssertTrue(status.isComplete, status.table)
        XCTAssertEqual(status.jobs.map(\.label), ["expert 0", "expert 1", "expert 2", "router", "eval"])

        let t = LaunchFixtures.trace(run)
        let f = LaunchFixtures.time
        let e0s = try XCTUnwrap(f(t, "expert0", "start")), e1s = try XCTUnwrap(f(t, "expert1", "start"))
        let e0e = try XCTUnwrap(f(t, "expert0", "end")), e1e = try XCTUnwrap(f(t, "expert1", "end"))
        let e2s = try XCTUnwrap(f(t, "expert2", "start")), e2e = try XCTUnwrap(f(t, "expert2", "end"))
        // Two at a time: experts 0 and 1 overlap; expert 2 starts only after one of them ended.
        XCTAssertLessThan(max(e0s, e1s), min(e0e, e1e))
        XCTAssertGreaterThanOrEqual(e2s, min(e0e, e1e))
        let rs = try XCTUnwrap(f(t, "router", "start")), re = try XCTUnwrap(f(t, "router", "end"))
        XCTAssertGreaterThanOrEqual(rs, max(e0e, e1e, e2e))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(f(t, "eval", "start")), re)

        let log = try String(contentsOf: run.launch.appendingPathComponent("logs/expert-1.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("stand-in expert 1: finished"), log)
        XCTAssertTrue(lines.contains { $0.hasPrefix("router: started") }, "\(lines)")
        // Status from another process's point of view: jobs.json.
        let again = try Launcher.status(run: run, environment: env)
        XCTAssertEqual(again.backend, .local)
        XCTAssertTrue(again.isComplete, again.table)
    }

    func testFailedExpertCancelsRouterThenRetryOfThatExpertAlone() throws {
        try "corrupt shard".write(to: run.root.appendingPathComponent("fail_expert1"), atomically: true, encoding: .utf8)
        let outcome = try Launcher.launch(run: run, options: options())
        let status = try XCTUnwrap(outcome.status)
        XCTAssertEqual(status.jobs.map(\.state), [.completed, .failed, .completed, .cancelled, .cancelled])
        XCTAssertEqual(status.expert(1)?.exitCode, "3")
        XCTAssertEqual(status.router?.reason, "DependencyNeverSatisfied: expert-1 FAILED")
        let message = try XCTUnwrap(status.failureMessage(run: run))
        XCTAssertTrue(message.contains("expert 1 FAILED (exit 3)"), message)
        XCTAssertTrue(message.contains("the router was cancelled"), message)
        XCTAssertNil(LaunchFixtures.time(LaunchFixtures.trace(run), "router", "start"), "the router must not start")
        let log = try String(contentsOf: run.launch.appendingPathComponent("logs/expert-1.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("stand-in: expert 1 fails: corrupt shard"), log)

        // Without --resume a second launch is refused; with it only expert 1, the router and eval run.
        XCTAssertThrowsError(try Launcher.launch(run: run, options: options()))
        try FileManager.default.removeItem(at: run.root.appendingPathComponent("fail_expert1"))
        let retry = try Launcher.launch(run: run, options: options(resume: true))
        XCTAssertEqual(retry.plan.jobs.map(\.name), ["experts", "router", "eval"])
        XCTAssertEqual(retry.plan.jobs[0].arrayIndices, [1])
        XCTAssertTrue(try XCTUnwrap(retry.status).isComplete, retry.status!.table)
        let starts = LaunchFixtures.trace(run).filter { $0.event == "start" }.map(\.job)
        XCTAssertEqual(starts.filter { $0 == "expert0" }.count, 1, "\(starts)")
        XCTAssertEqual(starts.filter { $0 == "expert1" }.count, 2, "\(starts)")
    }

    func testRetryOfOneSelectedExpert() throws {
        try "x".write(to: run.root.appendingPathComponent("fail_expert0"), atomically: true, encoding: .utf8)
        try "x".write(to: run.root.appendingPathComponent("fail_expert2"), atomically: true, encoding: .utf8)
        _ = try Launcher.launch(run: run, options: options())
        try FileManager.default.removeItem(at: run.root.appendingPathComponent("fail_expert2"))
        let retry = try Launcher.launch(run: run, options: options(resume: true, experts: [2]))
        let status = try XCTUnwrap(retry.status)
        XCTAssertEqual(status.expert(2)?.state, .completed)
        XCTAssertEqual(status.expert(0)?.state, .failed, "expert 0 was not selected and keeps its state")
        XCTAssertEqual(status.router?.state, .cancelled)
        XCTAssertTrue(retry.plan.skipped.contains { $0.hasPrefix("expert 0: not selected") }, "\(retry.plan.skipped)")
    }

    func testNothingToDoWhenEverythingFinished() throws {
        _ = try Launcher.launch(run: run, options: options(parallel: 3))
        var lines: [String] = []
        let again = try Launcher.launch(run: run, options: options(resume: true)) { lines.append($0) }
        XCTAssertTrue(again.plan.jobs.isEmpty)
        XCTAssertTrue(lines.contains("nothing to launch: every stage has finished"), "\(lines)")
    }

    func testStatusOfARunNeverLaunched() throws {
        let s = try Launcher.status(run: run, environment: env)
        XCTAssertNil(s.backend)
        XCTAssertEqual(s.jobs.map(\.state), [.notSubmitted, .notSubmitted, .notSubmitted, .notSubmitted])
        XCTAssertThrowsError(try Launcher.cancel(run: run, environment: env)) {
            XCTAssertTrue("\($0)".contains("has not been launched"), "\($0)")
        }
    }

    func testRelativeOrMissingBinaryIsRefused() {
        XCTAssertThrowsError(try Launcher.launch(run: run, options: LaunchOptions(backend: .local, paris: "paris"))) {
            XCTAssertTrue("\($0)".contains("must be an absolute path"), "\($0)")
        }
    }
}
