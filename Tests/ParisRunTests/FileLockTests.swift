import Foundation
import ParisRun
import Torch
import ParisTestSupport
import XCTest

/// The trainer lock (`<job>/train.lock`) is what `paris status` reads liveness from: held while a trainer lives,
/// free the moment it dies, even by SIGKILL, with no timeout.
final class FileLockTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("paris-lock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    var url: URL { folder.appendingPathComponent(FileLock.trainingName) }

    func testSecondLockIsRefusedNamingTheJobAndTheHolder() throws {
        XCTAssertFalse(FileLock.isHeld(url))
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "isHeld must never create the lock file")
        let lock = try FileLock(url, busy: "expert_3 is being trained")
        XCTAssertTrue(FileLock.isHeld(url))
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "\(getpid())\n")
        assertThrows({ try FileLock(url, busy: "expert_3 is being trained") }, contains: "expert_3 is being trained by another process (pid \(getpid())")
        lock.release()
        XCTAssertFalse(FileLock.isHeld(url))
        let again = try FileLock(url, busy: "expert_3 is being trained")
        XCTAssertTrue(FileLock.isHeld(url))
        again.release()
    }

    /// A process holding the lock is seen as live; killed with -9 it is seen as gone at once.
    func testKilledHolderFreesTheLockAtOnce() throws {
        let holder = Process()
        // One process that takes the lock as a trainer does (flock on the file) and then just lives.
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
                            + "fcntl.flock(f, fcntl.LOCK_EX); time.sleep(30)", url.path]
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        let deadline = Date().addingTimeInterval(10)
        while !FileLock.isHeld(url) && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(FileLock.isHeld(url), "the holder should hold the lock")
        XCTAssertThrowsError(try FileLock(url, busy: "router is being trained"))
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let killed = Date()
        while FileLock.isHeld(url) && Date().timeIntervalSince(killed) < 1 { usleep(5_000) }
        XCTAssertFalse(FileLock.isHeld(url), "a killed holder must free the lock at once, not after a timeout")
        XCTAssertNoThrow(try FileLock(url, busy: "router is being trained").release())
    }
}
