import Foundation
@testable import ParisData
import ParisTestSupport
import Torch
import XCTest

/// Issue #17, item 4: a write that fails (a full disk) gives a clear error, and nothing already written is lost.
/// The real `paris` runs under a file-size limit (`ulimit -f`, with SIGXFSZ ignored, so the kernel fails the write
/// that would pass the limit with EFBIG, "File too large", as it fails one on a full disk with ENOSPC), which needs
/// no privilege, so the test always runs.
extension PartitionTests {
    /// Every regular file under `folder`, by relative path, with its inode and bytes.
    func stored(_ folder: URL) throws -> [String: (inode: Int, bytes: Data)] {
        var out: [String: (inode: Int, bytes: Data)] = [:]
        let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in walker where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            let inode = try FileManager.default.attributesOfItem(atPath: url.path)[.systemFileNumber] as? Int ?? -1
            out[String(url.path.dropFirst(folder.path.count + 1))] = (inode, try Data(contentsOf: url))
        }
        return out
    }

    /// No temporary file is left, and every safetensors file under its final name is whole.
    func assertWholeFiles(_ folder: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        for (name, _) in try stored(folder) {
            XCTAssertFalse(name.contains(".tmp-") || name.hasSuffix(".partial"), "left behind: \(name)",
                           file: file, line: line)
            if name.hasSuffix(".safetensors") {
                XCTAssertNoThrow(try SafeTensors.load(folder.appendingPathComponent(name)).tensors.values
                    .forEach { _ = try $0.contiguous() }, name, file: file, line: line)
            }
        }
    }

    /// The partition fails twice on a "full disk": first while it writes the caption tokens (the decoded images and
    /// sentence features are kept), then, resumed under a larger limit, while it writes a shard part (the earlier
    /// chunks kept as they were, not written again); each error names the file and the OS's reason. Run without the
    /// limit it resumes and makes the same partition as a run that never failed.
    func testDiskFullGivesAClearErrorAndLosesNothing() throws {
        let paris = try parisBinary(self)
        try writeCaptionedDataset(count: 200)
        func arguments(_ out: URL) -> [String] { textPartition(out, k: 2) }
        let reference = try referencePartition(paris, arguments)
        let work = PartitionWork.folder(for: out)

        // Sizes: an image chunk is 3 KiB, a sentence chunk 25 KiB, a token chunk 100 KiB, a shard part over 400 KiB.
        let first = try runProcess(paris, arguments(out), fileSizeLimitKiB: 60)
        XCTAssertNotEqual(first.status, 0, first.output)
        XCTAssertTrue(first.output.contains("captions/tokens-00000.safetensors: write failed: File too large; the "
            + "chunks written before it are kept, and running the same command again resumes from them"), first.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no partial partition at --out")
        try assertWholeFiles(work)
        let afterFirst = try stored(work)
        XCTAssertEqual(afterFirst.keys.filter { $0.hasPrefix("chunks/") }.count, 13, afterFirst.keys.sorted().description)
        XCTAssertEqual(afterFirst.keys.filter { $0.hasPrefix("captions/sentences-") }.count, 13)
        XCTAssertEqual(afterFirst.keys.filter { $0.hasPrefix("captions/tokens-") }.count, 0)

        let second = try runProcess(paris, arguments(out), fileSizeLimitKiB: 400)
        XCTAssertNotEqual(second.status, 0, second.output)
        XCTAssertTrue(second.output.contains("images: 13 of 13 chunks already decoded; resuming"), second.output)
        XCTAssertNotNil(second.output.range(of: #"result/shard_0/part-00000\.safetensors: write failed: File too large; "#
            + "the shards finished before it are kept", options: .regularExpression), second.output)
        try assertWholeFiles(work)
        let afterSecond = try stored(work)
        for (name, before) in afterFirst where name != PartitionWork.lockName {
            XCTAssertEqual(afterSecond[name]?.inode, before.inode, "\(name) was written again")
            XCTAssertEqual(afterSecond[name]?.bytes, before.bytes, "\(name) changed")
        }
        XCTAssertEqual(afterSecond.keys.filter { $0.hasPrefix("captions/tokens-") }.count, 13)
        XCTAssertNotNil(afterSecond["result/\(Partitioner.centroidsName)"])

        let resumed = try runProcess(paris, arguments(out))
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("clustering: already done"), resumed.output)
        XCTAssertEqual(differences(try files(out), try files(reference)), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.path))
    }
}
