import Foundation
import ParisRun

/// Where a training job's human-readable output goes.
public struct TrainOutput {
    /// Writes raw text (no newline is added).
    public var write: (String) -> Void
    /// Whether the output is a terminal: one updating status line (`\r`) plus log lines, instead of plain lines.
    public var interactive: Bool
    /// Also appends every log line to this file (`<job>/log.txt`), when set.
    public var logFile: URL?

    public init(interactive: Bool = false, logFile: URL? = nil, write: @escaping (String) -> Void) {
        self.interactive = interactive
        self.logFile = logFile
        self.write = write
    }

    /// Discards everything (tests).
    public static var silent: TrainOutput { TrainOutput { _ in } }
}

/// The progress a person watches: on a terminal, a single line redrawn at most 4 times a second
/// (`step 120/400  loss 0.4321  lr 1.0e-03  85.3 img/s  ETA 3m12s`, with `acc 93.1%` after the loss for the
/// router); otherwise plain lines every `log_every` steps. Messages go
/// above the status line.
public final class ProgressReporter {
    public let job: String
    public let totalSteps: Int
    private var output: TrainOutput
    private var lastDraw = Date.distantPast
    private var statusShown = false
    private var logHandle: FileHandle?

    public init(job: String, totalSteps: Int, output: TrainOutput) {
        self.job = job
        self.totalSteps = totalSteps
        self.output = output
        if let url = output.logFile {
            if !FileManager.default.fileExists(atPath: url.path) {
                _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            }
            logHandle = FileHandle(forWritingAtPath: url.path)
            logHandle?.seekToEndOfFile()
        }
    }

    deinit { try? logHandle?.close() }

    /// A message on its own line (above the status line on a terminal), also written to the log file.
    public func log(_ message: String) {
        let line = "[\(job)] \(message)"
        if output.interactive && statusShown { output.write("\r\u{1B}[K") }
        output.write(line + "\n")
        statusShown = false
        let stamp = ISO8601DateFormatter().string(from: Date())
        if let h = logHandle { h.write(Data("\(stamp) \(line)\n".utf8)) }
    }

    /// The status after `step`: redraws the terminal line (throttled), or on a plain output writes a line when
    /// `isLogStep`.
    public func update(step: Int, loss: Double, accuracy: Double? = nil, imagesPerSecond: Double,
                       secondsPerStep: Double, isLogStep: Bool, lr: Double) {
        let text = Self.status(step: step, total: totalSteps, loss: loss, accuracy: accuracy,
                               imagesPerSecond: imagesPerSecond, secondsPerStep: secondsPerStep, lr: lr)
        if output.interactive {
            let now = Date()
            guard now.timeIntervalSince(lastDraw) >= 0.25 || step == totalSteps else { return }
            lastDraw = now
            output.write("\r\u{1B}[K[\(job)] " + text)
            statusShown = true
        } else if isLogStep {
            log(text)
        }
    }

    /// Ends the status line (before the process prints anything else).
    public func finish() {
        if output.interactive && statusShown { output.write("\n") }
        statusShown = false
    }

    /// `step 120/400  loss 0.4321  lr 1.0e-03  85.3 img/s  ETA 3m12s` (`acc 93.1%` after the loss when given).
    public static func status(step: Int, total: Int, loss: Double, accuracy: Double? = nil, imagesPerSecond: Double,
                              secondsPerStep: Double, lr: Double) -> String {
        let width = String(total).count
        let stepText = String(repeating: " ", count: max(0, width - String(step).count)) + "\(step)/\(total)"
        let eta = secondsPerStep > 0 ? duration(Double(total - step) * secondsPerStep) : "?"
        let acc = accuracy.map { String(format: "  acc %.1f%%", 100 * $0) } ?? ""
        return "step \(stepText)  loss \(String(format: "%.4f", loss))\(acc)  lr \(String(format: "%.1e", lr))  "
            + "\(String(format: "%.1f", imagesPerSecond)) img/s  ETA \(eta)"
    }

    /// 45s, 3m12s, 2h05m.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }
}
