import Foundation
import ParisData
import ParisTraining
import Torch
import XCTest

/// `paris status` on run folders whose job files are fabricated in each state.
final class StatusTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// A run.json with K experts (100 steps each), the router (50) and the monolith; no job has run.
    func makeRun(k: Int = 3) throws -> URL {
        let root = try TinyRun.temporaryFolder(self)
        var experts = (0..<k).map { TinyRun.job(seed: UInt64($0)) }
        for i in experts.indices { experts[i].steps = 100 }
        var router = RouterTestRun.routerJob(steps: 50)
        router.steps = 50
        var monolith = TinyRun.job(seed: 99)
        monolith.steps = 100
        let config = RunConfig(name: "status-test", dataset: "d", numExperts: k, experts: experts, router: router,
                               monolith: monolith)
        try config.write(to: root.appendingPathComponent("run.json"))
        return root
    }

    func write(_ text: String, _ url: URL, modified: Date? = nil) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
        if let modified { try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: url.path) }
    }

    func metrics(_ folder: URL, steps: [Int], modified: Date) throws {
        let lines = steps.map { #"{"step": \#($0), "loss": \#(1.0 / Double($0)), "images_per_s": 12.5}"# }
        try write(lines.joined(separator: "\n") + "\n", folder.appendingPathComponent("metrics.jsonl"), modified: modified)
    }

    func testEveryState() throws {
        let run = try makeRun(k: 3)
        let layout = RunLayout(run)
        // expert_0: running (status.json fresh)
        try metrics(layout.expert(0), steps: [10, 20], modified: now.addingTimeInterval(-5))
        try JobStatusFile(state: .running, step: 20, totalSteps: 100, updatedAt: now.timeIntervalSince1970 - 5)
            .write(to: layout.expert(0))
        // expert_1: status.json says running, but nothing changed for 10 minutes: killed → stopped
        try metrics(layout.expert(1), steps: [10, 20, 30], modified: now.addingTimeInterval(-600))
        try JobStatusFile(state: .running, step: 30, totalSteps: 100, updatedAt: now.timeIntervalSince1970 - 600)
            .write(to: layout.expert(1))
        // expert_2: finished, told by its published config only (no status.json), with an old checkpoint
        try metrics(layout.expert(2), steps: [50, 100], modified: now.addingTimeInterval(-3600))
        try write(#"{"steps": 100, "_class_name": "ParisExpert"}"#, layout.expert(2).appendingPathComponent("config.json"))
        try write(#"{"step": 100}"#, layout.expert(2).appendingPathComponent("state/step_100/state.json"))
        // router: failed
        try metrics(layout.router, steps: [5], modified: now.addingTimeInterval(-100))
        try JobStatusFile(state: .failed, step: 5, totalSteps: 50, updatedAt: now.timeIntervalSince1970 - 100,
                          error: "shard 1 is missing").write(to: layout.router)
        // monolith: not started (no folder)

        let report = try RunStatus.report(run: run, now: now)
        XCTAssertEqual(report.jobs.map(\.name), ["expert_0", "expert_1", "expert_2", "router", "monolith"])
        XCTAssertEqual(report.jobs.map(\.state), [.running, .stopped, .finished, .failed, .notStarted])
        XCTAssertEqual(report.jobs.map(\.step), [20, 30, 100, 5, 0])
        XCTAssertEqual(report.jobs.map(\.totalSteps), [100, 100, 100, 50, 100])
        XCTAssertEqual(report.jobs[0].lastLoss, 0.05)
        XCTAssertEqual(report.jobs[0].imagesPerSecond, 12.5)
        XCTAssertTrue(report.jobs[1].note?.contains("process is gone") == true, report.jobs[1].note ?? "")
        XCTAssertEqual(report.jobs[3].note, "shard 1 is missing")
        XCTAssertNil(report.jobs[4].lastLoss)
        XCTAssertEqual(report.jobs[2].lastCheckpointStep, 100)

        let table = RunStatus.table(report, now: now)
        XCTAssertTrue(table.contains("expert_1"))
        XCTAssertTrue(table.contains("not started"))
        XCTAssertTrue(table.contains("30/100"))
        let decoded = try JSONDecoder().decode(RunStatusReport.self, from: Data(try RunStatus.json(report).utf8))
        XCTAssertEqual(decoded, report)
    }

    func testStateWithoutStatusFile() throws {
        let run = try makeRun(k: 2)
        let layout = RunLayout(run)
        // Fresh log, no status.json: running. Old log: stopped.
        try metrics(layout.expert(0), steps: [10], modified: now.addingTimeInterval(-20))
        try metrics(layout.expert(1), steps: [10, 40], modified: now.addingTimeInterval(-4000))
        // A stopped router (signal) with a checkpoint.
        try JobStatusFile(state: .stopped, step: 20, totalSteps: 50, updatedAt: now.timeIntervalSince1970 - 30)
            .write(to: layout.router)
        try write(#"{"step": 20}"#, layout.router.appendingPathComponent("state/step_20/state.json"))
        let report = try RunStatus.report(run: run, now: now)
        XCTAssertEqual(report.jobs.map(\.state), [.running, .stopped, .stopped, .notStarted])
        XCTAssertEqual(report.jobs[1].step, 40)
        XCTAssertEqual(report.jobs[2].step, 20)
    }

    func testFinishedRouterShowsHeldOutAccuracy() throws {
        let run = try RouterTestRun.make(try TinyRun.temporaryFolder(self), k: 2, steps: 10)
        Runtime.threads = 1
        _ = try RouterTrainer.train(run: run, options: TrainOptions())
        let report = try RunStatus.report(run: run)
        let router = try XCTUnwrap(report.jobs.first { $0.name == "router" })
        XCTAssertEqual(router.state, .finished)
        XCTAssertEqual(router.step, 10)
        XCTAssertNotNil(router.heldOutAccuracy)
        XCTAssertEqual(router.lastCheckpointStep, 10)
        XCTAssertEqual(report.jobs.first?.state, .notStarted)
    }

    func testMissingRunJSONIsAClearError() throws {
        let root = try TinyRun.temporaryFolder(self)
        XCTAssertThrowsError(try RunStatus.report(run: root)) { error in
            XCTAssertTrue("\(error)".contains("run.json"), "\(error)")
        }
    }
}
