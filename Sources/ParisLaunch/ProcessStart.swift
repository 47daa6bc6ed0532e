import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A process named by its pid together with its start time. A pid alone names whatever process holds the number
/// now: once the recorded process has ended, the kernel hands the number to the next process it starts, so a pid
/// read back from `jobs.json` later may belong to an unrelated program. The start time (field 22 of
/// `/proc/<pid>/stat`, `starttime`, in clock ticks since boot) tells them apart: a reused pid has a later one.
enum ProcessStart {
    /// The start time of the process `pid` now, or nil when there is none (or no `/proc`).
    static func of(_ pid: Int32) -> UInt64? {
        guard pid > 0, let text = contents(of: "/proc/\(pid)/stat") else { return nil }
        return parse(text)
    }

    /// Field 22 of a `/proc/<pid>/stat` line. Field 2, the command name, is in parentheses and may itself hold
    /// spaces and parentheses (`1234 (a) b (c) S 1 …`), so the fields are counted from after the last `)`: there
    /// the state is field 3, and starttime the 20th field on.
    static func parse(_ stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 20 else { return nil }
        return UInt64(fields[19])
    }

    /// Sends `signal` to `pid` only if it is the process recorded with start time `start`: never to a pid without
    /// a recorded start time, nor to one whose start time differs (a reused pid). True when it was sent. (What is
    /// left is the microseconds between reading the start time and `kill`, in which the pid would have to end and
    /// be handed out again, all the way round the pid space.)
    static func signal(_ pid: Int32, start: UInt64?, _ signal: Int32) -> Bool {
        guard pid > 0, let start, of(pid) == start else { return false }
        return kill(pid, signal) == 0
    }

    /// Whether the recorded process still runs: by its start time when one was recorded, else by the pid alone.
    static func isRunning(_ pid: Int32, start: UInt64?) -> Bool {
        if let start { return of(pid) == start }
        return !(kill(pid, 0) != 0 && errno == ESRCH)
    }

    /// A small file read to its end (`/proc` files report size 0, so the size is not trusted).
    private static func contents(of path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
