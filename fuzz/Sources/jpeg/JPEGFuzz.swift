import FuzzSupport
import ParisImage

/// libFuzzer entry: the bytes are an image file given to `Image(contentsOf:)`, as the dataset importers read a
/// user's images; the first 3 bytes are forced to JPEG's SOI marker, so that every input reaches libjpeg through
/// `ic_jpeg_decode` (CImageCodecs). A thrown `ImageError` is fine; a trap, a crash, a hang or running out of memory
/// is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJPEG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let soi: [UInt8] = [0xFF, 0xD8, 0xFF]
    let bytes = FuzzInput.bytes(data, size)
    let url = FuzzInput.file(soi + bytes.dropFirst(bytes.starts(with: soi) ? 3 : 0), named: "input.jpg")
    _ = try? Image(contentsOf: url, alpha: .composite(over: .white))
    return 0
}
