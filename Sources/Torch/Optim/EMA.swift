import CTorch

/// An exponential moving average of a module's parameters, as facebookresearch/DiT's `update_ema`:
/// ema ← decay·ema + (1 − decay)·param for every parameter, computed by the same two in-place operations
/// (`ema.mul_(decay).add_(param, alpha: 1 − decay)`).
///
/// The average is kept as detached tensors named like the module's parameters, so `stateDict()` loads into a copy
/// of the model (`model.loadStateDict(ema.stateDict(), strict: false)` when the model has buffers too), and
/// `copy(to:)` writes the averages into a module for sampling.
public final class EMA {
    /// The parameter names, in the module's `namedParameters()` order.
    public let names: [String]
    /// The averages, one per name, on the parameters' device and dtype.
    public let tensors: [Tensor]
    public var decay: Double

    /// Starts the average at a copy of `module`'s parameters (DiT's `update_ema(ema, model, decay=0)`).
    public init(_ module: any Module, decay: Double = 0.9999) throws {
        guard (0...1).contains(decay) else { throw TorchError("EMA: decay must be in [0, 1], got \(decay)") }
        let named = module.namedParameters()
        names = named.map { $0.0 }
        tensors = try withNoGrad { try named.map { try $0.1.detach().clone() } }
        self.decay = decay
    }

    /// ema ← d·ema + (1 − d)·param, with d = `decay` unless given (0 copies the parameters).
    public func update(from module: any Module, decay: Double? = nil) throws {
        let d = decay ?? self.decay
        let params = try matching(module)
        let status = withHandles(tensors) { e in
            withHandles(params) { p in ct_ema_update_(mutating(e), mutating(p), Int64(params.count), d) }
        }
        try checkStatus(status)
    }

    /// Copies the averages into `module`'s parameters (no autograd), e.g. to sample from the EMA weights.
    public func copy(to module: any Module) throws {
        let params = try matching(module)
        try withNoGrad { for (p, e) in zip(params, tensors) { try p.copy_(e) } }
    }

    /// The averages by parameter name (the live tensors).
    public func stateDict() -> [String: Tensor] { Dictionary(uniqueKeysWithValues: zip(names, tensors)) }

    /// Restores the averages from `dict` (e.g. a checkpoint's "ema" entries); every name must be present with
    /// the right shape, extra keys are errors too.
    public func loadStateDict(_ dict: [String: Tensor]) throws {
        var problems: [String] = []
        for (name, t) in zip(names, tensors) {
            guard let s = dict[name] else {
                problems.append("missing key '\(name)' (shape \(t.shape))")
                continue
            }
            if s.shape != t.shape { problems.append("shape mismatch for '\(name)': EMA has \(t.shape), the state dict has \(s.shape)") }
        }
        let known = Set(names)
        problems += dict.keys.filter { !known.contains($0) }.sorted().map { "unexpected key '\($0)'" }
        guard problems.isEmpty else {
            throw TorchError("EMA.loadStateDict: the state dict does not match:\n"
                                 + problems.map { "  " + $0 }.joined(separator: "\n"))
        }
        try withNoGrad { for (name, t) in zip(names, tensors) { try t.copy_(dict[name]!) } }
    }

    /// The module's parameters in `names` order, or an error naming the first difference.
    private func matching(_ module: any Module) throws -> [Tensor] {
        let named = module.namedParameters()
        guard named.map({ $0.0 }) == names else {
            let theirs = named.map { $0.0 }
            let diff = zip(names, theirs).first { $0 != $1 }.map { "'\($0)' vs '\($1)'" } ?? "\(names.count) vs \(theirs.count) parameters"
            throw TorchError("EMA: the module's parameters differ from the averaged ones (\(diff))")
        }
        return named.map { $0.1 }
    }
}
