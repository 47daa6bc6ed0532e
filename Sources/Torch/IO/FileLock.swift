import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a folder's work (`flock` on a lock file in it), so two processes never write the same job or
/// partition at once: a training job holds `<job>/train.lock` (`trainingName`), a partition its work folder's lock.
/// The kernel drops it when the process dies, so a killed or preempted process never leaves it stuck, and `isHeld`
/// tells a live writer from a dead one at once (what `paris status` shows as running).
public final class FileLock {
    /// The lock file's name inside a training job's folder.
    public static let trainingName = "train.lock"
    private var fd: Int32

    /// Takes the lock at `url`, or throws naming the process that holds it. `busy` says what the holder does, e.g.
    /// "expert 2 is being trained": the error reads "<busy> by another process (pid N, lock <url>); …".
    public init(_ url: URL, busy: String) throws {
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TorchError("\(url.path): cannot open the lock file: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOf: url, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            fd = -1
            throw TorchError("\(busy) by another process (\(holder.map { "pid \($0)" } ?? "unknown pid"), "
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
