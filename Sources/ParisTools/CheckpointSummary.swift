import Foundation
import Torch

/// What a checkpoint file holds — each tensor's name, dtype and shape, the parameter count, and the metadata — for
/// `paris inspect`. Reads safetensors (header only: no tensor is made, and dtypes Paris cannot load are still
/// listed) and torch.save files (`.pt`, `.pth`, `.bin`; loaded through `PyTorchCheckpoint`, so without running code).
public struct CheckpointSummary: Encodable, Sendable {
    public enum Format: String, Codable, Sendable {
        case safetensors
        case torchSave = "torch.save"
    }

    public struct Entry: Codable, Sendable, Equatable {
        public let name: String
        /// PyTorch's name (`float32`, `bfloat16`), or the file's own name for dtypes Paris does not support.
        public let dtype: String
        public let shape: [Int]
        public let count: Int

        public init(name: String, dtype: String, shape: [Int], count: Int) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.count = count
        }
    }

    public let path: String
    public let format: Format
    public let fileSize: Int
    /// Tensors in the file's order.
    public let tensors: [Entry]
    /// safetensors `__metadata__` (empty for torch.save files).
    public let metadata: [String: String]
    /// torch.save values that are not tensors ("name: description").
    public let skipped: [String]
    /// torch.save globals that are not known-safe reconstructors (`PyTorchCheckpoint.unsafeGlobals`): a file with
    /// any is reported with a WARNING, and `paris inspect` exits non-zero.
    public let unsafeGlobals: [String]
    /// Whether the file names no unsafe global.
    public var isSafe: Bool { unsafeGlobals.isEmpty }
    /// The warning `render()` prints first and last for a file with unsafe globals, nil otherwise.
    public var warning: String? {
        isSafe ? nil : "WARNING: \(path): \(PyTorchCheckpoint.unsafeMessage(unsafeGlobals))"
    }

    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.count } }

    /// Reads `url`, telling the format from its first bytes (a zip archive or a pickle is torch.save; an 8-byte
    /// length followed by `{` is safetensors).
    public static func read(_ url: URL) throws -> CheckpointSummary {
        let path = url.path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TorchError("\(path): no such file")
        }
        if isDir.boolValue { throw TorchError("\(path): is a folder, not a checkpoint file") }
        let head: [UInt8]
        do {
            let h = try FileHandle(forReadingFrom: url)
            defer { try? h.close() }
            head = [UInt8](try h.read(upToCount: 9) ?? Data())
        } catch {
            throw TorchError("\(path): cannot read: \(error.localizedDescription)")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let isZip = head.starts(with: [0x50, 0x4B, 0x03, 0x04])
        let isPickle = head.count >= 2 && head[0] == 0x80 && (2...5).contains(head[1])
        if isZip || isPickle {
            let ckpt = try PyTorchCheckpoint.open(url, allowingUnsafeGlobals: true)
            return CheckpointSummary(
                path: path, format: .torchSave, fileSize: size,
                tensors: ckpt.tensors.map { Entry(name: $0.name, dtype: $0.tensor.dtype.description, shape: $0.tensor.shape,
                                                  count: $0.tensor.count) },
                metadata: [:], skipped: ckpt.skipped, unsafeGlobals: ckpt.unsafeGlobals)
        }
        let looksSafetensors = head.count == 9 && head[8] == UInt8(ascii: "{")
        if looksSafetensors || url.pathExtension.lowercased() == "safetensors" {
            let header = try SafeTensors.header(url)
            return CheckpointSummary(
                path: path, format: .safetensors, fileSize: size,
                tensors: header.entries.map { Entry(name: $0.name, dtype: $0.dtype?.description ?? $0.dtypeName, shape: $0.shape,
                                                    count: $0.count) },
                metadata: header.metadata, skipped: [], unsafeGlobals: [])
        }
        throw TorchError("\(path): not a checkpoint Paris can read (expected safetensors, or a torch.save .pt/.pth file)")
    }

    /// A readable report: a header line, the metadata, one line per tensor, the skipped values and a total.
    public func render() -> String {
        var lines: [String] = []
        if let warning { lines.append(warning) }
        lines.append("\(path)")
        lines.append("  format: \(format.rawValue), \(Self.bytes(fileSize)), \(tensors.count) tensors, "
            + "\(Self.grouped(parameterCount)) parameters")
        if !metadata.isEmpty {
            lines.append("metadata:")
            for k in metadata.keys.sorted() {
                lines.append("  \(k): \(Self.oneLine(metadata[k]!))")
            }
        }
        if !tensors.isEmpty {
            lines.append("tensors:")
            let nameWidth = min(max(tensors.map(\.name.count).max() ?? 0, 4), 72)
            let dtypeWidth = max(tensors.map(\.dtype.count).max() ?? 0, 5)
            let shapes = tensors.map { "[" + $0.shape.map(String.init).joined(separator: ", ") + "]" }
            let shapeWidth = max(shapes.map(\.count).max() ?? 0, 5)
            let counts = tensors.map { Self.grouped($0.count) }
            let countWidth = counts.map(\.count).max() ?? 0
            lines.append("  " + Self.pad("name", nameWidth) + "  " + Self.pad("dtype", dtypeWidth) + "  "
                + Self.pad("shape", shapeWidth) + "  " + String(repeating: " ", count: max(countWidth - 6, 0)) + "params")
            for (i, t) in tensors.enumerated() {
                lines.append("  " + Self.pad(t.name, nameWidth) + "  " + Self.pad(t.dtype, dtypeWidth) + "  "
                    + Self.pad(shapes[i], shapeWidth) + "  " + String(repeating: " ", count: max(6 - counts[i].count, countWidth - counts[i].count, 0)) + counts[i])
            }
        }
        if !skipped.isEmpty {
            lines.append("not tensors (skipped):")
            lines.append(contentsOf: skipped.map { "  " + Self.oneLine($0) })
        }
        lines.append("total: \(Self.grouped(parameterCount)) parameters in \(tensors.count) tensors")
        if let warning { lines.append(warning) }
        return lines.joined(separator: "\n")
    }

    /// The summary as pretty-printed JSON (snake_case keys).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    private enum CodingKeys: String, CodingKey {
        case path, format, fileSize, tensors, metadata, skipped, unsafeGlobals, parameterCount
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encode(format, forKey: .format)
        try c.encode(fileSize, forKey: .fileSize)
        try c.encode(tensors, forKey: .tensors)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(unsafeGlobals, forKey: .unsafeGlobals)
        try c.encode(parameterCount, forKey: .parameterCount)
    }

    public static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0, i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(n) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var v = Double(n) / 1024, u = 0
        while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
        return String(format: "%.1f %@", v, units[u])
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    static func oneLine(_ s: String) -> String {
        let flat = s.replacingOccurrences(of: "\n", with: "\\n")
        return flat.count > 200 ? String(flat.prefix(197)) + "..." : flat
    }
}
