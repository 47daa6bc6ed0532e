import Foundation
import ParisRun

/// The settings of one training session that are not part of run.json: what the command line decides.
public struct TrainOptions {
    /// Discard the job's checkpoints, published weights, metrics and samples, and start from step 0.
    public var restart: Bool
    /// Polled after every step; true ends the session with a checkpoint (`TrainResult.Outcome.stopped`). The
    /// command line connects it to `StopSignals`.
    public var shouldStop: () -> Bool
    /// End the session (with a checkpoint) after this many steps, e.g. to fit a scheduler's time slot.
    public var stopAfterSteps: Int?
    /// Where progress and messages go.
    public var output: TrainOutput
    /// Batches the loader prepares ahead on its own thread (0: none).
    public var prefetch: Int

    public init(restart: Bool = false, shouldStop: @escaping () -> Bool = { false }, stopAfterSteps: Int? = nil,
                output: TrainOutput = .silent, prefetch: Int = 2) {
        self.restart = restart
        self.shouldStop = shouldStop
        self.stopAfterSteps = stopAfterSteps
        self.output = output
        self.prefetch = prefetch
    }
}

/// How a training session ended.
public struct TrainResult: Sendable, Equatable {
    public enum Outcome: String, Sendable, Equatable {
        /// All steps done; the published weights are the final ones.
        case finished
        /// Stopped early (signal, `shouldStop`, `stopAfterSteps`) after writing a checkpoint; the same command
        /// resumes.
        case stopped
        /// The job had already finished before this session; nothing was done.
        case alreadyFinished = "already_finished"
    }

    public let outcome: Outcome
    /// Steps completed.
    public let step: Int
    /// The job's total steps.
    public let steps: Int
    /// The job's folder (`expert_<k>/`, `monolith/`).
    public let folder: URL
    /// The checkpoint step this session resumed from, or nil when it started afresh.
    public let resumedFrom: Int?
    /// The mean loss over the session's last logging interval.
    public let lastLoss: Double?
}
