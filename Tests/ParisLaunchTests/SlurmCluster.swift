import Foundation
import ParisRun
import ParisLaunch
import ParisTraining
import XCTest

/// A real single-node Slurm cluster for one test class, started with scripts/slurm-up.sh in a fresh folder under
/// /tmp and stopped with scripts/slurm-down.sh. `SLURM_CONF` goes only into the environment handed to child
/// processes, never into this process's.
///
/// When the tests must run: always under CI (`CI` set), and whenever the user is root (the scripts install the
/// packages and start the daemons). Elsewhere they are skipped. Under CI a cluster that cannot start fails the
/// test.
final class SlurmCluster: @unchecked Sendable {
    let base: URL
    /// This process's environment plus `SLURM_CONF`, for sbatch/scontrol and the jobs.
    let environment: [String: String]
    private(set) var stopped = false

    private init(base: URL, environment: [String: String]) {
        self.base = base
        self.environment = environment
    }

    /// Why the Slurm tests are skipped here, or nil when they must run.
    static var skipReason: String? {
        let env = ProcessInfo.processInfo.environment
        if let ci = env["CI"], !ci.isEmpty, ci != "0", ci.lowercased() != "false" { return nil }
        if env["PARIS_SKIP_SLURM_TESTS"] == "1" { return "PARIS_SKIP_SLURM_TESTS=1" }
        return getuid() == 0 ? nil : "the real-Slurm tests need root (they start munged, slurmctld, slurmd) or CI=1"
    }

    /// Starts a cluster (`fakeGPUs` fake GPUs) or throws with the script's output.
    static func start(fakeGPUs: Int) throws -> SlurmCluster {
        let base = URL(fileURLWithPath: "/tmp/paris-slurm-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        var env = ProcessInfo.processInfo.environment
        env["FAKE_GPUS"] = String(fakeGPUs)
        // Ports of its own, so that a cluster of another test run on this machine does not get in the way.
        let port = 17000 + 2 * Int.random(in: 0..<2000)
        env["SLURMCTLD_PORT"] = String(port)
        env["SLURMD_PORT"] = String(port + 1)
        let script = LaunchFixtures.repoRoot.appendingPathComponent("scripts/slurm-up.sh").path
        let result = try ProcessRunner(environment: env).run(["/bin/bash", script, base.path])
        guard result.status == 0 else {
            _ = try? ProcessRunner(environment: env).run(["/bin/bash", downScript, base.path, "--munge"])
            throw LaunchError("scripts/slurm-up.sh \(base.path) failed (exit \(result.status)):\n"
                + result.stdout + result.stderr)
        }
        env["SLURM_CONF"] = base.appendingPathComponent("etc/slurm.conf").path
        for key in ["FAKE_GPUS", "SLURMCTLD_PORT", "SLURMD_PORT"] { env.removeValue(forKey: key) }
        return SlurmCluster(base: base, environment: env)
    }

    static var downScript: String { LaunchFixtures.repoRoot.appendingPathComponent("scripts/slurm-down.sh").path }

    /// Stops the daemons by PID and removes the folder (keeping it when `keep`, for a failed test's logs).
    func stop(keep: Bool = false) {
        guard !stopped else { return }
        stopped = true
        _ = try? ProcessRunner(environment: environment).run(["/bin/bash", Self.downScript, base.path, "--munge"])
        if !keep { try? FileManager.default.removeItem(at: base) }
    }

    /// Runs a Slurm command with the cluster's environment.
    func run(_ argv: [String]) throws -> CommandResult { try ProcessRunner(environment: environment).run(argv) }
}

/// A test case that holds one cluster for all its tests (started by the first test, stopped after the last).
class SlurmTestCase: XCTestCase {
    class var fakeGPUs: Int { 0 }
    nonisolated(unsafe) static var clusters: [String: SlurmCluster] = [:]
    nonisolated(unsafe) static var failures: [String: String] = [:]

    /// The class's cluster: skips when the tests need not run here, fails when it should start and cannot.
    func cluster() throws -> SlurmCluster {
        if let reason = SlurmCluster.skipReason { throw XCTSkip(reason) }
        let key = String(describing: type(of: self))
        if let c = Self.clusters[key] { return c }
        if let f = Self.failures[key] { XCTFail(f); throw LaunchError(f) }
        do {
            let c = try SlurmCluster.start(fakeGPUs: type(of: self).fakeGPUs)
            Self.clusters[key] = c
            return c
        } catch {
            let message = "Slurm must run here (root or CI) but did not start: \(error)"
            Self.failures[key] = message
            XCTFail(message)
            throw error
        }
    }

    override class func tearDown() {
        clusters[String(describing: self)]?.stop()
        clusters[String(describing: self)] = nil
        super.tearDown()
    }

    /// Waits until no job of `run` is pending or running.
    func waitForJobs(_ run: RunLayout, _ c: SlurmCluster, timeout: TimeInterval = 300) throws -> LaunchStatus {
        try Launcher.wait(run: run, environment: c.environment, timeout: timeout, interval: 0.3)
    }
}
