import CTorch

/// Saving and restoring the optimizer for a bit-exact resume, with PyTorch's flattened state-dict names.
extension AdamW {
    private static let group = "param_groups.0."
    private static let stateKeys = ["exp_avg", "exp_avg_sq", "step"]

    /// The optimizer's state, as `optimizer.state_dict()` flattened with dots:
    /// - `state.<i>.exp_avg`, `state.<i>.exp_avg_sq`, `state.<i>.step` for each parameter i that has state (the
    ///   live tensors, not copies, as PyTorch; write them out before the next `step()`);
    /// - `param_groups.0.lr`, `param_groups.0.betas` [2], `param_groups.0.eps`, `param_groups.0.weight_decay`
    ///   (float64 scalars).
    public func stateDict() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (i, s) in state.enumerated() {
            guard let s else { continue }
            out["state.\(i).exp_avg"] = s.expAvg
            out["state.\(i).exp_avg_sq"] = s.expAvgSq
            out["state.\(i).step"] = s.step
        }
        out[Self.group + "lr"] = try Tensor(scalar: lr, dtype: .float64)
        out[Self.group + "betas"] = try Tensor([betas.0, betas.1])
        out[Self.group + "eps"] = try Tensor(scalar: eps, dtype: .float64)
        out[Self.group + "weight_decay"] = try Tensor(scalar: weightDecay, dtype: .float64)
        return out
    }

    /// Replaces the whole state (moments, steps and, when present, the hyperparameters) by `dict`'s, copied onto
    /// each parameter's device and dtype (`step` as float32). Parameters absent from `dict` start afresh. Everything
    /// is checked first: unknown keys, parameter indices out of range, incomplete or mis-shaped state all throw one
    /// error that lists every problem, and then nothing is changed.
    public func loadStateDict(_ dict: [String: Tensor]) throws {
        var problems: [String] = []
        var entries: [Int: [String: Tensor]] = [:]
        var hyper: [String: Tensor] = [:]
        for key in dict.keys.sorted() {
            let t = dict[key]!
            if key.hasPrefix(Self.group) {
                let name = String(key.dropFirst(Self.group.count))
                let expected: [Int]? = ["lr": [], "eps": [], "weight_decay": [], "betas": [2]][name]
                guard let expected else {
                    problems.append("unexpected key '\(key)'")
                    continue
                }
                guard t.shape == expected else {
                    problems.append("'\(key)' must have shape \(expected), got \(t.shape)")
                    continue
                }
                hyper[name] = t
                continue
            }
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "state", let i = Int(parts[1]), Self.stateKeys.contains(String(parts[2]))
            else {
                problems.append("unexpected key '\(key)'")
                continue
            }
            guard (0..<parameters.count).contains(i) else {
                problems.append("'\(key)' is for parameter \(i), but the optimizer has \(parameters.count) parameters")
                continue
            }
            let name = String(parts[2])
            let want = name == "step" ? [] : parameters[i].shape
            if name == "step" ? t.count != 1 : t.shape != want {
                problems.append("'\(key)' has shape \(t.shape), but parameter \(i) needs \(name == "step" ? "a scalar" : "\(want)")")
                continue
            }
            entries[i, default: [:]][name] = t
        }
        for (i, e) in entries.sorted(by: { $0.key < $1.key }) {
            for name in Self.stateKeys where e[name] == nil {
                problems.append("parameter \(i)'s state lacks 'state.\(i).\(name)'")
            }
        }
        var newBetas = betas
        if let b = hyper["betas"] {
            let values = try b.to(dtype: .float64).toArray(as: Double.self)
            newBetas = (values[0], values[1])
        }
        let newLR = try hyper["lr"]?.item() ?? lr, newEps = try hyper["eps"]?.item() ?? eps
        let newWD = try hyper["weight_decay"]?.item() ?? weightDecay
        do {
            try Self.validate(lr: newLR, betas: newBetas, eps: newEps, weightDecay: newWD)
        } catch let error as TorchError {
            problems.append("invalid hyperparameters: \(error.message)")
        }
        guard problems.isEmpty else {
            throw TorchError("AdamW.loadStateDict: the state dict does not fit this optimizer (\(parameters.count) "
                                 + "parameters):\n" + problems.map { "  " + $0 }.joined(separator: "\n"))
        }

        var newState = [ParameterState?](repeating: nil, count: parameters.count)
        for (i, e) in entries {
            let p = parameters[i]
            let m = try zerosLike(p), v = try zerosLike(p)
            try m.copy_(e["exp_avg"]!)
            try v.copy_(e["exp_avg_sq"]!)
            let step = try Tensor.zeros([], dtype: .float32, device: p.device)
            try step.copy_(try e["step"]!.reshape([]))
            newState[i] = ParameterState(expAvg: m, expAvgSq: v, step: step)
        }
        state = newState
        (lr, betas, eps, weightDecay) = (newLR, newBetas, newEps, newWD)
    }
}
