import Foundation
import ParisRun
import ParisTraining
import XCTest
@testable import ParisLaunch

/// `paris launch --backend slurm` against a real single-node Slurm cluster (scripts/slurm-up.sh, 2 fake GPUs),
/// with the stand-in `paris` script so that the scheduling, not the training, is what is tested: experts in
/// parallel with their own GPU, the router after them, eval last; a failing expert; a killed expert resumed.
/// SlurmParisRunTests does the same with the real trainers.
final class SlurmLaunchTests: SlurmTestCase {
    override class var fakeGPUs: Int { 2 }

    var folder: URL!
    var paris: URL!

    override func setUpWithError() throws {
        folder = try LaunchFixtures.tempFolder("paris-slurm-launch")
        paris = folder.appendingPathComponent("paris")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func launch(_ run: RunLayout, _ c: SlurmCluster, resume: Bool = false, experts: Set<Int>? = nil) throws
        -> LaunchOutcome {
        try Launcher.launch(run: run, options: LaunchOptions(backend: .slurm, paris: paris.path, resume: resume,
                                                             experts: experts, environment: c.environment))
    }

    func testExpertsInParallelRouterAfterThemEvalLast() throws {
        let c = try cluster()
        try LaunchFixtures.writeStandIn(to: paris, expertSteps: 10, routerSteps: 3, numExperts: 3)
        // Experts 0 and 1 ask for a GPU each, expert 2 for none: two arrays, the router after both.
        let run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 3, steps: 10,
                                             routerSteps: 3) {
            $0 < 2 ? JobResources(gpus: 1, cpus: 1) : JobResources(cpus: 1)
        }
        let outcome = try launch(run, c)
        XCTAssertEqual(outcome.submitted.map(\.name), ["experts-g0", "experts-g1", "router", "eval"])
        let ids = outcome.submitted.map(\.jobId)
        XCTAssertEqual(outcome.submitted[2].dependsOn, [ids[0], ids[1]])
        let router = try c.run(["scontrol", "show", "job", "-o", ids[2]]).stdout
        XCTAssertTrue(router.contains("afterok:\(ids[0])_*"), router)

        let status = try waitForJobs(run, c)
        XCTAssertTrue(status.isComplete, status.table)
        let t = LaunchFixtures.trace(run)
        let f = LaunchFixtures.time
        let e0 = (try XCTUnwrap(f(t, "expert0", "start")), try XCTUnwrap(f(t, "expert0", "end")))
        let e1 = (try XCTUnwrap(f(t, "expert1", "start")), try XCTUnwrap(f(t, "expert1", "end")))
        let e2end = try XCTUnwrap(f(t, "expert2", "end"))
        XCTAssertLessThan(max(e0.0, e1.0), min(e0.1, e1.1), "experts 0 and 1 must run at the same time: \(t)")
        let rs = try XCTUnwrap(f(t, "router", "start"))
        XCTAssertGreaterThanOrEqual(rs, max(e0.1, e1.1, e2end))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(f(t, "eval", "start")), try XCTUnwrap(f(t, "router", "end")))

        // Each GPU expert got its own fake GPU; the CPU expert none.
        let logs = run.launch.appendingPathComponent("logs")
        let names = try FileManager.default.contentsOfDirectory(atPath: logs.path).sorted()
        let gpuLogs = try names.filter { $0.hasPrefix("launch-test-experts-g0-") }.map {
            try String(contentsOf: logs.appendingPathComponent($0), encoding: .utf8)
        }
        XCTAssertEqual(gpuLogs.count, 2, "\(names)")
        let assigned = gpuLogs.map { log in log.split(separator: "\n").first { $0.contains("gpus=") }
            .map { String($0.split(separator: "=").last ?? "") } ?? "" }
        XCTAssertEqual(Set(assigned), ["0", "1"], "\(gpuLogs)")
        let cpuLog = try XCTUnwrap(names.first { $0.hasPrefix("launch-test-experts-g1-") })
        XCTAssertTrue(try String(contentsOf: logs.appendingPathComponent(cpuLog), encoding: .utf8)
            .contains("gpus=none"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.launch.appendingPathComponent("submit.sh").path))
    }

    func testFailingExpertCancelsRouterAndARetryOfThatExpertAloneWorks() throws {
        let c = try cluster()
        try LaunchFixtures.writeStandIn(to: paris, expertSteps: 3, routerSteps: 2, numExperts: 2)
        let run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 2, steps: 3, routerSteps: 2)
        try "corrupt shard".write(to: run.root.appendingPathComponent("fail_expert1"), atomically: true, encoding: .utf8)
        _ = try launch(run, c)
        let status = try waitForJobs(run, c)
        XCTAssertEqual(status.jobs.map(\.state), [.completed, .failed, .cancelled, .cancelled], status.table)
        XCTAssertEqual(status.router?.reason, "DependencyNeverSatisfied")
        XCTAssertEqual(status.expert(1)?.exitCode, "3:0")
        let message = try XCTUnwrap(status.failureMessage(run: run))
        XCTAssertTrue(message.contains("expert 1 FAILED"), message)
        XCTAssertTrue(message.contains("the router was cancelled"), message)

        try FileManager.default.removeItem(at: run.root.appendingPathComponent("fail_expert1"))
        let retry = try launch(run, c, resume: true)
        XCTAssertEqual(retry.plan.jobs.first?.arrayIndices, [1])
        let after = try waitForJobs(run, c)
        XCTAssertTrue(after.isComplete, after.table)
        let starts = LaunchFixtures.trace(run).filter { $0.event == "start" }.map(\.job)
        XCTAssertEqual(starts.filter { $0 == "expert0" }.count, 1, "\(starts)")
        XCTAssertEqual(starts.filter { $0 == "router" }.count, 1, "\(starts)")
    }

    func testKilledExpertIsResumedFromItsProgress() throws {
        let c = try cluster()
        try LaunchFixtures.writeStandIn(to: paris, expertSteps: 60, routerSteps: 2, numExperts: 2, delay: 0.1)
        let run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 2, steps: 60, routerSteps: 2)
        let outcome = try launch(run, c, experts: nil)
        let array = outcome.submitted[0].jobId
        // Wait for expert 0 to make some progress, then kill it through the scheduler.
        let progressFile = run.expert(0).appendingPathComponent("progress")
        let deadline = Date().addingTimeInterval(60)
        while (Int((try? String(contentsOf: progressFile, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0) < 5 {
            guard Date() < deadline else { return XCTFail("expert 0 made no progress") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let cancel = try c.run(["scancel", "\(array)_0"])
        XCTAssertEqual(cancel.status, 0, cancel.stderr)
        let status = try waitForJobs(run, c)
        XCTAssertEqual(status.expert(0)?.state, .cancelled, status.table)
        XCTAssertEqual(status.expert(1)?.state, .completed, status.table)
        XCTAssertEqual(status.router?.state, .cancelled, status.table)
        let stoppedText = try String(contentsOf: progressFile, encoding: .utf8)
        let stoppedAt = try XCTUnwrap(Int(stoppedText.trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertLessThan(stoppedAt, 60, "expert 0 must have been stopped before the end")

        let retry = try launch(run, c, resume: true)
        XCTAssertEqual(retry.plan.jobs.map(\.name), ["experts", "router", "eval"])
        XCTAssertEqual(retry.plan.jobs[0].arrayIndices, [0])
        let after = try waitForJobs(run, c)
        XCTAssertTrue(after.isComplete, after.table)
        let newLog = run.launch.appendingPathComponent("logs/launch-test-experts-\(retry.submitted[0].jobId)_0.out")
        let text = try String(contentsOf: newLog, encoding: .utf8)
        let resumedAt = text.split(separator: "\n").first { $0.contains("resuming at step") }
        XCTAssertNotNil(resumedAt, text)
        XCTAssertTrue(text.contains("resuming at step \(stoppedAt) of 60"), "expert 0 must continue: \(text)")
        XCTAssertGreaterThanOrEqual(stoppedAt, 5)
    }
}
