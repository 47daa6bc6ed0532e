import Foundation
import ParisData
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// Issue #18, item 9: every checkpoint is bound to the shards it was trained on (`ShardIdentity`), so a partition
/// rebuilt under the run (`paris partition … --force` with another seed) is not silently resumed on.
final class ShardIdentityTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    typealias Trainer = SessionTests.Trainer

    /// What `paris partition --force` with another seed does to a run: the same images, clustered the same way, but
    /// numbered anew (k-means' cluster numbers follow its seed): shard_0 now holds what shard_1 held, and back.
    static func repartition(_ run: URL, k: Int = 2) throws {
        let partition = run.appendingPathComponent("partition")
        let old = try (0..<k).map { try Shard.load(from: partition.appendingPathComponent("shard_\($0)")) }
        for c in 0..<k {
            var shard = old[(c + 1) % k]
            shard.info.cluster = c
            shard.info.checksums = [:]
            try shard.write(to: partition.appendingPathComponent("shard_\(c)"), overwrite: true)
        }
    }

    static func stateJSON(_ folder: URL, step: Int) -> URL {
        folder.appendingPathComponent("state/step_\(step)/state.json")
    }

    /// Each trainer records its shards in state.json and the published config.json: an expert its own shard, the
    /// monolith and the router all of them, equal to what the partition holds.
    func testCheckpointsRecordTheShardsTheyWereTrainedOn() throws {
        for trainer in Trainer.allCases {
            let run = try Trainer.make(try TinyRun.temporaryFolder(self, "record\(trainer)"))
            let partition = run.appendingPathComponent("partition")
            try trainer.train(run, TrainOptions(stopAfterSteps: 4))
            let folder = trainer.folder(run)
            let expected = ShardIdentity.current(partition: partition, clusters: trainer == .expert ? [1] : [0, 1])
            XCTAssertEqual(expected.digests.keys.sorted(), trainer == .expert ? ["shard_1"] : ["shard_0", "shard_1"])
            let state = try TrainingCheckpoints(folder: folder.appendingPathComponent("state")).load(step: 4, device: .cpu)
            XCTAssertEqual(state.state.shards, expected, "\(trainer): state.json")
            let published = trainer == .router ? RouterCheckpoint.shards(in: folder)
                : try ExpertCheckpoint.read(from: folder).shards
            XCTAssertEqual(published, expected, "\(trainer): config.json")
        }
    }

    /// Partition, train a few steps, re-partition into the same run, resume: refused for every trainer, naming the
    /// changed shard and both ways out; `--restart` then trains on the new shards and records them.
    func testResumeAfterRepartitionIsRefusedNamingTheShard() throws {
        for trainer in Trainer.allCases {
            let run = try Trainer.make(try TinyRun.temporaryFolder(self, "refuse\(trainer)"))
            let partition = run.appendingPathComponent("partition")
            XCTAssertEqual(try trainer.train(run, TrainOptions(stopAfterSteps: 4)).step, 4, "\(trainer)")
            let before = ShardIdentity.current(partition: partition, clusters: [0, 1])
            try Self.repartition(run)
            let after = ShardIdentity.current(partition: partition, clusters: [0, 1])
            XCTAssertNotEqual(before.digests["shard_1"], after.digests["shard_1"])
            let name = trainer == .expert ? "expert 1" : "\(trainer)"
            assertThrows({ try trainer.train(run) },
                         contains: "\(name): the checkpoint \(trainer.folder(run).path)/state/step_4 was trained on other data: ")
            assertThrows({ try trainer.train(run) },
                         contains: "shard_1 (trained on \(before.digests["shard_1"]!), now \(after.digests["shard_1"]!))")
            assertThrows({ try trainer.train(run) }, contains: "pass --restart to discard the checkpoints")
            assertThrows({ try trainer.train(run) }, contains: "or re-partition back")
            if trainer != .expert {
                assertThrows({ try trainer.train(run) }, contains: "shard_0 (trained on \(before.digests["shard_0"]!)")
            }
            // The refusal changed nothing: the checkpoint is still step 4.
            let store = TrainingCheckpoints(folder: trainer.folder(run).appendingPathComponent("state"))
            XCTAssertEqual(store.latestStep(), 4, "\(trainer)")

            let fresh = try trainer.train(run, TrainOptions(restart: true))
            XCTAssertEqual(fresh.outcome, .finished, "\(trainer)")
            XCTAssertNil(fresh.resumedFrom, "\(trainer)")
            let expected = ShardIdentity.current(partition: partition, clusters: trainer == .expert ? [1] : [0, 1])
            XCTAssertEqual(try store.load(step: Trainer.steps, device: .cpu).state.shards, expected, "\(trainer)")
        }
    }

    /// A finished expert whose partition was rebuilt since is finished but stale: `paris status` says so with the
    /// command that retrains it, and `paris launch --resume` (LaunchPlan) refuses to skip it.
    func testStatusAndLaunchSeeAStaleFinishedExpert() throws {
        let run = try Trainer.make(try TinyRun.temporaryFolder(self))
        XCTAssertEqual(try Trainer.expert.train(run).outcome, .finished)
        let layout = RunLayout(run)
        XCTAssertNil(try RunProgress.read(layout).experts[1].stale)
        XCTAssertEqual(layout.staleJobs(try layout.config()), [:])
        try Self.repartition(run)
        let progress = try RunProgress.read(layout)
        XCTAssertEqual(progress.experts[1].state, .finished)
        let line = try XCTUnwrap(progress.experts[1].stale)
        XCTAssertTrue(line.contains("expert 1 was trained on other data") && line.contains("shard_1 (trained on "), line)
        XCTAssertTrue(line.contains("paris train expert --run \(run.path) --expert 1 --restart"), line)
        XCTAssertNil(progress.experts[0].stale, "expert 0 never published a model")
        XCTAssertTrue(progress.table().contains("finished, stale"), progress.table())
        XCTAssertTrue(try progress.json().contains("\"stale\""))
    }

    /// Re-partitioning back (the same clusters under the same numbers) is the other way out: the refused
    /// checkpoint resumes.
    func testRepartitioningBackResumes() throws {
        let run = try Trainer.make(try TinyRun.temporaryFolder(self))
        XCTAssertEqual(try Trainer.expert.train(run, TrainOptions(stopAfterSteps: 4)).step, 4)
        try Self.repartition(run)
        assertThrows({ try Trainer.expert.train(run) }, contains: "was trained on other data")
        try Self.repartition(run)  // two clusters: swapping twice is the original numbering
        XCTAssertEqual(try Trainer.expert.train(run).resumedFrom, 4)
    }

    /// A checkpoint written before shard identities were recorded (no `shards` in state.json) resumes, with a
    /// warning that says so.
    func testCheckpointWithoutShardsResumesWithAWarning() throws {
        let run = try Trainer.make(try TinyRun.temporaryFolder(self))
        let folder = Trainer.expert.folder(run)
        try Trainer.expert.train(run, TrainOptions(stopAfterSteps: 4))
        let url = Self.stateJSON(folder, step: 4)
        var dict = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        XCTAssertNotNil(dict.removeValue(forKey: "shards"))
        try JSONSerialization.data(withJSONObject: dict).write(to: url)
        var lines: [String] = []
        let result = try Trainer.expert.train(run, TrainOptions(output: TrainOutput(write: { lines.append($0) })))
        XCTAssertEqual(result.resumedFrom, 4)
        XCTAssertEqual(result.outcome, .finished)
        XCTAssertTrue(lines.contains { $0.contains("records no shard checksums (written before they were recorded)")
            && $0.contains("resuming anyway") && $0.contains("--restart") }, "\(lines)")
    }
}
