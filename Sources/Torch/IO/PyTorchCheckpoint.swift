import CTorch
import Foundation

/// `torch.save` files (`.pt`, `.pth`, `.bin`) read through libtorch's own unpickler.
///
/// The unpickler builds tensors and plain containers only; it never imports or runs Python code, so a checkpoint
/// cannot execute anything when loaded. Nested dicts, lists and tuples are flattened into dotted names, so
/// `{"model": {"x_embedder": {"proj": {"weight": w}}}}` gives `model.x_embedder.proj.weight` (dict order kept).
/// Objects of any other class — `argparse.Namespace` in DiT's checkpoints, a whole pickled `nn.Module`, a dataclass —
/// are not rebuilt: the tensors in their pickled state are kept under the object's name, and the object and every
/// non-tensor value (ints, strings, None...) are listed in `skipped`.
///
/// **Unsafe globals.** A pickle names the Python callables that rebuild its objects. Those a plain checkpoint needs —
/// torch's tensor, parameter and storage rebuilders, dtypes, torch's layer classes, collections' and the builtins'
/// containers, numpy's array reconstructors, argparse.Namespace — are known; any other (`os.system`,
/// `builtins.eval`, `subprocess.Popen`, a class of the saving script) is listed in `unsafeGlobals`. Nothing is ever
/// called here, but Python's `torch.load` without `weights_only=True` would import and call it: such a file is a
/// program, not a checkpoint. `open` and `load` refuse it; `open(_:allowingUnsafeGlobals: true)` reads it anyway
/// (for `paris inspect`, which prints a warning and exits non-zero).
///
/// Only the zip format of PyTorch 1.6 and later is supported (what `torch.save` has written by default since 2020);
/// a legacy file fails with a message that says to re-save it. Tensors are loaded on the CPU, with the dtype,
/// shape and strides they were saved with (a saved view stays a view of its storage).
public struct PyTorchCheckpoint: @unchecked Sendable {
    public let url: URL
    /// Tensors with their dotted names, in the file's order.
    public let tensors: [(name: String, tensor: Tensor)]
    /// The non-tensor values that were left out, as "name: description" (e.g. `step: int 1200`).
    public let skipped: [String]
    /// The globals the pickle names that are not known-safe reconstructors, sorted (empty for a plain checkpoint).
    public let unsafeGlobals: [String]

    /// The tensors as a dictionary.
    public var dictionary: [String: Tensor] {
        Dictionary(tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    }

    /// Loads every tensor of a torch.save file with its dotted name.
    public static func load(_ url: URL) throws -> [(String, Tensor)] {
        try open(url).tensors.map { ($0.name, $0.tensor) }
    }

    /// Loads a torch.save file, keeping the list of skipped entries too. A file whose pickle names a global that is
    /// not a known-safe reconstructor is refused unless `allowingUnsafeGlobals` (then see `unsafeGlobals`).
    public static func open(_ url: URL, allowingUnsafeGlobals: Bool = false) throws -> PyTorchCheckpoint {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw TorchError("\(path): no such file") }
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var handles: UnsafeMutablePointer<OpaquePointer?>?
        var skippedC: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var nSkipped: Int64 = 0
        var unsafeC: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var nUnsafe: Int64 = 0
        let n = ct_load_pickle(path, &names, &handles, &skippedC, &nSkipped, &unsafeC, &nUnsafe)
        guard n >= 0 else { throw TorchError.last() }
        defer {
            ct_free_loaded(names, handles, n)
            ct_free_strings(skippedC, nSkipped)
            ct_free_strings(unsafeC, nUnsafe)
        }
        let unsafe = (0..<Int(nUnsafe)).map { String(cString: unsafeC![$0]!) }
        var tensors: [(name: String, tensor: Tensor)] = []
        for i in 0..<Int(n) {
            tensors.append((String(cString: names![i]!), Tensor(handle: handles![i]!)))
        }
        let skipped = (0..<Int(nSkipped)).map { String(cString: skippedC![$0]!) }
        var seen = Set<String>()
        for (name, _) in tensors where !seen.insert(name).inserted {
            throw TorchError("\(path): two tensors flatten to the same name '\(name)'")
        }
        if !unsafe.isEmpty && !allowingUnsafeGlobals {
            throw TorchError("\(path): refusing to load: \(Self.unsafeMessage(unsafe))")
        }
        return PyTorchCheckpoint(url: url, tensors: tensors, skipped: skipped, unsafeGlobals: unsafe)
    }

    /// Why a file with `globals` is not a plain checkpoint, for errors and warnings.
    public static func unsafeMessage(_ globals: [String]) -> String {
        "its pickle names \(globals.count == 1 ? "a global" : "\(globals.count) globals") that "
            + "\(globals.count == 1 ? "is not a" : "are not") known-safe torch/collections/numpy "
            + "reconstructor\(globals.count == 1 ? "" : "s"): \(globals.joined(separator: ", ")). Paris never runs code "
            + "from a checkpoint, but Python's torch.load would import and call \(globals.count == 1 ? "it" : "them"): "
            + "this file is not a plain checkpoint; get the weights from a trusted source, preferably as safetensors"
    }

    /// Keeps the tensors whose names start with `prefix` + ".", with that prefix removed: `stripping("model")` turns
    /// `model.x_embedder.proj.weight` into `x_embedder.proj.weight` (how DiT checkpoints hold "model" and "ema").
    public func stripping(_ prefix: String) -> [(String, Tensor)] {
        let p = prefix + "."
        return tensors.compactMap { $0.name.hasPrefix(p) ? (String($0.name.dropFirst(p.count)), $0.tensor) : nil }
    }
}
