import FuzzSupport
import ParisImage

/// libFuzzer entry: the bytes are an image file given to `Image(contentsOf:)`, as the dataset importers read a
/// user's images; the first 8 bytes are forced to PNG's signature, so that every input reaches libpng through
/// `ic_png_decode` (CImageCodecs). Both alpha modes are decoded. A thrown `ImageError` is fine; a trap, a crash, a
/// hang or running out of memory is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    let bytes = FuzzInput.bytes(data, size)
    let url = FuzzInput.file(signature + bytes.dropFirst(bytes.starts(with: signature) ? 8 : 0), named: "input.png")
    _ = try? Image(contentsOf: url)
    _ = try? Image(contentsOf: url, alpha: .composite(over: .white))
    return 0
}
