import Foundation

/// Every regular file under `root` (links followed only at the top), by path relative to `root`, with its bytes:
/// what "left exactly as it was" is checked against.
public func fileTree(_ root: URL) -> [String: Data] {
    let base = root.resolvingSymlinksInPath()
    var out: [String: Data] = [:]
    guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey]) else {
        return out
    }
    let prefix = base.path.hasSuffix("/") ? base.path : base.path + "/"
    for case let url as URL in walker {
        guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true,
              let data = FileManager.default.contents(atPath: url.path) else { continue }
        let path = url.resolvingSymlinksInPath().path
        out[path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path] = data
    }
    return out
}
