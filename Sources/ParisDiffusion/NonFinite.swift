import Torch

/// A NaN or ±∞ met while sampling, with what produced it and, as far as the sampler can tell, why.
///
/// The samplers check every model output at every step (`NonFinite.checkVelocity`, the mixture's router check) and
/// throw this instead of letting the value reach the images (black PNGs) or the trace (whose JSON cannot hold NaN).
/// `ODESolver.integrate` fills in the step. The message reads, e.g.:
///
///     expert 2 (expert_2) produced a non-finite velocity at t=0.96 (step 3 of 50) with cfg 30: its unguided
///     velocities (with the prompt and with the null prompt) are finite, so it is the guidance setting: …
public struct NonFiniteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What produced the value.
    public enum Source: Sendable, Equatable {
        /// A model's guided velocity; `model` names it for the message ("expert 2 (expert_2)", "the model").
        case velocity(model: String)
        /// The router's probabilities p(k | x_t, t).
        case router
    }

    /// Why, as far as the check can tell.
    public enum Cause: Sendable, Equatable {
        /// The unguided velocities (conditional and null-conditional) are finite and the guided one is not: the
        /// guidance scale s makes v_u + s·(v_c − v_u) overflow.
        case guidance
        /// The model's own output is non-finite on a finite input of the noise's scale: its weights (a corrupt or
        /// diverged checkpoint) or its computation.
        case weights
        /// The input x_t is itself non-finite or far beyond the scale of noise and data (max |x_t| given): earlier
        /// steps diverged, most often from too strong a guidance.
        case divergedInput(maxAbs: Double)
    }

    public var source: Source
    public var cause: Cause
    /// Flow time t of the evaluation.
    public var t: Double
    /// The 1-based sampler step and the number of steps, when known (`ODESolver.integrate` sets them).
    public var step: Int?
    public var steps: Int?
    /// The CFG scale of the evaluation.
    public var guidanceScale: Double

    public init(source: Source, cause: Cause, t: Double, guidanceScale: Double, step: Int? = nil, steps: Int? = nil) {
        self.source = source
        self.cause = cause
        self.t = t
        self.guidanceScale = guidanceScale
        self.step = step
        self.steps = steps
    }

    public var description: String {
        let whom: String, what: String, owner: String
        switch source {
        case .velocity(let model): (whom, what, owner) = (model, "a non-finite velocity", "its checkpoint")
        case .router: (whom, what, owner) = ("the router", "non-finite probabilities", "its checkpoint (router/)")
        }
        var at = "at t=\(Self.format(t))"
        if let step { at += " (step \(step)" + (steps.map { " of \($0)" } ?? "") + ")" }
        let guided = Guidance.isGuided(scale: guidanceScale)
        let cfg = guided ? "cfg \(Self.format(guidanceScale))" : "cfg 1 (no guidance)"
        let why: String
        switch cause {
        case .guidance:
            why = "its unguided velocities (with the prompt and with the null prompt) are finite, so it is the "
                + "guidance setting: v_u + s·(v_c − v_u) with s = \(Self.format(guidanceScale)) overflows; use a "
                + "smaller --cfg (guidance_scale; DiT samples with 4, Stable Diffusion with 7.5)"
        case .weights:
            why = "its own (unguided) output is already non-finite on a finite input, so it is the weights, not the "
                + "guidance: \(owner) is corrupt or was trained into NaN; retrain or replace it"
                + (source == .router ? "" : ", or sample without it (a missing expert's weight is renormalised away)")
        case .divergedInput(let m):
            let state = !m.isFinite ? "non-finite"
                : "at max |x_t| = \(Self.format(m)), far beyond the scale of noise and data (a few units)"
            why = "its input x_t is already \(state): the sampling diverged in earlier steps, "
                + (guided ? "most likely from the guidance (\(cfg)); use a smaller --cfg"
                    : "without guidance, so the models' velocities grow without bound; check their checkpoints")
        }
        return "\(whom) produced \(what) \(at) with \(cfg): \(why)"
    }

    /// 0.93, 1e+30: a short number for messages.
    static func format(_ x: Double) -> String {
        if x.isNaN || x.isInfinite { return "\(x)" }
        if x != 0 && (abs(x) >= 1e6 || abs(x) < 1e-3) {
            var s = "\(x)"  // "1e+30" style: Swift prints 1e+30
            if s.hasSuffix(".0") { s.removeLast(2) }
            return s
        }
        let rounded = (x * 1e4).rounded() / 1e4
        return rounded == rounded.rounded() ? "\(Int(rounded))" : "\(rounded)"
    }
}

/// The samplers' non-finite checks: one reduction per checked tensor on its device and one scalar back to the host;
/// the diagnosis (unguided passes, the input's scale) runs only once a value is already non-finite.
public enum NonFinite {
    /// An input beyond this max |x_t| has diverged: noise is N(0, 1) and data lies in [−1, 1], so a sane state stays
    /// within a few units; 1000 leaves room for strong guidance and latents.
    public static let divergedInputBound = 1000.0

    /// Whether every element of `x` is finite: `isfinite(x).all()`, one reduction, one scalar copied to the host.
    public static func isFinite(_ x: Tensor) throws -> Bool { try x.isFinite().all().item() != 0 }

    /// Returns `cause` unless the input x has diverged (non-finite, or max |x| beyond `divergedInputBound`).
    static func inputCause(_ x: Tensor,
                           otherwise cause: () throws -> NonFiniteError.Cause) throws -> NonFiniteError.Cause {
        let m = try x.abs().amax().to(dtype: .float64).item()  // NaN or ∞ when x holds one
        if !m.isFinite || m > divergedInputBound { return .divergedInput(maxAbs: m) }
        return try cause()
    }

    /// Throws `NonFiniteError` when the guided velocity `v` (made from x [B, ...] at flow time t with CFG scale s)
    /// holds a NaN or ∞. `unguided` gives the unguided velocities behind `v` (conditional and null-conditional; empty
    /// when `v` is itself unguided) and is called only then, to tell the guidance from the model's weights.
    public static func checkVelocity(_ v: Tensor, input x: Tensor, t: Double, guidance s: Double, model: String,
                                     unguided: () throws -> [Tensor]) throws {
        if try isFinite(v) { return }
        let cause = try inputCause(x) {
            let parts = try unguided()
            return try !parts.isEmpty && parts.allSatisfy { try isFinite($0) } ? .guidance : .weights
        }
        throw NonFiniteError(source: .velocity(model: model), cause: cause, t: t, guidanceScale: s)
    }

    /// Throws `NonFiniteError` (the router) when `probabilities` (already on the host) holds a NaN or ∞; x: the
    /// router's input [B, C, H, W].
    public static func checkRouter(_ probabilities: [Double], input x: Tensor, t: Double, guidance s: Double) throws {
        if probabilities.allSatisfy(\.isFinite) { return }
        let cause = try inputCause(x) { .weights }
        throw NonFiniteError(source: .router, cause: cause, t: t, guidanceScale: s)
    }
}
