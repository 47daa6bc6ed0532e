import Foundation

/// What a `Linear` adds to its output: `y = W·x + b + adapter.delta(x)`.
public protocol LinearAdapter: AnyObject {
    /// x: [..., in] → [..., out]
    func delta(_ x: Tensor, training: Bool) throws -> Tensor
}

/// A low-rank adapter on one `Linear`, as PEFT's `lora.Linear` (LoRA, Hu et al. 2021):
///
///     y = W·x + b + (α / r) · B·A·dropout(x)        A: [r, in], B: [out, r]
///
/// `A` (`lora_A.weight`) starts as PyTorch's `kaiming_uniform_(a = √5)` and `B` (`lora_B.weight`) as zeros, so an
/// adapted layer starts out equal to its base. Merging folds the product into the base weight:
/// W ← W + (α / r)·B·A. The adapter is attached to the `Linear` (`Linear.adapter`) and is not one of its children,
/// so the base model's state dict keeps its keys; `LoRA` collects the adapters under PEFT's names.
public final class LoRAAdapter: Module, LinearAdapter {
    /// The rank r.
    public let rank: Int
    /// α / r (PEFT's `scaling`; α / √r with rsLoRA, which is not used here).
    public let scaling: Double
    /// The dropout probability on the adapter's input (PEFT's `lora_dropout`), in training mode only.
    public let dropout: Double
    /// lora_A: Linear(in, r, bias: false), weight [r, in]
    public let loraA: Linear
    /// lora_B: Linear(r, out, bias: false), weight [out, r]
    public let loraB: Linear
    public var isTraining = true

    /// A fresh adapter for `base`: A as PyTorch initialises a Linear weight, B zero (PEFT's `init_lora_weights=True`),
    /// on the base weight's device and dtype, trainable.
    public init(for base: Linear, rank: Int, alpha: Double, dropout: Double = 0) throws {
        guard rank > 0 else { throw TorchError("LoRA rank must be positive, not \(rank)") }
        guard rank <= min(base.inFeatures, base.outFeatures) else {
            throw TorchError("LoRA rank \(rank) exceeds the layer's size (\(base.inFeatures) → \(base.outFeatures))")
        }
        guard alpha > 0, alpha.isFinite else { throw TorchError("lora_alpha must be positive, not \(alpha)") }
        guard (0..<1).contains(dropout) else { throw TorchError("lora_dropout must be in [0, 1), not \(dropout)") }
        self.rank = rank
        self.scaling = alpha / Double(rank)
        self.dropout = dropout
        let dtype = base.weight.dtype, device = base.weight.device
        loraA = try Linear(base.inFeatures, rank, bias: false, dtype: dtype, device: device)
        loraB = try Linear(rank, base.outFeatures, bias: false, dtype: dtype, device: device)
        try withNoGrad { try loraB.weight.fill_(0) }
    }

    public var children: [(String, any Module)] { [("lora_A", loraA), ("lora_B", loraB)] }

    /// x: [..., in] → (α / r)·B·A·dropout(x): [..., out]
    public func delta(_ x: Tensor, training: Bool) throws -> Tensor {
        let input = dropout > 0 ? try x.dropout(p: dropout, training: training) : x
        return try loraB(try loraA(input)) * scaling
    }

    /// (α / r)·B·A: [out, in], the update that merging adds to the base weight.
    public func deltaWeight() throws -> Tensor {
        try loraB.weight.matmul(loraA.weight) * scaling
    }
}

/// Attaching, collecting and merging LoRA adapters over a model's `Linear` layers, with PEFT's module matching
/// and key names.
public enum LoRA {
    /// PEFT's prefix of every adapter key in `adapter_model.safetensors`.
    public static let keyPrefix = "base_model.model."

    /// Whether the module at `path` is one of `targets`, by PEFT's rule for a list of names: the whole path, or its
    /// last dot-separated components (`qkv` matches `layers.0.attn.qkv`, `attn.qkv` too, `kv` does not).
    public static func matches(_ path: String, targets: [String]) -> Bool {
        targets.contains { path == $0 || path.hasSuffix("." + $0) }
    }

    /// The `Linear` layers of `model` that `targets` name, by dotted path, in registration order.
    public static func targetLayers(in model: any Module, targets: [String]) -> [(String, Linear)] {
        model.namedModules().compactMap { path, module in
            guard let linear = module as? Linear, matches(path, targets: targets) else { return nil }
            return (path, linear)
        }
    }

    /// Attaches a fresh adapter to every target `Linear` of `model` and returns them by path. Fails when a target
    /// matches nothing or a layer already has an adapter.
    @discardableResult
    public static func inject(into model: any Module, targets: [String], rank: Int, alpha: Double,
                              dropout: Double = 0) throws -> [(String, LoRAAdapter)] {
        let layers = targetLayers(in: model, targets: targets)
        for target in targets where !layers.contains(where: { matches($0.0, targets: [target]) }) {
            let linears = model.namedModules().filter { $0.1 is Linear }.map(\.0)
            throw TorchError("LoRA target \"\(target)\" matches no Linear layer; the model's Linear layers end in: "
                + Set(linears.map { String($0.split(separator: ".").last ?? "") }).sorted().joined(separator: ", "))
        }
        return try layers.map { path, linear in
            guard linear.adapter == nil else { throw TorchError("\(path) already has a LoRA adapter") }
            let adapter = try LoRAAdapter(for: linear, rank: rank, alpha: alpha, dropout: dropout)
            linear.adapter = adapter
            return (path, adapter)
        }
    }

    /// The adapters attached to `model`'s layers, by path.
    public static func adapters(in model: any Module) -> [(String, LoRAAdapter)] {
        model.namedModules().compactMap { path, module in
            guard let adapter = (module as? Linear)?.adapter as? LoRAAdapter else { return nil }
            return (path, adapter)
        }
    }

    /// The adapters' weights under PEFT's saved names: `base_model.model.<path>.lora_A.weight` [r, in] and
    /// `….lora_B.weight` [out, r].
    public static func stateDict(of model: any Module) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (path, adapter) in adapters(in: model) {
            out[keyPrefix + path + ".lora_A.weight"] = try adapter.loraA.weight.detach()
            out[keyPrefix + path + ".lora_B.weight"] = try adapter.loraB.weight.detach()
        }
        return out
    }

    /// Copies PEFT-named adapter weights into the adapters attached to `model`, strictly: every adapter gets both
    /// of its tensors with the right shapes, and no key is left over.
    public static func load(_ tensors: [String: Tensor], into model: any Module) throws {
        var unused = Set(tensors.keys)
        for (path, adapter) in adapters(in: model) {
            for (suffix, target) in [(".lora_A.weight", adapter.loraA.weight), (".lora_B.weight", adapter.loraB.weight)] {
                let key = keyPrefix + path + suffix
                guard let t = tensors[key] else { throw TorchError("the LoRA weights have no \(key)") }
                guard t.shape == target.shape else {
                    throw TorchError("LoRA weight \(key) has shape \(t.shape), but the layer needs \(target.shape)")
                }
                try withNoGrad { try target.copy_(t) }
                unused.remove(key)
            }
        }
        if let extra = unused.sorted().first {
            throw TorchError("LoRA weight \(extra) names no adapted layer of this model (\(unused.count) unused)")
        }
    }

    /// Folds every adapter into its base weight (W ← W + (α / r)·B·A, PEFT's `merge_and_unload`) and detaches it.
    public static func merge(_ model: any Module) throws {
        for case let linear as Linear in model.namedModules().map(\.1) {
            guard let adapter = linear.adapter as? LoRAAdapter else { continue }
            try withNoGrad { try linear.weight.add_(try adapter.deltaWeight()) }
            linear.adapter = nil
        }
    }
}
