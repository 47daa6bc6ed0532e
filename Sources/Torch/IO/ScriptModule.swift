import CTorch
import Foundation

/// A TorchScript module (`torch.jit.save` / `torch.jit.script(m).save(path)`), loaded by libtorch and run without
/// Python. The module is put in eval mode. It owns its libtorch handle and frees it when released.
///
/// Not thread-safe: call `forward` from one thread at a time.
public final class ScriptModule: @unchecked Sendable {
    private let handle: OpaquePointer
    public let url: URL
    public let device: Device

    /// Loads the module at `url`, placing its parameters and buffers on `device`.
    public init(_ url: URL, device: Device = .cpu) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { throw TorchError("\(url.path): no such file") }
        guard let h = ct_jit_load(url.path, device.code) else { throw TorchError.last() }
        handle = h
        self.url = url
        self.device = device
    }

    deinit { ct_jit_free(handle) }

    /// Runs `forward` on tensor inputs. A tuple or list of tensors comes back flattened in order; a single tensor
    /// as a one-element array. Gradients are not recorded unless grad mode is on.
    public func forward(_ inputs: [Tensor], maxOutputs: Int = 64) throws -> [Tensor] {
        var outputs = [OpaquePointer?](repeating: nil, count: maxOutputs)
        let run = { (p: UnsafePointer<OpaquePointer?>?) in
            outputs.withUnsafeMutableBufferPointer {
                ct_jit_forward(self.handle, p, Int64(inputs.count), $0.baseAddress, Int64(maxOutputs))
            }
        }
        let n = inputs.isEmpty ? run(nil) : withHandles(inputs) { run($0) }
        guard n >= 0 else { throw TorchError.last() }
        return (0..<Int(n)).map { Tensor(handle: outputs[$0]!) }
    }

    /// `forward` with one input, expecting one output.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        let out = try forward([input])
        guard out.count == 1 else { throw TorchError("\(url.lastPathComponent): forward returned \(out.count) tensors, expected 1") }
        return out[0]
    }
}
