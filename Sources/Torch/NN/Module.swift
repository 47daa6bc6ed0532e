import CTorch

/// A layer or model, as PyTorch's `nn.Module`, with explicit registration instead of reflection.
///
/// A module lists its own parameters and buffers (`localParameters`, `localBuffers`) and its child modules
/// (`children`) under the names they have in PyTorch checkpoints, in PyTorch's registration order. A child's name
/// may contain dots (`("adaLN_modulation.1", linear)`), which is how a module that skips PyTorch's `Sequential`
/// still produces the same keys. Everything else (dotted names, state dicts, devices, train/eval) is derived
/// recursively by the extension below.
///
/// Parameters are tensors with `requiresGrad` set; they keep their identity for the life of the module
/// (`loadStateDict` copies into them, `to(device:dtype:)` replaces their data), so an optimizer that holds them
/// stays valid. Modules are classes: share one by reference.
///
/// ```swift
/// final class Block: Module {
///     let fc1: Linear, fc2: Linear
///     var isTraining = true
///     var children: [(String, any Module)] { [("fc1", fc1), ("fc2", fc2)] }
/// }
/// ```
public protocol Module: AnyObject {
    /// This module's own parameters (not its children's), by name, in registration order.
    var localParameters: [(String, Tensor)] { get }
    /// This module's own persistent buffers (saved in the state dict, moved by `to`), by name.
    var localBuffers: [(String, Tensor)] { get }
    /// Buffers that are moved by `to` but not saved (PyTorch's `persistent=False`).
    var localNonPersistentBuffers: [(String, Tensor)] { get }
    /// The direct children, by their (possibly dotted) names, in registration order.
    var children: [(String, any Module)] { get }
    /// Training mode (dropout active); set through `train(_:)` and `eval()` so children follow.
    var isTraining: Bool { get set }
}

extension Module {
    public var localParameters: [(String, Tensor)] { [] }
    public var localBuffers: [(String, Tensor)] { [] }
    public var localNonPersistentBuffers: [(String, Tensor)] { [] }
    public var children: [(String, any Module)] { [] }
}

/// A module whose forward pass maps one tensor to one tensor; `Sequential` chains these.
public protocol Layer: Module {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

@inline(__always)
func join(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

extension Module {
    /// This module (named "") and every descendant, depth-first in registration order, each listed once.
    public func namedModules(prefix: String = "") -> [(String, any Module)] {
        var seen = Set<ObjectIdentifier>()
        var out: [(String, any Module)] = []
        func visit(_ m: any Module, _ name: String) {
            guard seen.insert(ObjectIdentifier(m)).inserted else { return }
            out.append((name, m))
            for (childName, child) in m.children { visit(child, join(name, childName)) }
        }
        visit(self, prefix)
        return out
    }

    private func collect(_ local: (any Module) -> [(String, Tensor)]) -> [(String, Tensor)] {
        var seen = Set<ObjectIdentifier>()
        var out: [(String, Tensor)] = []
        for (prefix, m) in namedModules() {
            for (name, t) in local(m) where seen.insert(ObjectIdentifier(t)).inserted {
                out.append((join(prefix, name), t))
            }
        }
        return out
    }

    /// Every parameter with its dotted name (`blocks.0.attn.qkv.weight`), as `named_parameters()`: a module's own
    /// parameters first, then its children's; a tensor registered twice is listed once.
    public func namedParameters() -> [(String, Tensor)] { collect { $0.localParameters } }

    /// Every persistent buffer with its dotted name, as `named_buffers()` (non-persistent ones excluded).
    public func namedBuffers() -> [(String, Tensor)] { collect { $0.localBuffers } }

    /// The parameters in `namedParameters()` order (what an optimizer takes).
    public func parameters() -> [Tensor] { namedParameters().map { $0.1 } }

    /// The parameter with this dotted name, or nil.
    public func parameter(_ name: String) -> Tensor? { namedParameters().first { $0.0 == name }?.1 }

    /// The number of scalar parameters, as `sum(p.numel() for p in model.parameters())`.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Sets training mode on this module and all its descendants (`module.train(mode)`).
    public func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.isTraining = on }
    }

    /// Sets evaluation mode (dropout off) on this module and all its descendants.
    public func eval() { train(false) }

    /// Sets `requiresGrad` on every parameter (`module.requires_grad_(on)`), e.g. to freeze an encoder.
    public func requiresGrad(_ on: Bool) throws {
        for p in parameters() { try p.requiresGrad(on) }
    }

    /// Drops every parameter's gradient (`zero_grad(set_to_none=True)`).
    public func zeroGrad() throws {
        for p in parameters() { try p.zeroGrad() }
    }

    /// Moves every parameter and buffer (and existing gradients) to `device` and converts the floating-point
    /// ones to `dtype`, in place, keeping tensor identity (`module.to(device, dtype)`). Integer and boolean
    /// tensors keep their dtype. Make optimizers after moving: their state stays where it was created.
    public func to(device: Device? = nil, dtype: DType? = nil) throws {
        if let dtype, !dtype.isFloatingPoint {
            throw TorchError("Module.to(dtype:) takes a floating-point dtype, not \(dtype)")
        }
        var seen = Set<ObjectIdentifier>()
        for (_, m) in namedModules() {
            for (_, t) in m.localParameters + m.localBuffers + m.localNonPersistentBuffers
            where seen.insert(ObjectIdentifier(t)).inserted {
                let target = t.dtype.isFloatingPoint ? dtype : nil
                guard (device != nil && device != t.device) || (target != nil && target != t.dtype) else { continue }
                try withNoGrad {
                    try t.setData(try t.to(device: device, dtype: target))
                    if let g = t.grad { try g.setData(try g.to(device: device, dtype: target)) }
                }
            }
        }
    }
}

/// A new parameter of `shape`, filled by `initialize` (run without recording autograd).
func makeParameter(_ shape: [Int], dtype: DType, device: Device,
                   _ initialize: (Tensor) throws -> Void) throws -> Tensor {
    let t = try Tensor.empty(shape, dtype: dtype, device: device)
    try withNoGrad { try initialize(t) }
    return try t.requiresGrad(true)
}
