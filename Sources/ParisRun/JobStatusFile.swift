import Foundation
import Torch

/// The life-cycle state of one training job (an expert, the router or the monolith).
public enum JobState: String, Codable, Sendable, CaseIterable {
    /// No file of the job exists yet.
    case notStarted = "not_started"
    /// A trainer process holds the job's lock.
    case running
    /// The job has files but no process holds its lock: stopped by a signal or `--stop-after` after a
    /// checkpoint, or killed.
    case stopped
    /// The final weights are written, and the trainer said so.
    case finished
    /// The trainer reported an error.
    case failed
}

/// `status.json` in a job's folder: what a trainer says about itself, rewritten atomically by every trainer at
/// start, at every log line, at a stop, on an error and at the end (after the final weights). `RunProgress` reads
/// it with the job's lock (`FileLock.isHeld`): a `running` file whose lock nobody holds means the process died
/// without saying so (kill -9, a lost node).
public struct JobStatusFile: Codable, Sendable, Equatable {
    public static let fileName = "status.json"

    public var state: JobState
    public var step: Int
    public var totalSteps: Int
    /// Unix time of this write.
    public var updatedAt: Double
    public var pid: Int32?
    public var host: String?
    /// The error, when `state` is `failed`.
    public var error: String?

    public init(state: JobState, step: Int, totalSteps: Int, updatedAt: Double = Date().timeIntervalSince1970,
                pid: Int32? = ProcessInfo.processInfo.processIdentifier, host: String? = ProcessInfo.processInfo.hostName,
                error: String? = nil) {
        self.state = state
        self.step = step
        self.totalSteps = totalSteps
        self.updatedAt = updatedAt
        self.pid = pid
        self.host = host
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case state, step, totalSteps = "total_steps", updatedAt = "updated_at", pid, host, error
    }

    /// Writes `folder/status.json` atomically.
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10], to: folder.appendingPathComponent(Self.fileName))
    }

    /// Reads `folder/status.json`, or nil when there is none (a malformed file is an error naming it).
    public static func read(from folder: URL) throws -> JobStatusFile? {
        let url = folder.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        do { return try JSONDecoder().decode(JobStatusFile.self, from: data) } catch {
            throw RunError("\(url.path): malformed status file (\(error))")
        }
    }
}

/// Reads a `metrics.jsonl` file into dictionaries (malformed lines, e.g. a half-written last line, are skipped).
public enum MetricsFile {
    public static let fileName = "metrics.jsonl"

    public static func read(_ url: URL) -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        return data.split(separator: 10).compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any]
        }
    }

    /// The (step, value) pairs of `key` in order, from the lines that have both as numbers.
    public static func series(_ records: [[String: Any]], _ key: String) -> [(x: Double, y: Double)] {
        records.compactMap { r in
            guard let s = number(r["step"]), let v = number(r[key]) else { return nil }
            return (s, v)
        }
    }

    public static func number(_ v: Any?) -> Double? {
        if let n = v as? NSNumber { return n.doubleValue }
        return nil
    }
}
