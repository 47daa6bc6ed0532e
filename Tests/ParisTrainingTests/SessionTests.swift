import Foundation
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// The three trainers through the one skeleton (`TrainingSession`): the same resume (bit for bit), the same stop
/// rule, the same checkpoint and metrics files.
final class SessionTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    /// One of the three trainers, on a run made by `make`.
    enum Trainer: String, CaseIterable {
        case expert, monolith, router

        /// 9 steps, a checkpoint every 4, a metrics line every 2, for every job.
        static let steps = 9, checkpointEvery = 4, logEvery = 2

        static func make(_ root: URL) throws -> URL {
            try RouterTestRun.make(root, k: 2, steps: steps) { config in
                for k in config.experts.indices {
                    config.experts[k].steps = steps
                    config.experts[k].checkpointEvery = checkpointEvery
                    config.experts[k].logEvery = logEvery
                }
                config.monolith?.steps = steps
                config.monolith?.checkpointEvery = checkpointEvery
                config.monolith?.logEvery = logEvery
                config.router.checkpointEvery = checkpointEvery
                config.router.logEvery = logEvery
            }
        }

        @discardableResult
        func train(_ run: URL, _ options: TrainOptions = .init()) throws -> TrainResult {
            switch self {
            case .expert: return try ExpertTrainer.train(run: run, expert: 1, options: options)
            case .monolith: return try MonolithTrainer.train(run: run, options: options)
            case .router: return try RouterTrainer.train(run: run, options: options)
            }
        }

        func folder(_ run: URL) -> URL {
            let layout = RunLayout(run)
            switch self {
            case .expert: return layout.expert(1)
            case .monolith: return layout.monolith
            case .router: return layout.router
            }
        }

        /// The published weights.
        var weightsName: String {
            self == .router ? RouterCheckpoint.weightsName : ExpertCheckpoint.weightsName
        }

        /// The tensor files of a checkpoint.
        var checkpointFiles: [String] {
            self == .router ? ["model.safetensors", "optimizer.safetensors"]
                : ["ema.safetensors", "model.safetensors", "optimizer.safetensors"]
        }
    }

    /// The metrics lines without what depends on the clock and the machine.
    func trajectory(_ folder: URL) throws -> [MetricsRecord] {
        try MetricsLog.read(folder.appendingPathComponent(MetricsFile.fileName)).map {
            var r = $0
            (r.imagesPerSecond, r.rssMB, r.cudaUsedMB, r.elapsedSeconds) = (0, nil, nil, 0)
            return r
        }
    }

    func state(_ folder: URL, step: Int) throws -> TrainingState {
        try TrainingCheckpoints(folder: folder.appendingPathComponent("state")).load(step: step, device: .cpu).state
    }

    /// `b` reached the same end as `a`: every checkpoint tensor and the published weights bit for bit, the same
    /// loader cursor and images, and the same metrics lines.
    func assertSameEnd(_ trainer: Trainer, _ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let fa = trainer.folder(a), fb = trainer.folder(b), last = Trainer.steps
        let sa = try state(fa, step: last), sb = try state(fb, step: last)
        XCTAssertEqual(sa.files.keys.sorted(), trainer.checkpointFiles, file: file, line: line)
        XCTAssertEqual(sb.files.keys.sorted(), trainer.checkpointFiles, file: file, line: line)
        for name in trainer.checkpointFiles {
            try TinyRun.assertIdentical(fa.appendingPathComponent("state/step_\(last)/\(name)"),
                                        fb.appendingPathComponent("state/step_\(last)/\(name)"), file: file, line: line)
        }
        try TinyRun.assertIdentical(fa.appendingPathComponent(trainer.weightsName),
                                    fb.appendingPathComponent(trainer.weightsName), file: file, line: line)
        XCTAssertEqual(sa.cursor, sb.cursor, file: file, line: line)
        XCTAssertEqual(sa.imagesSeen, sb.imagesSeen, file: file, line: line)
        XCTAssertEqual(sa.rngCPU, sb.rngCPU, "generator state", file: file, line: line)
        let ma = try trajectory(fa), mb = try trajectory(fb)
        XCTAssertEqual(ma.map(\.step), [2, 4, 6, 8, 9], file: file, line: line)
        XCTAssertEqual(ma, mb, "\(trainer): metrics.jsonl", file: file, line: line)
        XCTAssertEqual(try JobStatusFile.read(from: fb)?.state, .finished, file: file, line: line)
        if trainer == .router {
            let ea = try RouterTestRun.json(fa.appendingPathComponent(RouterEvaluation.jsonName))
            let eb = try RouterTestRun.json(fb.appendingPathComponent(RouterEvaluation.jsonName))
            XCTAssertEqual(ea as NSDictionary, eb as NSDictionary, file: file, line: line)
        }
    }

    /// Stopped at a checkpoint boundary (step 4), then mid-interval (step 7, between metrics lines and between
    /// checkpoints), then finished: the same end as one uninterrupted session, for every trainer.
    func testResumeEqualsUninterruptedForEveryTrainer() throws {
        for trainer in Trainer.allCases {
            let root = try TinyRun.temporaryFolder(self, "resume\(trainer)")
            let a = try Trainer.make(root.appendingPathComponent("a"))
            let b = try Trainer.make(root.appendingPathComponent("b"))
            XCTAssertEqual(try trainer.train(a).outcome, .finished, "\(trainer)")

            let first = try trainer.train(b, TrainOptions(stopAfterSteps: Trainer.checkpointEvery))
            XCTAssertEqual(first.step, 4, "\(trainer)")
            var polls = 0
            let second = try trainer.train(b, TrainOptions(shouldStop: {
                polls += 1
                return polls >= 3
            }))
            XCTAssertEqual([second.resumedFrom, second.step], [4, 7], "\(trainer)")
            XCTAssertNotNil(try state(trainer.folder(b), step: 7).interval, "\(trainer): the open interval is saved")
            let third = try trainer.train(b)
            XCTAssertEqual(third.outcome, .finished, "\(trainer)")
            XCTAssertEqual(third.resumedFrom, 7, "\(trainer)")
            try assertSameEnd(trainer, a, b)
            XCTAssertEqual(try trainer.train(b).outcome, .alreadyFinished, "\(trainer)")
        }
    }

    /// A crash after step 7 that lost its checkpoint: the next session resumes from step 4, drops the metrics
    /// lines written after it, and still ends like the uninterrupted session.
    func testResumeFromAnOlderCheckpointAfterACrash() throws {
        for trainer in Trainer.allCases {
            let root = try TinyRun.temporaryFolder(self, "crash\(trainer)")
            let a = try Trainer.make(root.appendingPathComponent("a"))
            let b = try Trainer.make(root.appendingPathComponent("b"))
            try trainer.train(a)
            XCTAssertEqual(try trainer.train(b, TrainOptions(stopAfterSteps: 7)).step, 7, "\(trainer)")
            try FileManager.default.removeItem(at: trainer.folder(b).appendingPathComponent("state/step_7"))
            XCTAssertEqual(try trajectory(trainer.folder(b)).map(\.step), [2, 4, 6], "\(trainer)")
            let resumed = try trainer.train(b)
            XCTAssertEqual(resumed.resumedFrom, 4, "\(trainer)")
            try assertSameEnd(trainer, a, b)
        }
    }

    /// One stop rule: polled after each step; a stop writes a checkpoint at that step, publishes, and says
    /// `stopped` in status.json; a stop at the last step is a finish.
    func testStopSemanticsAreTheSameForEveryTrainer() throws {
        for trainer in Trainer.allCases {
            let run = try Trainer.make(try TinyRun.temporaryFolder(self, "stop\(trainer)"))
            let folder = trainer.folder(run)
            let store = TrainingCheckpoints(folder: folder.appendingPathComponent("state"))

            // A stop signal already there at the first poll: one step is done, then the checkpoint.
            let once = try trainer.train(run, TrainOptions(shouldStop: { true }))
            XCTAssertEqual([once.step, store.latestStep()], [1, 1], "\(trainer)")
            XCTAssertEqual(once.outcome, .stopped, "\(trainer)")
            XCTAssertNil(once.resumedFrom, "\(trainer)")
            var status = try XCTUnwrap(try JobStatusFile.read(from: folder))
            XCTAssertEqual([status.state.rawValue, "\(status.step)"], ["stopped", "1"], "\(trainer)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(trainer.weightsName).path),
                          "\(trainer): a stop publishes the checkpoint's weights")

            // --stop-after N: N steps of this session.
            let three = try trainer.train(run, TrainOptions(stopAfterSteps: 3))
            XCTAssertEqual([three.resumedFrom, three.step, store.latestStep()], [1, 4, 4], "\(trainer)")
            XCTAssertEqual(three.outcome, .stopped, "\(trainer)")
            status = try XCTUnwrap(try JobStatusFile.read(from: folder))
            XCTAssertEqual([status.state.rawValue, "\(status.step)"], ["stopped", "4"], "\(trainer)")

            // A stop that falls on the last step is the end of training.
            let rest = try trainer.train(run, TrainOptions(stopAfterSteps: Trainer.steps - 4))
            XCTAssertEqual(rest.outcome, .finished, "\(trainer)")
            XCTAssertEqual(rest.step, Trainer.steps, "\(trainer)")
            XCTAssertEqual(try JobStatusFile.read(from: folder)?.state, .finished, "\(trainer)")
        }
    }

    /// A router checkpoint holds the router's weights and optimizer only; a checkpoint in the old layout (an
    /// `ema` copy of the weights beside them) still resumes, and exactly.
    func testRouterCheckpointHoldsOnlyWhatTheRouterHas() throws {
        let root = try TinyRun.temporaryFolder(self)
        let a = try Trainer.make(root.appendingPathComponent("a"))
        let b = try Trainer.make(root.appendingPathComponent("b"))
        try Trainer.router.train(a)
        try Trainer.router.train(b, TrainOptions(stopAfterSteps: 4))
        let store = TrainingCheckpoints(folder: RunLayout(b).router.appendingPathComponent("state"))
        let files = try FileManager.default.contentsOfDirectory(atPath: store.folder.appendingPathComponent("step_4").path)
        XCTAssertEqual(files.sorted(), ["model.safetensors", "optimizer.safetensors", "state.json"])
        assertThrows({ try store.load(step: 4, device: .cpu, keys: ["model", "ema"]) }, contains: "holds no ema tensors")

        var old = try store.load(step: 4, device: .cpu)
        XCTAssertEqual(old.tensors.keys.sorted(), ["model", "optimizer"])
        var tensors = old.tensors
        tensors["ema"] = tensors["model"]
        try store.write(state: old.state, tensors: tensors)
        old = try store.load(step: 4, device: .cpu)
        XCTAssertEqual(old.state.files.keys.sorted(), ["ema.safetensors", "model.safetensors", "optimizer.safetensors"])
        XCTAssertEqual(try Trainer.router.train(b).resumedFrom, 4)
        try assertSameEnd(.router, a, b)
    }

    /// The store writes and checks the files of the keys it is given.
    func testCheckpointStoreWritesTheKeysItIsGiven() throws {
        let store = TrainingCheckpoints(folder: try TinyRun.temporaryFolder(self).appendingPathComponent("state"))
        let state = TrainingState(step: 3, totalSteps: 9, cursor: .init(), rngCPU: try Runtime.rngState(), rngCUDA: nil,
                                  configHash: "h", imagesSeen: 0, elapsedSeconds: 0, lossEMA: nil)
        try store.write(state: state, tensors: ["weights": ["w": try Tensor([1, 2, 3] as [Float])]])
        let loaded = try store.load(step: 3, device: .cpu)
        XCTAssertEqual(Array(loaded.state.files.keys), ["weights.safetensors"])
        XCTAssertEqual(try loaded.tensors["weights"]?["w"]?.toArray(as: Float.self), [1, 2, 3])
        assertThrows({ try store.load(step: 3, device: .cpu, keys: ["weights", "optimizer"]) },
                     contains: "holds no optimizer tensors")
        XCTAssertNil(store.loadLatest(device: .cpu, keys: ["optimizer"], warn: { _ in }))
        assertThrows({ try store.write(state: state, tensors: [:]) }, contains: "no tensors")
    }
}
