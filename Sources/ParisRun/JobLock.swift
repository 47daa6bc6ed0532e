import Foundation

/// An exclusive lock on a job folder (`flock` on `<job>/train.lock`), so two processes never train the same job
/// at once. The kernel drops it when the process dies, so a killed or preempted job never leaves it stuck, and
/// `isHeld` tells a live trainer from a dead one at once (what `paris status` shows as running).
public final class JobLock {
    /// The lock file's name inside a job folder.
    public static let fileName = "train.lock"
    private var fd: Int32

    /// Takes the lock at `url`, or throws naming the process that holds it; `job` names the job in the message.
    public init(_ url: URL, job: String) throws {
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunError("\(url.path): cannot open the lock file: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOf: url, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            fd = -1
            throw RunError("\(job) is being trained by another process (\(holder.map { "pid \($0)" } ?? "unknown pid"), "
                + "lock \(url.path)); wait for it or stop it first")
        }
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Whether a process (this one included) holds the lock at `url`. Never creates the file.
    public static func isHeld(_ url: URL) -> Bool {
        let probe = open(url.path, O_RDONLY | O_CLOEXEC)
        guard probe >= 0 else { return false }
        defer { close(probe) }
        if flock(probe, LOCK_EX | LOCK_NB) == 0 {
            flock(probe, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    /// Releases the lock (also done when the object goes away or the process ends).
    public func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
