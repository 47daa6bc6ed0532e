import Foundation

/// Installs Debian packages with apt-get: `apt-get install -y`, and on failure `apt-get update` and again.
/// As root apt-get is run directly, else through sudo. Used by importers whose data (or fonts) come from Debian.
public enum DebianPackages {
    /// Installs `packages`. `purpose` says what they provide, for the error message when apt-get is unavailable.
    public static func install(_ packages: [String], purpose: String, log: (String) -> Void = { _ in }) throws {
        let names = packages.joined(separator: " ")
        let aptGet = ["/usr/bin/apt-get", "/bin/apt-get"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let aptGet else {
            throw DatasetImportError("apt-get not found: install the Debian package(s) \(names) by hand (\(purpose))")
        }
        var prefix: [String] = []
        if getuid() != 0 {
            guard let sudo = ["/usr/bin/sudo", "/bin/sudo"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
            else {
                throw DatasetImportError("installing \(names) needs root: not running as root and sudo is absent; "
                    + "run `apt-get install -y \(names)` as root")
            }
            prefix = [sudo]
        }
        let install = prefix + [aptGet, "install", "-y"] + packages
        if try run(install, log: log) == 0 { return }
        let update = prefix + [aptGet, "update"]
        guard try run(update, log: log) == 0 else { throw DatasetImportError("`\(update.joined(separator: " "))` failed") }
        guard try run(install, log: log) == 0 else { throw DatasetImportError("`\(install.joined(separator: " "))` failed") }
    }

    /// Installs `package` unless `file` exists; afterwards `file` must exist.
    public static func ensure(_ file: URL, package: String, log: (String) -> Void = { _ in }) throws {
        if FileManager.default.fileExists(atPath: file.path) { return }
        log("\(file.path) is missing; installing \(package)")
        try install([package], purpose: "it provides \(file.path)", log: log)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw DatasetImportError("\(package) installed but \(file.path) is still missing")
        }
    }

    static func run(_ argv: [String], log: (String) -> Void) throws -> Int32 {
        log("running: \(argv.joined(separator: " "))")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.environment = ["DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
