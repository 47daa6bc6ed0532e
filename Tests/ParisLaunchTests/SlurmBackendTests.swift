import Foundation
import ParisRun
import ParisTraining
import XCTest
@testable import ParisLaunch

/// The Slurm backend's commands and its reading of `scontrol`, against a fake command runner.
final class SlurmBackendTests: XCTestCase {
    var folder: URL!
    var paris: URL!

    override func setUpWithError() throws {
        folder = try LaunchFixtures.tempFolder("paris-slurm-unit")
        paris = folder.appendingPathComponent("paris")
        try LaunchFixtures.writeStandIn(to: paris, expertSteps: 5, routerSteps: 3, numExperts: 3)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// sbatch answers ids 100, 101, …; scontrol answers from `jobs`.
    func fakeSlurm(jobs: @escaping () -> String) -> FakeRunner {
        var next = 100
        let lock = NSLock()
        return FakeRunner { argv in
            switch argv[0] {
            case "sbatch":
                lock.lock(); defer { lock.unlock() }
                next += 1
                return CommandResult(status: 0, stdout: "\(next - 1)\n", stderr: "")
            case "scontrol":
                let id = argv.last!
                let lines = jobs().split(separator: "\n").filter {
                    $0.contains("JobId=\(id) ") || $0.contains("ArrayJobId=\(id) ")
                }
                if lines.isEmpty { return CommandResult(status: 1, stdout: "",
                                                        stderr: "slurm_load_jobs error: Invalid job id specified") }
                return CommandResult(status: 0, stdout: lines.joined(separator: "\n") + "\n", stderr: "")
            case "scancel": return CommandResult(status: 0, stdout: "", stderr: "")
            default: return CommandResult(status: 127, stdout: "", stderr: "unexpected \(argv)")
            }
        }
    }

    func testSubmitsInOrderWithDependenciesAndRecordsIds() throws {
        let run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 3) {
            $0 == 2 ? JobResources(gpus: 1) : JobResources()
        }
        let runner = fakeSlurm { "" }
        let env = ["PATH": "/usr/bin:/bin:\(folder.path)"]
        // sbatch must exist for the preflight check; a fake one in the PATH will do.
        try "#!/bin/sh\nexit 1\n".write(to: folder.appendingPathComponent("sbatch"), atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755],
                                              ofItemAtPath: folder.appendingPathComponent("sbatch").path)
        let outcome = try Launcher.launch(run: run, options: LaunchOptions(backend: .slurm, paris: paris.path,
                                                                           environment: env), runner: runner)
        let launch = run.launch.path
        XCTAssertEqual(runner.commands, [
            ["sbatch", "--parsable", "\(launch)/experts-g0.sbatch"],
            ["sbatch", "--parsable", "\(launch)/experts-g1.sbatch"],
            ["sbatch", "--parsable", "--dependency=afterok:100:101", "\(launch)/router.sbatch"],
            ["sbatch", "--parsable", "--dependency=afterok:100:101:102", "\(launch)/eval.sbatch"],
        ])
        XCTAssertEqual(outcome.submitted.map(\.jobId), ["100", "101", "102", "103"])
        for name in ["experts-g0.sbatch", "experts-g1.sbatch", "router.sbatch", "eval.sbatch", "submit.sh", "jobs.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(launch)/\(name)"), name)
        }
        let record = try XCTUnwrap(try LaunchRecord.read(run))
        XCTAssertEqual(record.backend, .slurm)
        XCTAssertEqual(record.current(expert: 2)?.jobId, "101")
        XCTAssertEqual(record.current(.router)?.dependsOn, ["100", "101"])

        // A second launch without --resume is refused with a clear message.
        XCTAssertThrowsError(try Launcher.launch(run: run, options: LaunchOptions(backend: .slurm, paris: paris.path,
                                                                                  environment: env), runner: runner)) {
            XCTAssertTrue("\($0)".contains("was launched before"), "\($0)")
        }
    }

    func testSbatchFailureNamesTheScriptAndWhatWasSubmitted() throws {
        let run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 2)
        let runner = FakeRunner { argv in
            argv.last!.hasSuffix("router.sbatch")
                ? CommandResult(status: 1, stdout: "", stderr: "sbatch: error: invalid partition specified: gpu")
                : CommandResult(status: 0, stdout: "7\n", stderr: "")
        }
        var record = LaunchRecord(backend: .slurm, run: run.root.path, paris: paris.path)
        let plan = try LaunchPlan.make(run: run, config: try run.config(), paris: paris.path,
                                       progress: RunProgress.read(run, config: try run.config()))
        XCTAssertThrowsError(try SlurmBackend(runner: runner).submit(plan, record: &record)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("sbatch router.sbatch failed (exit 1): sbatch: error: invalid partition"), text)
            XCTAssertTrue(text.contains("already submitted: experts 7"), text)
        }
        XCTAssertEqual(try LaunchRecord.read(run)?.jobs.map(\.jobId), ["7"])
    }

    /// Real `scontrol show job -o` lines (trimmed) from Slurm 22.05 after expert 1 of 3 failed.
    static let failedRun = """
        JobId=100 ArrayJobId=100 ArrayTaskId=2 JobName=t-experts UserId=root(0) JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 RunTime=00:00:01
        JobId=102 ArrayJobId=100 ArrayTaskId=1 JobName=t-experts UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01
        JobId=101 ArrayJobId=100 ArrayTaskId=0 JobName=t-experts UserId=root(0) JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 RunTime=00:00:01
        JobId=103 JobName=t-router UserId=root(0) JobState=CANCELLED Reason=DependencyNeverSatisfied Dependency=afterok:100_*(failed) ExitCode=0:0 KillOInInvalidDependent=Yes
        """

    func testStatusReadsArrayTasksAndExplainsAFailedExpert() throws {
        let run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 3)
        let record = LaunchRecord(backend: .slurm, run: run.root.path, paris: paris.path, jobs: [
            SubmittedJob(name: "experts", role: .experts, experts: [0, 1, 2], jobId: "100"),
            SubmittedJob(name: "router", role: .router, experts: nil, jobId: "103", dependsOn: ["100"]),
        ])
        try record.write(run)
        let status = try Launcher.status(run: run, environment: [:], runner: fakeSlurm { Self.failedRun })
        XCTAssertEqual(status.jobs.map(\.state), [.completed, .failed, .completed, .cancelled])
        XCTAssertEqual(status.expert(1)?.jobId, "100_1")
        XCTAssertEqual(status.expert(1)?.exitCode, "3:0")
        XCTAssertEqual(status.router?.reason, "DependencyNeverSatisfied")
        XCTAssertFalse(status.isActive)
        let message = try XCTUnwrap(status.failureMessage(run: run))
        XCTAssertTrue(message.contains("expert 1 FAILED (exit 3:0), reason NonZeroExitCode"), message)
        XCTAssertTrue(message.contains("the router was cancelled"), message)
        XCTAssertTrue(message.contains("--resume"), message)
        XCTAssertFalse(message.contains("expert 0"), message)
        XCTAssertTrue(status.table.contains("expert 1  100_1  FAILED"), status.table)
    }

    func testPendingArrayRangeAndPurgedJobs() throws {
        let run = try LaunchFixtures.makeRun(in: folder.appendingPathComponent("run"), k: 4)
        let record = LaunchRecord(backend: .slurm, run: run.root.path, paris: paris.path, jobs: [
            SubmittedJob(name: "experts", role: .experts, experts: [0, 1, 2, 3], jobId: "50"),
            SubmittedJob(name: "router", role: .router, experts: nil, jobId: "51", dependsOn: ["50"]),
        ])
        try record.write(run)
        let lines = """
            JobId=50 ArrayJobId=50 ArrayTaskId=2-3%2 JobName=t JobState=PENDING Reason=JobArrayTaskLimit ExitCode=0:0
            JobId=53 ArrayJobId=50 ArrayTaskId=1 JobName=t JobState=RUNNING Reason=None ExitCode=0:0
            JobId=51 JobName=r JobState=PENDING Reason=Dependency Dependency=afterok:50_*(unfulfilled) ExitCode=0:0
            """
        let runner = fakeSlurm { lines }
        let status = try Launcher.status(run: run, environment: [:], runner: runner)
        // Task 0 is no longer listed and has not finished: UNKNOWN.
        XCTAssertEqual(status.jobs.map(\.state), [.unknown, .running, .pending, .pending, .pending])
        XCTAssertEqual(status.expert(3)?.reason, "JobArrayTaskLimit")
        XCTAssertTrue(status.isActive)
        XCTAssertEqual(try Launcher.cancel(run: run, environment: [:], runner: runner), ["50", "51"])
        XCTAssertEqual(runner.commands.last, ["scancel", "50", "51"])
        // A resume while jobs are active is refused.
        XCTAssertThrowsError(try Launcher.launch(run: run, options: LaunchOptions(backend: .slurm, paris: paris.path,
                                                                                  resume: true), runner: runner)) {
            XCTAssertTrue("\($0)".contains("cannot resume while jobs are still pending or running"), "\($0)")
        }
    }

    func testStateNames() {
        XCTAssertEqual(SchedulerState(slurm: "COMPLETING"), .running)
        XCTAssertEqual(SchedulerState(slurm: "CANCELLED by 0"), .cancelled)
        XCTAssertEqual(SchedulerState(slurm: "OUT_OF_MEMORY"), .outOfMemory)
        XCTAssertEqual(SchedulerState(slurm: "weird"), .unknown)
        XCTAssertTrue(SchedulerState.timeout.isFailure)
        XCTAssertFalse(SchedulerState.pending.isFailure)
    }
}
