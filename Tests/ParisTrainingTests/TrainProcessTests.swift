import Foundation
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// The `paris train` command as separate processes: experts side by side, signals, and `kill -9` at any moment.
final class TrainProcessTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func launch(_ args: [String], environment: [String: String] = [:], output: URL) throws -> Process {
        let p = Process()
        p.executableURL = try parisBinary(self)
        p.arguments = args + (args.first == "train" ? ["--threads", "1"] : [])
        var env = ProcessInfo.processInfo.environment
        env["SLURM_ARRAY_TASK_ID"] = nil
        env["JOB_COMPLETION_INDEX"] = nil
        for (k, v) in environment { env[k] = v }
        p.environment = env
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let h = try FileHandle(forWritingTo: output)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        return p
    }

    func text(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    func testTwoExpertsAtTheSameTimeTouchOnlyTheirOwnFolders() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = try TinyRun.make(root.appendingPathComponent("run"), k: 2, steps: 8)
        let log0 = root.appendingPathComponent("0.txt"), log1 = root.appendingPathComponent("1.txt")
        let p0 = try launch(["train", "expert", "--run", run.path, "--expert", "0"], output: log0)
        let p1 = try launch(["train", "expert", "--run", run.path], environment: ["SLURM_ARRAY_TASK_ID": "1"], output: log1)
        p0.waitUntilExit()
        p1.waitUntilExit()
        XCTAssertEqual(p0.terminationStatus, 0, text(log0))
        XCTAssertEqual(p1.terminationStatus, 0, text(log1))
        XCTAssertTrue(text(log1).contains("expert index 1 from SLURM_ARRAY_TASK_ID"), text(log1))
        XCTAssertTrue(text(log0).contains("[expert 0]"), text(log0))
        XCTAssertFalse(text(log0).contains("expert 1"), text(log0))
        let l0 = TinyRun.listing(run.appendingPathComponent("expert_0"))
        let l1 = TinyRun.listing(run.appendingPathComponent("expert_1"))
        XCTAssertEqual(l0, l1, "both folders hold the same set of files")
        XCTAssertTrue(l0.contains("diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.path).sorted(),
                       ["expert_0", "expert_1", "partition", "run.json"])
        let (_, i0) = try ExpertCheckpoint.load(from: run.appendingPathComponent("expert_0"))
        let (_, i1) = try ExpertCheckpoint.load(from: run.appendingPathComponent("expert_1"))
        XCTAssertEqual([i0.cluster, i1.cluster], [0, 1])
        // In-process training of expert 1 gives the same weights as the process did next to expert 0.
        let solo = try TinyRun.make(root.appendingPathComponent("solo"), k: 2, steps: 8)
        _ = try ExpertTrainer.train(run: solo, expert: 1)
        try TinyRun.assertIdentical(run.appendingPathComponent("expert_1/diffusion_pytorch_model.safetensors"),
                                    solo.appendingPathComponent("expert_1/diffusion_pytorch_model.safetensors"))
    }

    func testSIGTERMWritesACheckpointAndTheSameCommandResumes() throws {
        let root = try TinyRun.temporaryFolder(self)
        let run = try TinyRun.make(root.appendingPathComponent("run"), k: 1, steps: 3000, checkpointEvery: 1000)
        let log = root.appendingPathComponent("log.txt")
        let p = try launch(["train", "expert", "--run", run.path, "--expert", "0"], output: log)
        let metrics = run.appendingPathComponent("expert_0/metrics.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && (try? MetricsLog.read(metrics).count) ?? 0 < 2 { usleep(20_000) }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 128 + SIGTERM, text(log))
        XCTAssertTrue(text(log).contains("stopped by SIGTERM at step"), text(log))
        let store = TrainingCheckpoints(folder: run.appendingPathComponent("expert_0/state"))
        let step = try XCTUnwrap(store.latestStep())
        XCTAssertGreaterThanOrEqual(step, 4)
        XCTAssertLessThan(step, 3000)
        // Resume for a few steps with --stop-after: it continues from the checkpoint.
        let p2 = try launch(["train", "expert", "--run", run.path, "--expert", "0", "--stop-after", "2"], output: log)
        p2.waitUntilExit()
        XCTAssertEqual(p2.terminationStatus, 0, text(log))
        XCTAssertTrue(text(log).contains("resuming from step \(step)"), text(log))
        XCTAssertEqual(store.latestStep(), step + 2)
    }

    func testKill9DuringCheckpointWritesNeverLeavesACorruptCheckpoint() throws {
        let root = try TinyRun.temporaryFolder(self)
        // A checkpoint after every step, so the process is nearly always writing one.
        let steps = 30
        let reference = try TinyRun.make(root.appendingPathComponent("ref"), k: 1, steps: steps, checkpointEvery: 1)
        let run = try TinyRun.make(root.appendingPathComponent("run"), k: 1, steps: steps, checkpointEvery: 1)
        let log = root.appendingPathComponent("log.txt")
        let refProcess = try launch(["train", "expert", "--run", reference.path, "--expert", "0"], output: log)
        refProcess.waitUntilExit()
        XCTAssertEqual(refProcess.terminationStatus, 0, text(log))
        let state = run.appendingPathComponent("expert_0/state")
        var kills = 0, duringWrite = 0
        for attempt in 0..<4 {
            let p = try launch(["train", "expert", "--run", run.path, "--expert", "0"], output: log)
            // Wait until a checkpoint is being written (a temporary folder exists), then kill -9 at once.
            let deadline = Date().addingTimeInterval(60)
            var sawTemporary = false
            while p.isRunning && Date() < deadline {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: state.path)) ?? []
                if names.contains(where: { $0.hasPrefix(".tmp-") }) && names.contains(where: { $0.hasPrefix("step_") }) {
                    sawTemporary = true
                    usleep(UInt32(attempt * 300))
                    break
                }
                usleep(200)
            }
            guard p.isRunning else { break }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            kills += 1
            XCTAssertEqual(p.terminationReason, .uncaughtSignal)
            if sawTemporary { duringWrite += 1 }
            // Every complete-looking checkpoint loads; the newest one is what a restart would use.
            let store = TrainingCheckpoints(folder: state)
            for s in store.steps() { XCTAssertNoThrow(try store.load(step: s, device: .cpu), "step_\(s) is corrupt") }
        }
        XCTAssertGreaterThan(kills, 0, "the job finished before it could be killed")
        print("kill -9: \(kills) kills, \(duringWrite) while a checkpoint was being written")
        let last = try launch(["train", "expert", "--run", run.path, "--expert", "0"], output: log)
        last.waitUntilExit()
        XCTAssertEqual(last.terminationStatus, 0, text(log))
        // Killed and resumed, the expert still reaches the uninterrupted weights bit for bit.
        for file in ["diffusion_pytorch_model.safetensors", "state/step_\(steps)/optimizer.safetensors"] {
            try TinyRun.assertIdentical(reference.appendingPathComponent("expert_0/" + file),
                                        run.appendingPathComponent("expert_0/" + file))
        }
    }

    func testRunInitAndErrorsFromTheCommandLine() throws {
        let root = try TinyRun.temporaryFolder(self)
        let log = root.appendingPathComponent("log.txt")
        let run = root.appendingPathComponent("r")
        let lines = (0..<64).map { #"{"file_name": "\#($0).png", "text": "x"}"# + "\n" }.joined()
        try Data(lines.utf8).write(to: root.appendingPathComponent("metadata.jsonl"))
        let p = try launch(["run", "init", "--run", run.path, "--data", root.path, "--k", "2"], output: log)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text(log))
        XCTAssertTrue(text(log).contains("paris partition --data"), text(log))
        let again = try launch(["run", "init", "--run", run.path, "--data", root.path, "--k", "2"], output: log)
        again.waitUntilExit()
        XCTAssertNotEqual(again.terminationStatus, 0)
        XCTAssertTrue(text(log).contains("--force"), text(log))
        let noIndex = try launch(["train", "expert", "--run", run.path], output: log)
        noIndex.waitUntilExit()
        XCTAssertNotEqual(noIndex.terminationStatus, 0)
        XCTAssertTrue(text(log).contains("no expert index"), text(log))
        let missing = try launch(["train", "expert", "--run", run.path], environment: ["JOB_COMPLETION_INDEX": "1"],
                                 output: log)
        missing.waitUntilExit()
        XCTAssertNotEqual(missing.terminationStatus, 0)
        XCTAssertTrue(text(log).contains("expert index 1 from JOB_COMPLETION_INDEX"), text(log))
        XCTAssertTrue(text(log).contains("shard 1 is missing"), text(log))
    }
}
