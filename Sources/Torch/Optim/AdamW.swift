import CTorch

/// Adam with decoupled weight decay, computed by libtorch's fused kernel: the same arithmetic as
/// `torch.optim.AdamW(params, lr, betas, eps, weight_decay, fused=True)`, bit for bit, in one call per step for
/// all parameters (per device and dtype).
///
/// Per parameter p with gradient g, at step t (counted from 1):
///   p ← p·(1 − lr·wd);  m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²
///   p ← p − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + eps)
///
/// State per parameter (`exp_avg`, `exp_avg_sq`, and `step`, a float32 0-dim tensor on the parameter's device) is
/// created at its first step with a gradient. Parameters without a gradient are skipped, as in PyTorch. `lr` may be
/// changed between steps (schedulers do). `stateDict`/`loadStateDict` save and restore everything a bit-exact
/// resume needs, under PyTorch's flattened names (`state.3.exp_avg`, `param_groups.0.lr`).
public final class AdamW {
    /// The moments and step count of one parameter.
    public struct ParameterState {
        /// First moment m, shaped like the parameter.
        public let expAvg: Tensor
        /// Second moment v, shaped like the parameter.
        public let expAvgSq: Tensor
        /// Steps taken so far, a float32 0-dim tensor on the parameter's device.
        public let step: Tensor
    }

    /// The parameters, in the order that numbers their state.
    public let parameters: [Tensor]
    public var lr: Double
    public var betas: (Double, Double)
    public var eps: Double
    public var weightDecay: Double
    /// State of parameter i, or nil before its first step.
    public internal(set) var state: [ParameterState?]

    /// Defaults are PyTorch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    public init(_ parameters: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Double = 1e-8, weightDecay: Double = 1e-2) throws {
        try Self.validate(lr: lr, betas: betas, eps: eps, weightDecay: weightDecay)
        var seen = Set<ObjectIdentifier>()
        for (i, p) in parameters.enumerated() where !seen.insert(ObjectIdentifier(p)).inserted {
            throw TorchError("AdamW: parameter \(i) appears more than once in the parameter list")
        }
        self.parameters = parameters
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        self.state = Array(repeating: nil, count: parameters.count)
    }

    /// Optimizes every parameter of `module` (in `parameters()` order).
    public convenience init(_ module: any Module, lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                            eps: Double = 1e-8, weightDecay: Double = 1e-2) throws {
        try self.init(module.parameters(), lr: lr, betas: betas, eps: eps, weightDecay: weightDecay)
    }

    static func validate(lr: Double, betas: (Double, Double), eps: Double, weightDecay: Double) throws {
        guard lr >= 0 else { throw TorchError("AdamW: invalid learning rate \(lr)") }
        guard eps >= 0 else { throw TorchError("AdamW: invalid epsilon value \(eps)") }
        guard (0..<1).contains(betas.0) else { throw TorchError("AdamW: invalid beta parameter at index 0: \(betas.0)") }
        guard (0..<1).contains(betas.1) else { throw TorchError("AdamW: invalid beta parameter at index 1: \(betas.1)") }
        guard weightDecay >= 0 else { throw TorchError("AdamW: invalid weight_decay value \(weightDecay)") }
    }

    /// One update of every parameter that has a gradient.
    public func step() throws {
        var params: [Tensor] = [], grads: [Tensor] = [], m: [Tensor] = [], v: [Tensor] = [], steps: [Tensor] = []
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            let s = try state[i] ?? makeState(for: p)
            state[i] = s
            params.append(p)
            grads.append(g)
            m.append(s.expAvg)
            v.append(s.expAvgSq)
            steps.append(s.step)
        }
        guard !params.isEmpty else { return }
        let (lr, b1, b2, eps, wd, n) = (lr, betas.0, betas.1, eps, weightDecay, Int64(params.count))
        let status: Int32 = withHandles(params) { hp in
            withHandles(grads) { hg in
                withHandles(m) { hm in
                    withHandles(v) { hv in
                        withHandles(steps) { hs in
                            ct_fused_adamw_(mutating(hp), mutating(hg), mutating(hm), mutating(hv), mutating(hs), n,
                                            lr, b1, b2, wd, eps)
                        }
                    }
                }
            }
        }
        try checkStatus(status)
    }

    /// Drops every parameter's gradient (`zero_grad()`, which sets them to None).
    public func zeroGrad() throws {
        for p in parameters { try p.zeroGrad() }
    }

    private func makeState(for p: Tensor) throws -> ParameterState {
        guard p.dtype.isFloatingPoint else {
            throw TorchError("AdamW: parameters must be floating point, got a \(p.dtype) tensor of shape \(p.shape)")
        }
        return ParameterState(expAvg: try zerosLike(p), expAvgSq: try zerosLike(p),
                              step: try Tensor.zeros([], dtype: .float32, device: p.device))
    }

    /// zeros_like(p, memory_format=preserve_format): a detached copy keeps p's strides.
    func zerosLike(_ p: Tensor) throws -> Tensor {
        let t = try withNoGrad { try p.detach().clone() }
        try t.zero_()
        return t
    }
}

/// The shim takes `ct_tensor *`; the handles are only read.
@inline(__always)
func mutating(_ p: UnsafePointer<OpaquePointer?>) -> UnsafeMutablePointer<OpaquePointer?> { UnsafeMutablePointer(mutating: p) }
