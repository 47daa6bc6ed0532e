import FuzzSupport
import ParisData

/// libFuzzer entry: the bytes are a WebDataset shard, read by `TarArchive(contentsOf:)` as `paris data import
/// webdataset` reads a user's `.tar` (ustar, pax and GNU headers, member names checked), then every member's content
/// is read. A thrown `DatasetImportError` is fine; a trap, a crash, a hang or running out of memory is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTar(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let url = FuzzInput.file(FuzzInput.bytes(data, size), named: "input.tar")
    if let archive = try? TarArchive(contentsOf: url) {
        for member in archive.members { _ = archive.contents(of: member) }
    }
    return 0
}
