import Foundation

/// An exclusive lock on a job folder (`flock` on `<job>/train.lock`), so two processes never train the same expert
/// at once. The kernel drops it when the process dies, so a killed or preempted job never leaves it stuck.
final class JobLock {
    private var fd: Int32

    init(_ url: URL, job: String) throws {
        fd = open(url.path, O_RDWR | O_CREAT, 0o644)
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

    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
