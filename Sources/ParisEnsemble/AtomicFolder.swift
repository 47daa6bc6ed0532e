import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A folder written whole or not at all: its files go into a staging folder beside the target (same parent, so the
/// same filesystem and `rename(2)` is atomic), which is then moved onto the target's name in one step.
///
/// Why these calls. Without replacing, the move must fail when the target exists, and the check must be the move
/// itself (a separate "does it exist" check races with another job doing the same). `renameat2(…, RENAME_NOREPLACE)`
/// is exactly that, and `renameat2(…, RENAME_EXCHANGE)` swaps the new folder with the old one in one step, so a
/// reader sees the old folder or the new one, never neither or a mix. glibc has no Swift declaration of `renameat2`
/// (it needs `_GNU_SOURCE`), so it is looked up with `dlsym`. Where it is missing (another libc) or the filesystem
/// refuses the flags (`EINVAL`, e.g. some network filesystems), plain `rename(2)` still cannot move a folder onto a
/// non-empty one (`ENOTEMPTY`/`EEXIST`), and a published folder is never empty, so it is the no-replace fallback
/// (at worst it replaces an empty folder, which loses nothing); the replacing fallback renames the old folder aside,
/// renames the new one in and deletes the old, with a moment in between where the name is absent. A `mkdir` claim
/// of the final name was not used: it would make the half-written folder visible under its final name.
enum AtomicFolder {
    /// A new empty staging folder for `target`: `.<name>.tmp-<pid>-<random>` in `target`'s parent (created when
    /// missing). A job killed before it publishes leaves it behind; it is never read.
    static func makeStaging(beside target: URL) throws -> URL {
        let parent = target.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        let tag = UUID().uuidString.prefix(8)
        let staging = parent.appendingPathComponent(".\(target.lastPathComponent).tmp-\(getpid())-\(tag)")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false)
        return staging
    }

    /// Moves the folder `staged` onto `target` in one step. Without `replace`, returns false (and leaves both as
    /// they are) when `target` exists; with it, an existing `target` is replaced and the old folder deleted.
    /// `kernelFlags: false` forces the plain `rename(2)` fallback (tests).
    static func publish(_ staged: URL, to target: URL, replace: Bool, kernelFlags: Bool = true) throws -> Bool {
        let from = staged.path, to = target.path
        for _ in 0..<100 {
            if try moveIfAbsent(from, to, kernelFlags: kernelFlags) { return true }
            guard replace else { return false }
            if try swapIn(from, to, kernelFlags: kernelFlags) { return true }
            // The target went away between the two calls (another job replacing it too): claim the name again.
        }
        throw EnsembleError("\(to): could not replace it (it kept changing under another job)")
    }

    private static let noReplace: UInt32 = 1  // RENAME_NOREPLACE, <linux/fs.h>
    private static let exchange: UInt32 = 2  // RENAME_EXCHANGE

    /// `renameat2(AT_FDCWD, from, AT_FDCWD, to, flags)`: 0 or the errno; nil when it is not available here or
    /// the filesystem does not support the flag.
    private static func renameat2(_ from: String, _ to: String, flags: UInt32) -> Int32? {
        #if os(Linux)
        typealias Fn = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(nil, "renameat2") else { return nil }  // nil is RTLD_DEFAULT on glibc
        let fn = unsafeBitCast(symbol, to: Fn.self)
        if fn(AT_FDCWD, from, AT_FDCWD, to, flags) == 0 { return 0 }
        let e = errno
        return e == EINVAL || e == ENOSYS || e == ENOTSUP ? nil : e
        #else
        return nil
        #endif
    }

    /// Moves `from` to `to` if nothing is at `to`; false when something is.
    private static func moveIfAbsent(_ from: String, _ to: String, kernelFlags: Bool) throws -> Bool {
        if kernelFlags, let r = renameat2(from, to, flags: noReplace) {
            if r == 0 { return true }
            if r == EEXIST { return false }
            throw failure("move \(from) to \(to)", r)
        }
        if rename(from, to) == 0 { return true }
        let e = errno
        if e == ENOTEMPTY || e == EEXIST || e == ENOTDIR || e == EISDIR { return false }
        throw failure("move \(from) to \(to)", e)
    }

    /// Replaces what is at `to` with `from` and deletes the old; false when `to` vanished meanwhile.
    private static func swapIn(_ from: String, _ to: String, kernelFlags: Bool) throws -> Bool {
        if kernelFlags, let r = renameat2(from, to, flags: exchange) {
            if r == 0 {
                try? FileManager.default.removeItem(atPath: from)  // `from` now holds the old folder
                return true
            }
            if r == ENOENT { return false }
            throw failure("swap \(from) with \(to)", r)
        }
        let aside = (to as NSString).deletingLastPathComponent + "/."
            + (to as NSString).lastPathComponent + ".old-\(getpid())-\(UUID().uuidString.prefix(8))"
        if rename(to, aside) != 0 {
            let e = errno
            if e == ENOENT { return false }
            throw failure("move \(to) aside", e)
        }
        if rename(from, to) == 0 {
            try? FileManager.default.removeItem(atPath: aside)
            return true
        }
        let e = errno
        if e == ENOTEMPTY || e == EEXIST {
            // Another job put its folder there in the moment the name was free: it replaced the old one, as this job
            // would have; claim the name again (and replace that one in turn).
            try? FileManager.default.removeItem(atPath: aside)
            return false
        }
        _ = rename(aside, to)  // put the old folder back
        throw failure("move \(from) to \(to)", e)
    }

    private static func failure(_ what: String, _ code: Int32) -> EnsembleError {
        EnsembleError("cannot \(what): \(String(cString: strerror(code)))")
    }
}
