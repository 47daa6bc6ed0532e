import FuzzSupport
import Torch

/// libFuzzer entry: the bytes are a `.safetensors` file, read as `SafeTensors.load` reads a user's weights (header
/// validated, then every tensor wrapped over the mapping). A thrown `TorchError` is a refusal, which is fine; a trap,
/// a crash, a hang or running out of memory is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let url = FuzzInput.file(FuzzInput.bytes(data, size), named: "input.safetensors")
    if let file = try? SafeTensors.load(url) {
        // Touch every tensor's bytes, so that a wrong offset faults here rather than in a later user.
        for (_, tensor) in file.ordered { _ = try? tensor.bytes() }
    }
    return 0
}
