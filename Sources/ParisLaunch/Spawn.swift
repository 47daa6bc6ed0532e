import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Child processes through `posix_spawn` and `waitpid`, with output going straight to files.
///
/// Foundation's `Process` is not used: on Linux its `waitUntilExit` was seen to hang for good after a child
/// (scripts/slurm-up.sh, which starts daemons) had exited, leaving the child a zombie; and pipes read to the end
/// block while any grandchild holds them. Files and `waitpid` on our own pids have neither problem.
enum Spawn {
    /// How a child ended.
    struct Termination: Equatable {
        /// The exit status, or the signal number when `signalled`.
        var code: Int32
        var signalled: Bool
    }

    /// Starts `executable` with `arguments` and exactly `environment`; stdin is /dev/null, stdout and stderr are
    /// appended to the files at `stdout` and `stderr` (created when missing; they may be the same file).
    static func start(_ executable: URL, arguments: [String], environment: [String: String], stdout: String,
                      stderr: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let flags = O_WRONLY | O_CREAT | O_APPEND
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, flags, 0o644)
        if stderr == stdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, flags, 0o644)
        }
        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable.path, &actions, nil, argv, envp)
        guard rc == 0 else {
            throw LaunchError("cannot start \(executable.path): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Waits for `pid` to end.
    static func wait(_ pid: pid_t) throws -> Termination {
        while true {
            if let t = try poll(pid, block: true) { return t }
        }
    }

    /// How `pid` ended, or nil while it runs (`block`: wait for it).
    static func poll(_ pid: pid_t, block: Bool = false) throws -> Termination? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, block ? 0 : WNOHANG)
        if r == 0 { return nil }
        if r < 0 {
            if errno == EINTR { return nil }
            throw LaunchError("waitpid(\(pid)) failed: \(String(cString: strerror(errno)))")
        }
        let low = status & 0x7f
        if low == 0 { return Termination(code: (status >> 8) & 0xff, signalled: false) }
        if low == 0x7f { return nil }  // stopped, not ended
        return Termination(code: low, signalled: true)
    }
}
