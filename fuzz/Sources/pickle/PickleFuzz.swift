import FuzzSupport
import Torch

/// libFuzzer entry: the bytes are a `torch.save` file (`.pt`), opened as `PyTorchCheckpoint.open` opens a user's
/// checkpoint (zip or legacy format, our own unpickler in CTorch, tensors rebuilt over their storages), with unsafe
/// globals allowed so that the whole file is read, as `paris inspect` reads it. A thrown `TorchError` is fine; a trap,
/// a crash, a hang or running out of memory is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPickle(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let url = FuzzInput.file(FuzzInput.bytes(data, size), named: "input.pt")
    if let checkpoint = try? PyTorchCheckpoint.open(url, allowingUnsafeGlobals: true) {
        // Read every tensor's bytes, so that a view that does not fit its storage faults here.
        for (_, tensor) in checkpoint.tensors { _ = try? tensor.contiguous().bytes() }
    }
    return 0
}
