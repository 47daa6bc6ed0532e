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

    /// Processes a test started (stopped and reaped in teardown).
    var started: [pid_t] = []

    override func tearDownWithError() throws {
        for pid in started {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(at: folder)
    }

    func options(resume: Bool = false, parallel: Int = 2, experts: Set<Int>? = nil) -> LaunchOptions {
        LaunchOptions(backend: .local, paris: paris.path, resume: resume, parallel: parallel, experts: experts,
                      environment: env)
    }

    func testExpertsRunInParallelThenRouterThenEval() throws {
        var lines: [String] = [], arrivals: [String: Date] = [:]
        let outcome = try Launcher.launch(run: run, options: options()) {
            lines.append($0)
            arrivals[$0] = arrivals[$0] ?? Date()
        }
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
        // Each running job's output reaches the launch's log, prefixed with the job, as it is written.
        XCTAssertTrue(lines.contains("expert-1 | stand-in expert 1: finished"), "\(lines)")
        // ... while the job runs: its first line arrives at least most of its 5 × 0.05 s of steps before it ends.
        let first = try XCTUnwrap(arrivals["expert-1 | stand-in expert 1: resuming at step 0 of 5"])
        let completed = try XCTUnwrap(arrivals.first { $0.key.hasPrefix("expert-1: COMPLETED") }?.value)
        XCTAssertGreaterThan(completed.timeIntervalSince(first), 0.15, "progress must be shown live, not at the end")
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

    /// A `sleep 30` child of the test, its pid and start time (field 22 of /proc/<pid>/stat, read here
    /// independently of the library).
    func sleeper() throws -> (pid: pid_t, start: UInt64) {
        let pid = try Spawn.start(URL(fileURLWithPath: "/bin/sleep"), arguments: ["30"], environment: [:],
                                  stdout: "/dev/null", stderr: "/dev/null")
        started.append(pid)
        return (pid, try sleeperStart(pid))
    }

    /// Field 22 of /proc/<pid>/stat, read by the test itself.
    func sleeperStart(_ pid: pid_t) throws -> UInt64 {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: try XCTUnwrap(stat.lastIndex(of: ")")))...].split(separator: " ")
        return try XCTUnwrap(UInt64(fields[19]))  // fields after the comm start at field 3 (state)
    }

    /// Whether the test's child `pid` still runs (a killed child stays a zombie until reaped, so kill(pid, 0)
    /// cannot tell).
    func alive(_ pid: pid_t) throws -> Bool {
        Thread.sleep(forTimeInterval: 0.2)
        guard try Spawn.poll(pid) == nil else {
            started.removeAll { $0 == pid }
            return false
        }
        return true
    }

    /// A local record written by hand, as a launcher that ended (every job COMPLETED) could have left it.
    /// With `child`, expert 1 is RUNNING as that pid with that start time.
    func writeRecord(launcherPid: pid_t, startTime: UInt64?, child: (pid: pid_t, start: UInt64)? = nil) throws {
        let start = startTime.map { ", \"launcher_start_time\": \($0)" } ?? ""
        let running = child.map {
            """
            , {"name": "expert-1", "role": "experts", "experts": [1], "job_id": "local-1", "depends_on": [],
               "submitted_at": "2026-01-01T00:00:00Z", "state": "RUNNING", "pid": \($0.pid), "pid_start_time": \($0.start)}
            """
        } ?? ""
        let json = """
            {"backend": "local", "run": "\(run.root.path)", "paris": "\(paris.path)", "launcher_pid": \(launcherPid)\(start),
             "jobs": [{"name": "expert-0", "role": "experts", "experts": [0], "job_id": "local-0", "depends_on": [],
                       "submitted_at": "2026-01-01T00:00:00Z", "state": "COMPLETED", "exit_code": 0}\(running)]}
            """
        try FileManager.default.createDirectory(at: run.launch, withIntermediateDirectories: true)
        try Data(json.utf8).write(to: run.launch.appendingPathComponent(LaunchRecord.fileName))
    }

    /// The launcher's pid and start time are in jobs.json only while the launch runs: a finished launch (or a
    /// failed one) clears them, so a later --cancel has no pid to signal.
    func testLogFollowerReturnsEachCompleteLineOnce() throws {
        let url = folder.appendingPathComponent("job.log")
        var follower = LogFollower(url)
        XCTAssertEqual(follower.newLines(), [], "a file that does not exist yet has no lines")
        try Data("step 1\nstep 2\nstep".utf8).write(to: url)
        XCTAssertEqual(follower.newLines(), ["step 1", "step 2"], "a partial last line waits for its newline")
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(" 3\n\nstep 4\n".utf8))
        try handle.close()
        XCTAssertEqual(follower.newLines(), ["step 3", "step 4"])
        XCTAssertEqual(follower.newLines(), [])
        try Data("new\n".utf8).write(to: url)
        XCTAssertEqual(follower.newLines(), ["new"], "a rewritten (shorter) file is read from the start")
    }

    func testAFinishedLaunchClearsTheLauncherPid() throws {
        _ = try Launcher.launch(run: run, options: options(parallel: 3))
        let text = try String(contentsOf: run.launch.appendingPathComponent(LaunchRecord.fileName), encoding: .utf8)
        XCTAssertFalse(text.contains("launcher_pid"), text)
        XCTAssertFalse(text.contains("launcher_start_time"), text)
        XCTAssertNil(try XCTUnwrap(LaunchRecord.read(run)).launcherPid)
        XCTAssertEqual(try Launcher.cancel(run: run, environment: env), [])
        // A launch whose experts fail also ends with the pid cleared.
        try "x".write(to: run.root.appendingPathComponent("fail_expert0"), atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: run.root.appendingPathComponent("expert_0"))
        _ = try Launcher.launch(run: run, options: options(resume: true))
        let again = try String(contentsOf: run.launch.appendingPathComponent(LaunchRecord.fileName), encoding: .utf8)
        XCTAssertFalse(again.contains("launcher_pid"), again)
    }

    /// A recorded launcher pid now held by a process that started at another time (a reused pid), or recorded
    /// without a start time, is never signalled.
    func testCancelDoesNotSignalAReusedLauncherPid() throws {
        let sleep = try sleeper()
        try writeRecord(launcherPid: sleep.pid, startTime: sleep.start + 1)
        XCTAssertEqual(try Launcher.cancel(run: run, environment: env), [])
        XCTAssertTrue(try alive(sleep.pid), "a process whose start time differs from the record was signalled")
        try writeRecord(launcherPid: sleep.pid, startTime: nil)
        XCTAssertEqual(try Launcher.cancel(run: run, environment: env), [])
        XCTAssertTrue(try alive(sleep.pid), "a pid recorded without a start time was signalled")
        // The same for a child recorded as running.
        try writeRecord(launcherPid: 0, startTime: nil, child: (sleep.pid, sleep.start + 1))
        XCTAssertEqual(try Launcher.cancel(run: run, environment: env), [])
        XCTAssertTrue(try alive(sleep.pid), "a child pid whose start time differs from the record was signalled")
        XCTAssertEqual(try XCTUnwrap(LaunchRecord.read(run)).jobs.last?.state, .cancelled)
    }

    /// The launcher recorded with its own start time is signalled, and the record then forgets it.
    func testCancelSignalsTheRecordedLauncher() throws {
        let sleep = try sleeper()
        try writeRecord(launcherPid: sleep.pid, startTime: sleep.start)
        XCTAssertEqual(try Launcher.cancel(run: run, environment: env), [String(sleep.pid)])
        XCTAssertFalse(try alive(sleep.pid), "the recorded launcher was not signalled")
        let record = try XCTUnwrap(LaunchRecord.read(run))
        XCTAssertNil(record.launcherPid)
        XCTAssertNil(record.launcherStartTime)
        let child = try sleeper()
        try writeRecord(launcherPid: 0, startTime: nil, child: child)
        XCTAssertEqual(try Launcher.cancel(run: run, environment: env), [String(child.pid)])
        XCTAssertFalse(try alive(child.pid), "the recorded child was not signalled")
        XCTAssertNil(try XCTUnwrap(LaunchRecord.read(run)).jobs.last?.pid)
    }

    /// Field 22 of /proc/<pid>/stat is found after the last ")", whatever the command name holds.
    func testStartTimeIsReadPastACommandNameWithSpacesAndParentheses() throws {
        let rest = (4...21).map(String.init).joined(separator: " ")
        XCTAssertEqual(ProcessStart.parse("1234 (a) b (c) S \(rest) 424242 23 24\n"), 424242)
        XCTAssertEqual(ProcessStart.parse("1234 (sleep) S \(rest) 7 23 24"), 7)
        XCTAssertNil(ProcessStart.parse("1234 (cut short) S 4 5"))
        XCTAssertNil(ProcessStart.parse("garbage"))
        // A real process whose name has both: a copy of sleep called "x) (y z".
        let odd = folder.appendingPathComponent("x) (y z")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: "/bin/sleep"), to: odd)
        let pid = try Spawn.start(odd, arguments: ["30"], environment: [:], stdout: "/dev/null", stderr: "/dev/null")
        started.append(pid)
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        XCTAssertTrue(stat.contains("(x) (y z)"), stat)
        let start = try XCTUnwrap(ProcessStart.of(pid))
        XCTAssertEqual(start, try sleeperStart(pid))
        XCTAssertNil(ProcessStart.of(-1))
    }
}
