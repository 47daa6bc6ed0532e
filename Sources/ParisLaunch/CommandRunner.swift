import Foundation

/// The result of one finished command.
public struct CommandResult: Sendable, Equatable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs scheduler commands (`sbatch`, `scontrol`, `scancel`). Tests substitute a fake to check the exact
/// commands without a cluster.
public protocol CommandRunning: Sendable {
    /// Runs `argv` (argv[0] looked up in PATH) to completion and returns its exit status and output.
    func run(_ argv: [String]) throws -> CommandResult
}

/// Runs commands as child processes with a given environment (the CLI passes its own; tests add `SLURM_CONF`).
/// Output goes through temporary files, so a command that leaves daemons behind (which keep its output open)
/// cannot block the caller.
public struct ProcessRunner: CommandRunning {
    public var environment: [String: String]

    public init(environment: [String: String]) { self.environment = environment }

    public func run(_ argv: [String]) throws -> CommandResult {
        guard let first = argv.first else { throw LaunchError("no command to run") }
        let executable = try Executable.find(first, environment: environment)
        let dir = FileManager.default.temporaryDirectory
        let tag = "paris-cmd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let out = dir.appendingPathComponent("\(tag).out").path, err = dir.appendingPathComponent("\(tag).err").path
        defer {
            unlink(out)
            unlink(err)
        }
        let pid = try Spawn.start(executable, arguments: Array(argv.dropFirst()), environment: environment,
                                  stdout: out, stderr: err)
        let end = try Spawn.wait(pid)
        func text(_ path: String) -> String {
            FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return CommandResult(status: end.signalled ? 128 + end.code : end.code, stdout: text(out), stderr: text(err))
    }
}

/// Finds programs the way a shell does.
public enum Executable {
    /// `name` itself when it holds a slash, else the first executable `PATH` entry called `name`.
    public static func find(_ name: String, environment: [String: String]) throws -> URL {
        if name.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: name) else {
                throw LaunchError("\(name): not found or not executable")
            }
            return URL(fileURLWithPath: name)
        }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        throw LaunchError("\(name): command not found in PATH (\(path)); is Slurm installed on this machine?")
    }
}
