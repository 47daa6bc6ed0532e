import Foundation
import ParisData
import ParisDiffusion
import ParisRun
import Torch

/// What one trainer supplies to `TrainingSession`: its settings, its model state as tensors, its optimizer step,
/// and what it publishes. Everything around the step (lock, `--restart`, seeding, resume, the loop, metrics,
/// status, checkpoints, stopping) is the session's, the same for every trainer.
///
/// The experts and the monolith plug in as `DiffusionTrainer`, the router as `RouterTrainer`. A conforming type
/// builds its model in `makeState()` (not in `init`), so that the session seeds libtorch's generator first.
protocol TrainingJob: AnyObject {
    /// "expert 3", "router", "monolith": the prefix of every message.
    var name: String { get }
    /// The job's folder (`expert_<k>/`, `monolith/`, `router/`): the only place the session and the job write.
    var folder: URL { get }
    /// The job's run.json entry: the session reads `steps`, `seed`, `learning_rate`, `warmup_steps`, `precision`,
    /// `log_every` and `checkpoint_every`.
    var settings: TrainJobConfig { get }
    var device: Device { get }
    /// The model, the data and the device, for the line that starts a fresh training
    /// (`paris-T/4 (1234 parameters), 24 images`).
    var summary: String { get }
    /// What `publish` and `finish` write in `folder`, removed by `--restart` with `state/`, `metrics.jsonl` and
    /// `status.json`.
    var outputs: [String] { get }

    /// The hash of the settings that shape the trajectory (`TrainingState.configHash`); a checkpoint made with
    /// another hash is refused.
    func configHash() throws -> String
    /// The shards the job trains on (its own for an expert, all of them for the monolith and the router),
    /// recorded in every checkpoint and published `config.json`; a checkpoint made on other shards is refused.
    var shards: ShardIdentity { get }
    /// Builds the model, the optimizer (and the EMA) and whatever the steps need. The session has just seeded
    /// libtorch's generator with the job's seed, so a fresh and a resumed session build the same thing.
    func makeState() throws
    /// The tensors a checkpoint holds, one state dict per key (`model`, `ema`, `optimizer`): the file names in
    /// `state/step_<N>/`.
    func stateTensors() throws -> [String: [String: Tensor]]
    /// Restores what `stateTensors` returned (the session has checked that every key is there).
    func load(_ tensors: [String: [String: Tensor]]) throws
    /// One optimizer step at learning rate `lr` on the batch at `cursor`; `step` steps are done before it.
    func step(_ step: Int, at cursor: LoaderCursor, lr: Double) throws -> StepMetrics
    /// After step `step` is counted and logged, before its checkpoint: periodic extras (sample grids).
    func afterStep(_ step: Int, log: (String) -> Void) throws
    /// Writes the published weights of step `step`; called after every checkpoint.
    func publish(step: Int) throws
    /// Whether what the end of training writes (`publish` and `finish`) is there for step `step`.
    func hasFinished(step: Int) -> Bool
    /// After the last step's checkpoint and publish: what only the end writes (the expert's last sample grid,
    /// the router's held-out evaluation). Returns what the "finished" message adds (the files written).
    func finish(step: Int, log: (String) -> Void) throws -> String
    /// Ends the session's background work (a loader's prefetch thread).
    func close()
}

extension TrainingJob {
    func afterStep(_ step: Int, log: (String) -> Void) throws {}
    func close() {}
}

/// What one optimizer step reports to the session: the numbers behind `metrics.jsonl` and the progress line,
/// and where the data stands.
struct StepMetrics {
    /// The batch's mean loss (a non-finite one ends the session with an error).
    var loss: Double
    /// The gradient norm before clipping.
    var gradNorm: Double
    /// Images in the batch.
    var images: Int
    /// The data position after this batch (saved in checkpoints; the next step's `cursor`).
    var cursor: LoaderCursor
    /// The batch's loss by time bucket (the diffusion models).
    var lossByT: TimeBucketedLoss? = nil
    /// The batch's images classified into their own cluster (the router).
    var correct: Int? = nil
}

/// One descent step, the same for every trainer: drops the old gradients, backpropagates `loss`, clips the
/// gradient norm to `gradClip` (0: no clipping, the norm is still measured) and updates at learning rate `lr`.
/// Returns the norm before clipping.
func descend(_ loss: Tensor, optimizer: AdamW, lr: Double, gradClip: Double) throws -> Double {
    optimizer.lr = lr
    try optimizer.zeroGrad()
    try loss.backward()
    let norm = try clipGradNorm(optimizer.parameters, maxNorm: gradClip > 0 ? gradClip : .infinity)
    try optimizer.step()
    return norm
}
