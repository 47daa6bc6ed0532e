import Foundation
import ParisRun
import ParisRunTestSupport
import ParisData
import ParisTraining
import Torch
import XCTest

/// `paris status` (`RunProgress`) on runs whose jobs were brought into each state by the real trainers: the
/// status.json every trainer writes, and the lock a live trainer holds.
final class StatusTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func testEveryStateFromRealTrainers() throws {
        let run = try RouterTestRun.make(try TinyRun.temporaryFolder(self), k: 3, steps: 10)
        let layout = RunLayout(run)
        // expert_0 finishes; expert_1 stops after 2 steps (as --stop-after or a signal does).
        XCTAssertEqual(try ExpertTrainer.train(run: run, expert: 0).outcome, .finished)
        XCTAssertEqual(try ExpertTrainer.train(run: run, expert: 1, options: TrainOptions(stopAfterSteps: 2)).outcome,
                       .stopped)
        // expert_2 is being trained: a session stopped after 2 steps, and a process holds its lock again.
        _ = try ExpertTrainer.train(run: run, expert: 2, options: TrainOptions(stopAfterSteps: 2))
        let live = try FileLock(layout.expert(2).appendingPathComponent(FileLock.trainingName), busy: "expert 2 is being trained")
        try JobStatusFile(state: .running, step: 2, totalSteps: 6).write(to: layout.expert(2))  // as a trainer starts
        // The router fails: a session, then a changed setting that the resumed session refuses.
        _ = try RouterTrainer.train(run: run, options: TrainOptions(stopAfterSteps: 5))
        var config = try layout.config()
        config.router.learningRate *= 2
        try config.write(to: layout.runJSON)
        XCTAssertThrowsError(try RouterTrainer.train(run: run, options: TrainOptions()))
        // The monolith never ran.

        let report = try RunProgress.read(layout)
        XCTAssertEqual(report.jobs.map(\.name), ["expert_0", "expert_1", "expert_2", "router", "monolith"])
        XCTAssertEqual(report.jobs.map(\.state), [.finished, .stopped, .running, .failed, .notStarted])
        XCTAssertEqual(report.jobs.map(\.step), [6, 2, 2, 5, 0])
        XCTAssertEqual(report.jobs.map(\.totalSteps), [6, 6, 6, 10, 6])
        XCTAssertEqual(report.experts.map(\.finished), [true, false, false])
        XCTAssertNotNil(report.jobs[0].lastLoss)
        XCTAssertNotNil(report.jobs[0].imagesPerSecond)
        XCTAssertEqual(report.jobs[0].lastCheckpointStep, 6)
        XCTAssertTrue(report.jobs[1].note?.contains("stopped at step 2") == true, report.jobs[1].note ?? "")
        XCTAssertTrue(report.router.note?.contains("different settings") == true
                      || report.router.note?.contains("other settings") == true, report.router.note ?? "")
        XCTAssertNil(report.jobs[4].lastLoss)

        // The trainer's process dies without a word (its lock goes with it): stopped at once, no timeout.
        live.release()
        let after = try RunProgress.read(layout).experts[2]
        XCTAssertEqual(after.state, .stopped)
        XCTAssertTrue(after.note?.contains("the trainer is gone") == true, after.note ?? "")

        let table = report.table()
        XCTAssertTrue(table.contains("expert_1"))
        XCTAssertTrue(table.contains("not started"))
        XCTAssertTrue(table.contains("2/6"))
        let decoded = try JSONDecoder().decode(RunProgress.self, from: Data(try report.json().utf8))
        XCTAssertEqual(decoded, report)
    }

    func testFinishedRouterShowsHeldOutAccuracy() throws {
        let run = try RouterTestRun.make(try TinyRun.temporaryFolder(self), k: 2, steps: 10)
        _ = try RouterTrainer.train(run: run, options: TrainOptions())
        let report = try RunProgress.read(RunLayout(run))
        XCTAssertEqual(report.router.state, .finished)
        XCTAssertEqual(report.router.step, 10)
        XCTAssertNotNil(report.router.heldOutAccuracy)
        XCTAssertEqual(report.router.lastCheckpointStep, 10)
        XCTAssertEqual(report.experts.first?.state, .notStarted)
    }

    func testMissingRunJSONIsAClearError() throws {
        let root = try TinyRun.temporaryFolder(self)
        XCTAssertThrowsError(try RunProgress.read(RunLayout(root))) { error in
            XCTAssertTrue("\(error)".contains("run.json"), "\(error)")
        }
    }
}
