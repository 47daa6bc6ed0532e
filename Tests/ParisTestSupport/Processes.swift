import Foundation
import XCTest

/// The built `paris` executable beside the test bundle of `test` (skips the test when it is not built).
public func parisBinary(_ test: XCTestCase) throws -> URL {
    var candidates: [URL] = []
    if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent()) }
    candidates.append(Bundle(for: type(of: test)).bundleURL.deletingLastPathComponent())
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    for dir in candidates {
        let url = dir.appendingPathComponent("paris")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw XCTSkip("the paris executable is not built next to the tests (\(candidates.map(\.path)))")
}

/// Runs `executable` with `arguments` to the end; its exit status and its stdout and stderr together. A process
/// killed by a signal (a crash) fails the test.
public func runProcess(_ executable: URL, _ arguments: [String], file: StaticString = #filePath,
                       line: UInt = #line) throws -> (status: Int32, output: String) {
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("paris-process-\(UUID().uuidString).txt")
    defer { try? FileManager.default.removeItem(at: log) }
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    p.standardOutput = handle
    p.standardError = handle
    try p.run()
    p.waitUntilExit()
    try handle.close()
    XCTAssertEqual(p.terminationReason, .exit, "\(executable.lastPathComponent) \(arguments) was killed by a signal",
                   file: file, line: line)
    return (p.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
}

/// `runProcess` with every file the process writes limited to `kib` KiB (bash's `ulimit -f`, SIGXFSZ ignored): the
/// kernel fails the write that would pass the limit with EFBIG ("File too large"), as it fails one on a full disk
/// with ENOSPC, so a test can fill the "disk" without privileges. The process's output goes to a file, which the
/// limit binds too: keep the limit above its log's size.
public func runProcess(_ executable: URL, _ arguments: [String], fileSizeLimitKiB kib: Int,
                       file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, output: String) {
    let quoted = ([executable.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: #"'\''"#) + "'" }
    return try runProcess(URL(fileURLWithPath: "/bin/bash"),
                          ["-c", "trap '' XFSZ; ulimit -f \(kib); exec \(quoted.joined(separator: " "))"],
                          file: file, line: line)
}

/// Starts `executable` with `arguments`, its output going to `log`, and waits (up to `timeout` seconds) until the
/// log names a loopback URL (`http://127.0.0.1:PORT`, what `paris serve …` prints once it listens). Returns the
/// process, which the caller kills, and the URL; fails with the log when the process says none.
public func startServer(_ executable: URL, _ arguments: [String], log: URL,
                        timeout: TimeInterval = 120) async throws -> (process: Process, url: String) {
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline && process.isRunning {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        if let range = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
            return (process, String(text[range]))
        }
        try await Task.sleep(nanoseconds: 50_000_000)
    }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    struct NoURL: Error, CustomStringConvertible { let description: String }
    throw NoURL(description: "\(executable.lastPathComponent) \(arguments.first ?? "") did not say where it listens: \(text)")
}
