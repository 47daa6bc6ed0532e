import Foundation

/// Follows a growing log file and hands back each complete line once, as `tail -f` would: what lets
/// `paris launch --backend local` show every expert's progress lines (step, loss, images/s) while they train,
/// not only "started" and "COMPLETED". A partial last line waits for its newline; a file that does not exist
/// yet, or that shrank (rewritten), is read from the start.
public struct LogFollower {
    public let url: URL
    private var offset: UInt64 = 0
    private var pending = Data()

    public init(_ url: URL) { self.url = url }

    /// The complete lines appended since the last call (without their newlines).
    public mutating func newLines() -> [String] {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return [] }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        if size < offset { offset = 0; pending.removeAll() }
        guard size > offset else { return [] }
        try? handle.seek(toOffset: offset)
        let chunk = (try? handle.read(upToCount: Int(size - offset))) ?? Data()
        offset += UInt64(chunk.count)
        pending.append(chunk)
        guard let last = pending.lastIndex(of: UInt8(ascii: "\n")) else { return [] }
        let complete = pending[pending.startIndex..<last]
        pending = Data(pending[pending.index(after: last)...])
        return String(decoding: complete, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
            .map { String($0).replacingOccurrences(of: "\r", with: "") }
    }
}
