import Foundation

/// The process's resident memory as Linux reports it (`/proc/self/status`), for logging the peak of each stage of
/// long work (`paris partition` prints one per stage; `bench/scale.sh` reads those lines).
public enum ProcessMemory {
    /// VmHWM: the peak resident set size since the process started or since the last `resetPeak()`, in bytes; nil
    /// where `/proc` is absent (not Linux).
    public static func peakResident() -> Int? { status("VmHWM:") }

    /// Starts a new peak: writing "5" to `/proc/self/clear_refs` (Linux 4.0 and later) resets VmHWM to the current
    /// resident size, so the next `peakResident()` is the peak since now. Returns whether that worked.
    @discardableResult
    public static func resetPeak() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5".utf8))) != nil
    }

    /// "412 MiB" (or "?" when unknown).
    public static func describe(_ bytes: Int?) -> String {
        bytes.map { String(format: "%.0f MiB", Double($0) / 1_048_576) } ?? "?"
    }

    /// The value of a `status` line such as "VmHWM:    123456 kB", in bytes.
    static func status(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
            return kb * 1024
        }
        return nil
    }
}
