import Foundation
import ParisRun
import ParisRunTestSupport
import ParisImage
import ParisData
import ParisDiffusion
@testable import ParisEnsemble
import ParisModels
import ParisTestSupport
import Torch
import XCTest

final class SampleJobTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        Runtime.threads = 1
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-sample-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func job(_ run: RunLayout, name: String, strategy: RoutingStrategy = .top2, strict: Bool = false,
             prompts: [String] = ["a cat", "a car"]) throws -> SampleJob {
        SampleJob(run: run, name: name, prompts: prompts, imagesPerPrompt: 2, strategy: strategy,
                  sampler: try SamplerConfig(steps: 3, guidanceScale: 2), seed: 11, batchSize: 3, strict: strict)
    }

    func testEndToEndWritesImagesGridAndTraceDeterministically() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        let a = try job(run, name: "a").run(encode: TinyRun.encoder)
        let b = try job(run, name: "b").run(encode: TinyRun.encoder)
        XCTAssertEqual(a.images.map(\.lastPathComponent), ["img_0.png", "img_1.png", "img_2.png", "img_3.png"])
        for (x, y) in zip(a.images, b.images) {
            XCTAssertEqual(try Data(contentsOf: x), try Data(contentsOf: y), "\(x.lastPathComponent) differs")
        }
        XCTAssertEqual(try Data(contentsOf: a.grid), try Data(contentsOf: b.grid))
        XCTAssertNotEqual(try Data(contentsOf: a.images[0]), try Data(contentsOf: a.images[1]))
        let image = try Image(contentsOf: a.images[0])
        XCTAssertEqual([image.width, image.height, image.channels], [32, 32, 3])
        let trace = try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: a.trace))
        XCTAssertEqual(trace.strategy, .top2)
        XCTAssertEqual(trace.steps.count, 3)
        XCTAssertEqual(trace.prompts, ["a cat", "a cat", "a car", "a car"])
        XCTAssertEqual(trace.seeds, [11, 12, 13, 14])
        for step in trace.steps {
            XCTAssertEqual(step.weights.count, 4)
            for row in step.weights { XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-9) }
        }
        XCTAssertEqual(try Data(contentsOf: a.trace), try Data(contentsOf: b.trace))
        // Batching does not change an image: the same seed gives the same bytes with batch size 1.
        var single = try job(run, name: "c")
        single.batchSize = 1
        let c = try single.run(encode: TinyRun.encoder)
        for (x, y) in zip(a.images, c.images) {
            let dx = try Image(contentsOf: x).pixels, dy = try Image(contentsOf: y).pixels
            let maxDiff = zip(dx, dy).map { abs(Int($0) - Int($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(maxDiff, 1, "batch size changed \(x.lastPathComponent)")
        }
        // An existing folder is not overwritten silently.
        assertThrows({ try self.job(run, name: "a").run(encode: TinyRun.encoder) }, contains: "already exists")
    }

    func testMissingExpertWarnsAndRenormalisesUnlessStrict() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        try FileManager.default.removeItem(at: run.expert(1).appendingPathComponent(ExpertCheckpoint.weightsName))
        var lines: [String] = []
        let result = try job(run, name: "lost").run(encode: TinyRun.encoder, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("expert 1 is skipped") }, "\(lines)")
        XCTAssertEqual(result.warnings.count, 1)
        let trace = try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: result.trace))
        XCTAssertEqual(trace.missingExperts, [1])
        XCTAssertTrue(trace.steps.allSatisfy { $0.weights.allSatisfy { $0 == [1, 0] } })
        assertThrows({ try self.job(run, name: "strict", strict: true).run(encode: TinyRun.encoder) },
                     contains: "expert 1 cannot be used (strict)")
    }

    func testOracleUsesTheShardOfTheCaption() throws {
        let run = try TinyRun.withCheckpoints(tmp, shards: [["a cat"], ["a car"]])
        let result = try job(run, name: "o", strategy: .oracle).run(encode: TinyRun.encoder)
        let trace = try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: result.trace))
        XCTAssertEqual(trace.steps[0].weights, [[1, 0], [1, 0], [0, 1], [0, 1]])
        assertThrows({ try self.job(run, name: "o2", strategy: .oracle, prompts: ["a dog"]).run(encode: TinyRun.encoder) },
                     contains: "'a dog' is in none of the shards")
    }

    func testBadInputs() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        assertThrows({ try self.job(run, name: "x", strategy: .top(3)).run(encode: TinyRun.encoder) },
                     contains: "asks for 3 experts, but the run has only 2")
        try FileManager.default.removeItem(at: run.router)
        assertThrows({ try self.job(run, name: "y").run(encode: TinyRun.encoder) }, contains: "no router checkpoint")
        assertThrows({ try self.job(RunLayout(self.tmp.appendingPathComponent("nope")), name: "z")
            .run(encode: TinyRun.encoder) }, contains: "no such run folder")
        assertThrows({ try self.job(run, name: "w", prompts: []).run(encode: TinyRun.encoder) }, contains: "no prompts")
    }

    /// A forced overwrite that fails (here the prompt encoder throws on the second batch) leaves the previous
    /// samples byte-identical and no temporary folder behind; a forced overwrite that succeeds replaces them whole.
    func testFailingForcedOverwriteLeavesTheOldSamplesUntouched() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        let first = try job(run, name: "keep").run(encode: TinyRun.encoder)
        let before = fileTree(first.folder)
        XCTAssertEqual(before.count, 6, "\(before.keys.sorted())")  // 4 images, grid, trace
        var forced = try job(run, name: "keep", prompts: ["a dog", "a cow"])  // 2 batches of at most 3
        forced.overwrite = true
        var calls = 0
        let failing: PromptEncoder = { prompts, length in
            calls += 1
            if calls == 2 { throw EnsembleError("stub encoder: failed on batch 2") }
            return try TinyRun.encoder(prompts, length)
        }
        assertThrows({ try forced.run(encode: failing) }, contains: "failed on batch 2")
        XCTAssertEqual(calls, 2)
        XCTAssertEqual(fileTree(first.folder), before, "a failed --force job changed the previous samples")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.samples.path), ["keep"],
                       "no temporary folder is left behind")
        // A forced overwrite that succeeds replaces every file (2 images now, not 4) and leaves nothing beside it.
        forced.imagesPerPrompt = 1
        let replaced = try forced.run(encode: TinyRun.encoder)
        XCTAssertEqual(Set(fileTree(replaced.folder).keys), ["img_0.png", "img_1.png", "grid.png", "trace.json"])
        let trace = try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: replaced.trace))
        XCTAssertEqual(trace.prompts, ["a dog", "a cow"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.samples.path), ["keep"])
    }

    /// Two jobs sampling into one name at the same time: exactly one wins, the other fails with "already exists",
    /// and every file in the folder is the winner's (its trace's prompts match the images).
    func testConcurrentJobsOnOneNameOneWinsAndTheFolderIsConsistent() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        let jobs = [try job(run, name: "race", prompts: ["a cat", "a car"]),  // 4 images
                    try job(run, name: "race", prompts: ["a dog"])]           // 2 images
        let results = RaceResults(count: 2)
        let start = DispatchGroup(), done = DispatchGroup()
        start.enter()
        for (i, j) in jobs.enumerated() {
            done.enter()
            let box = UncheckedBox(j)
            Thread.detachNewThread {
                start.wait()
                do { _ = try box.value.run(encode: TinyRun.encoder); results.set(i, nil) } catch {
                    results.set(i, "\(error)")
                }
                done.leave()
            }
        }
        start.leave()
        XCTAssertEqual(done.wait(timeout: .now() + 300), .success)
        let outcomes = results.all
        XCTAssertEqual(outcomes.filter { $0 == nil }.count, 1, "exactly one job succeeds: \(outcomes)")
        let winner = try XCTUnwrap(outcomes.firstIndex { $0 == nil })
        let loser = outcomes[1 - winner] ?? ""
        XCTAssertTrue(loser.contains("already exists"), loser)

        let folder = run.samples.appendingPathComponent("race")
        let files = fileTree(folder)
        let trace = try JSONDecoder().decode(RoutingTrace.self, from: try XCTUnwrap(files["trace.json"]))
        XCTAssertEqual(trace.prompts, jobs[winner].prompts.flatMap { [$0, $0] })
        XCTAssertEqual(files.keys.filter { $0.hasPrefix("img_") }.count, trace.prompts.count, "\(files.keys.sorted())")
        // Byte for byte the winner's: the same job run alone under another name writes the same files.
        var alone = jobs[winner]
        alone.name = "alone"
        let reference = fileTree(try alone.run(encode: TinyRun.encoder).folder)
        XCTAssertEqual(files, reference)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.samples.path).sorted(), ["alone", "race"])
    }

    /// Issue #18, item 9: an expert or router whose recorded shards (config.json `shards`, as the trainers publish
    /// it) differ from what the run's partition holds now is still used, but named in a warning (log, result,
    /// trace.json) with the shard that changed and the command that retrains it.
    func testStaleExpertsAndRouterAreNamedInWarnings() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        let config = try run.config()
        let partition = run.partition(config)
        /// A partition whose shard c's images checksum is `tags[c]` (shard.json only: nothing else is read).
        func partitionWith(_ tags: [String]) throws {
            for (c, tag) in tags.enumerated() {
                let info = ShardInfo(cluster: c, numClusters: 2, count: 1, channels: 3, imageSize: 32, captionCount: 1,
                                     textEncoder: "stub", textLength: 32, textDim: 384, dataset: "test",
                                     partitionMethod: "test", checksums: [Shard.imagesName: tag])
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                let folder = run.shard(c, config)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try encoder.encode(info).write(to: folder.appendingPathComponent(Shard.infoName))
            }
        }
        try partitionWith(["a", "a"])
        // What the trainers publish: each expert its own shard, the router all of them, as the partition is now.
        for (folder, clusters) in [(run.expert(0), [0]), (run.expert(1), [1]), (run.router, [0, 1])] {
            let url = folder.appendingPathComponent("config.json")
            var dict = try JSONObject.read(url)
            dict["shards"] = ShardIdentity.current(partition: partition, clusters: clusters).digests
            try JSONObject.write(dict, to: url)
        }
        var lines: [String] = []
        let fresh = try job(run, name: "fresh").run(encode: TinyRun.encoder, log: { lines.append($0) })
        XCTAssertEqual(fresh.warnings, [])
        XCTAssertFalse(lines.contains { $0.contains("trained on other data") }, "\(lines)")
        XCTAssertNil(try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: fresh.trace)).warnings)

        // Re-partitioned: shard_1 holds other data now, shard_0 the same.
        let was = ShardIdentity.current(partition: partition, clusters: [1]).digests["shard_1"]!
        try partitionWith(["a", "b"])
        let now = ShardIdentity.current(partition: partition, clusters: [1]).digests["shard_1"]!
        lines = []
        let stale = try job(run, name: "stale").run(encode: TinyRun.encoder, log: { lines.append($0) })
        let expert = "warning: expert 1 was trained on other data than \(partition.path) holds now: shard_1 (trained on "
            + "\(was), now \(now)); the partition was rebuilt since. Retrain it (`paris train expert --run "
            + "\(run.root.path) --expert 1 --restart`) or re-partition back"
        let router = "warning: the router was trained on other data than \(partition.path) holds now: shard_1 (trained "
            + "on \(was), now \(now))"
        XCTAssertTrue(lines.contains { $0.hasPrefix(expert) }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix(router) && $0.contains("`paris train router --run") }, "\(lines)")
        XCTAssertFalse(lines.contains { $0.contains("expert 0 was trained") }, "\(lines)")
        XCTAssertEqual(stale.warnings.count, 2, "\(stale.warnings)")
        XCTAssertTrue(stale.warnings.contains { $0.hasPrefix(expert) })
        let trace = try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: stale.trace))
        XCTAssertEqual(trace.warnings?.count, 2)
        XCTAssertTrue(trace.warnings?.first?.hasPrefix("expert 1 was trained on other data") == true, "\(trace.warnings ?? [])")
    }

    /// Issue #18, item 9, end to end: partition, train expert 0 a few steps, sample (no warning), re-partition (new
    /// images under the same shard names), sample again: expert 0 is named as trained on other data. The random
    /// router of `TinyRun` records no shards (a checkpoint from before they were recorded) and is not warned about.
    func testTrainedExpertOnARebuiltPartitionIsNamed() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        var config = try run.config()
        config.experts[0].steps = 2
        config.experts[0].batchSize = 4
        config.experts[0].checkpointEvery = 2
        config.experts[0].sampleEvery = 0
        config.experts[0].warmupSteps = 1
        try config.write(to: run.runJSON)
        try TinyRun.writeShards(run)
        // The trainer as a user runs it (ParisEnsemble's tests do not link the trainers).
        let trained = try runProcess(try parisBinary(self), ["train", "expert", "--run", run.root.path, "--expert", "0",
                                                             "--threads", "1"])
        XCTAssertEqual(trained.status, 0, trained.output)
        var lines: [String] = []
        XCTAssertEqual(try job(run, name: "before").run(encode: TinyRun.encoder, log: { lines.append($0) }).warnings, [])
        XCTAssertFalse(lines.contains { $0.contains("trained on other data") }, "\(lines)")

        // `paris partition --force` into the same run: the partition folder is replaced.
        try FileManager.default.removeItem(at: run.partition(config))
        try TinyRun.writeShards(run, seed: 4)
        lines = []
        let after = try job(run, name: "after").run(encode: TinyRun.encoder, log: { lines.append($0) })
        XCTAssertEqual(after.warnings.count, 1, "\(after.warnings)")
        let line = try XCTUnwrap(after.warnings.first)
        XCTAssertTrue(line.hasPrefix("warning: expert 0 was trained on other data than \(run.partition(config).path) "
            + "holds now: shard_0 (trained on "), line)
        XCTAssertTrue(lines.contains(line), "\(lines)")
        XCTAssertFalse(lines.contains { $0.contains("router was trained") || $0.contains("expert 1 was trained") },
                       "\(lines)")
    }

    /// Issue #18: `paris sample --steps 10¹²` and `--n 10¹²` aborted while sizing the time grid or the prompt list.
    /// Both are bounded, and checked before the run is even looked at (this run folder does not exist).
    func testStepAndImageBoundsAreCheckedBeforeAnythingIsLoaded() throws {
        let nowhere = RunLayout(tmp.appendingPathComponent("nope"))
        var huge = try job(nowhere, name: "n")
        huge.imagesPerPrompt = 1_000_000_000_000
        assertThrows({ try huge.run(encode: TinyRun.encoder) }, contains: "images, more than the 10000 one call may make")
        huge.imagesPerPrompt = Int.max
        assertThrows({ try huge.run(encode: TinyRun.encoder) }, contains: "more than \(Int.max) images")
        huge.imagesPerPrompt = SampleJob.maxImages / 2 + 1  // two prompts
        assertThrows({ try huge.run(encode: TinyRun.encoder) }, contains: "SampleJob.maxImages")
        huge.imagesPerPrompt = SampleJob.maxImages / 2
        assertThrows({ try huge.run(encode: TinyRun.encoder) }, contains: "no such run folder")
        var steps = try job(nowhere, name: "s")
        steps.sampler.steps = 1_000_000_000_000
        assertThrows({ try steps.run(encode: TinyRun.encoder) }, contains: "steps must be ≤ 10000 (SamplerConfig.maxSteps)")
    }
}

/// Moves a value into a thread that the test joins before reading anything back.
private final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// What each racing job ended with (nil: it succeeded), under a lock.
private final class RaceResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String?]
    init(count: Int) { values = Array(repeating: "not finished", count: count) }
    func set(_ i: Int, _ v: String?) { lock.lock(); values[i] = v; lock.unlock() }
    var all: [String?] { lock.lock(); defer { lock.unlock() }; return values }
}
