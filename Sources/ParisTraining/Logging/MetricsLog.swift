import Foundation
import ParisRun
import Torch

/// One line of `metrics.jsonl`: the averages over the steps since the previous line. Every trainer writes this
/// record; a field a trainer does not measure is left out (`loss_by_t` for the router, `accuracy` for the
/// diffusion models).
public struct MetricsRecord: Codable, Sendable, Equatable {
    public var step: Int
    public var epoch: Int
    /// Mean training loss over the interval.
    public var loss: Double
    /// Diffusion models: the mean loss in each of 10 equal buckets of normalised time t ∈ [0, 1] (t = 1 noise);
    /// null where empty.
    public var lossByT: [Double?]?
    /// The router: the share of the interval's training images classified into their own cluster.
    public var accuracy: Double?
    /// The learning rate of the interval's last step.
    public var lr: Double
    /// Mean gradient norm before clipping.
    public var gradNorm: Double
    public var imagesPerSecond: Double
    /// Resident memory of the process (from /proc/self/statm), MiB.
    public var rssMB: Double?
    /// Memory in use on the job's CUDA device (all processes, from the CUDA driver), MiB.
    public var cudaUsedMB: Double?
    /// Training time so far, over every session, in seconds.
    public var elapsedSeconds: Double

    public init(step: Int, epoch: Int, loss: Double, lossByT: [Double?]? = nil, accuracy: Double? = nil, lr: Double,
                gradNorm: Double, imagesPerSecond: Double, rssMB: Double?, cudaUsedMB: Double?, elapsedSeconds: Double) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.lossByT = lossByT
        self.accuracy = accuracy
        self.lr = lr
        self.gradNorm = gradNorm
        self.imagesPerSecond = imagesPerSecond
        self.rssMB = rssMB
        self.cudaUsedMB = cudaUsedMB
        self.elapsedSeconds = elapsedSeconds
    }

    enum CodingKeys: String, CodingKey {
        case step, epoch, loss, lossByT = "loss_by_t", accuracy, lr, gradNorm = "grad_norm"
        case imagesPerSecond = "images_per_s", rssMB = "rss_mb", cudaUsedMB = "cuda_used_mb"
        case elapsedSeconds = "elapsed_s"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(step, forKey: .step)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(loss, forKey: .loss)
        if let lossByT { try c.encode(lossByT, forKey: .lossByT) }  // keeps the nulls: bucket i is always position i
        try c.encodeIfPresent(accuracy, forKey: .accuracy)
        try c.encode(lr, forKey: .lr)
        try c.encode(gradNorm, forKey: .gradNorm)
        try c.encode(imagesPerSecond, forKey: .imagesPerSecond)
        try c.encodeIfPresent(rssMB, forKey: .rssMB)
        try c.encodeIfPresent(cudaUsedMB, forKey: .cudaUsedMB)
        try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
    }
}

/// `metrics.jsonl`: one JSON object per line, appended as training goes. On resume, the lines past the checkpoint's
/// step (written after it, before the interruption) are dropped, so the file reads as one uninterrupted run.
public final class MetricsLog {
    public let url: URL
    private var handle: FileHandle?

    /// Opens (creating) the log; with `truncateAfter`, first rewrites it (atomically) without the lines whose step
    /// is larger, and without a last line cut short by a crash.
    public init(url: URL, truncateAfter step: Int?) throws {
        self.url = url
        let fm = FileManager.default
        try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let step, let data = fm.contents(atPath: url.path) {
            var kept: [UInt8] = []
            for line in data.split(separator: 10, omittingEmptySubsequences: true) {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let s = obj["step"] as? Int, s <= step else { continue }
                kept += line
                kept.append(10)
            }
            try AtomicFile.write(kept, to: url)
        } else if step == nil || !fm.fileExists(atPath: url.path) {
            try AtomicFile.write([], to: url)
        }
        guard let h = FileHandle(forWritingAtPath: url.path) else { throw RunError("\(url.path): cannot open for appending") }
        h.seekToEndOfFile()
        handle = h
    }

    deinit { try? handle?.close() }

    /// Appends one record as a line (a non-finite number, e.g. an overflowing gradient norm, as a string).
    public func append(_ record: MetricsRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity",
                                                                      negativeInfinity: "-Infinity", nan: "NaN")
        var line = try encoder.encode(record)
        line.append(10)
        try handle?.write(contentsOf: line)
    }

    /// Reads every record of a metrics file (lines that do not parse are skipped).
    public static func read(_ url: URL) throws -> [MetricsRecord] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw RunError("\(url.path): not found") }
        return data.split(separator: 10).compactMap { try? JSONDecoder().decode(MetricsRecord.self, from: Data($0)) }
    }
}

/// Memory readings for the metrics.
public enum MemoryUsage {
    /// The process's resident set in MiB, from /proc/self/statm (nil where that file does not exist).
    public static func residentMB() -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = s.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return nil }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    /// Memory in use on `device` (all processes) in MiB; nil on the CPU.
    public static func cudaUsedMB(_ device: Device) -> Double? {
        guard case .cuda(let n) = device, let info = Runtime.cudaMemoryInfo(n) else { return nil }
        return Double(info.total - info.free) / 1_048_576
    }
}
