import Foundation

/// What every harness needs: the fuzzer's bytes as a file, because the parsers' public entry points read files
/// (that is the path a user's input takes).
///
/// Each process reuses one scratch file (libFuzzer runs the inputs of one process one after another), in a folder
/// under the system temporary directory that is removed when the process exits normally.
public enum FuzzInput {
    /// The process's scratch folder.
    public static let folder: URL = {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("paris-fuzz-\(ProcessInfo.processInfo.processIdentifier)", isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: FuzzInput.folder) }
        return url
    }()

    /// The input's bytes as a Swift array.
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Writes `bytes` to `name` in the scratch folder (replacing the last input) and returns its URL.
    public static func file(_ bytes: [UInt8], named name: String) -> URL {
        let url = folder.appendingPathComponent(name)
        // A failed write would fuzz the previous input again; stop instead, the harness is broken.
        guard FileManager.default.createFile(atPath: url.path, contents: Data(bytes)) else {
            fatalError("fuzz harness: cannot write \(url.path)")
        }
        return url
    }
}
