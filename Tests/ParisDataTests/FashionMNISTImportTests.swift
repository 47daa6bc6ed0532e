import Foundation
import ParisImage
import ParisData
import XCTest

final class FashionMNISTImportTests: XCTestCase {
    private var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fm-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    /// A deterministic 28×28 image per index.
    private func pixels(_ i: Int) -> [UInt8] { (0..<784).map { UInt8(truncatingIfNeeded: $0 * (i + 3) + i * 17) } }

    /// Writes the four gzip IDX files: `train` with `trainLabels`, `t10k` with `testLabels` (images made by `pixels`).
    @discardableResult
    private func writeSource(train trainLabels: [UInt8] = [0, 1, 9, 4, 7], test testLabels: [UInt8] = [3, 8],
                             imagesOverride: [String: [UInt8]] = [:], labelsOverride: [String: [UInt8]] = [:]) throws -> URL {
        let src = tmp.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: src, withIntermediateDirectories: true)
        for (prefix, labels) in [("train", trainLabels), ("t10k", testLabels)] {
            let imgs = IDX.encodeImages((0..<labels.count).flatMap { pixels($0) }, count: labels.count, rows: 28, cols: 28)
            let imgFile = "\(prefix)-images-idx3-ubyte.gz", lblFile = "\(prefix)-labels-idx1-ubyte.gz"
            try Data(imagesOverride[prefix] ?? (try Gzip.compress(imgs))).write(to: src.appendingPathComponent(imgFile))
            try Data(labelsOverride[prefix] ?? (try Gzip.compress(IDX.encodeLabels(labels))))
                .write(to: src.appendingPathComponent(lblFile))
        }
        return src
    }

    private func options(_ src: URL, out: String = "out", splits: [FashionMNIST.Split] = FashionMNIST.Split.allCases,
                         limit: Int? = nil, force: Bool = false) -> FashionMNIST.Options {
        FashionMNIST.Options(source: src, output: tmp.appendingPathComponent(out), splits: splits, limit: limit,
                             force: force, install: false, progressEvery: 2)
    }

    private func metadata(_ out: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: out.appendingPathComponent("metadata.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testGzipRoundTripAndTruncation() throws {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) }
        let gz = try Gzip.compress(data)
        XCTAssertEqual(Array(gz.prefix(2)), [0x1f, 0x8b])
        XCTAssertEqual(try Gzip.decompress(gz), data)
        assertThrows({ try Gzip.decompress(Array(gz.prefix(gz.count / 2)), name: "half.gz") }, contains: "half.gz: truncated")
        assertThrows({ try Gzip.decompress(Array("not gzip at all".utf8), name: "x.gz") }, contains: "x.gz: corrupt gzip")
    }

    func testImportWritesPNGsMetadataAndLicence() throws {
        let src = try writeSource()
        var lines: [String] = []
        let outcome = try FashionMNIST.importDataset(options(src)) { lines.append($0) }
        XCTAssertEqual(outcome, .imported(images: 7))
        XCTAssert(lines.contains("train: 2/5 images (40%)"), "\(lines)")
        XCTAssert(lines.contains("test: 2/2 images (100%)"), "\(lines)")

        let out = tmp.appendingPathComponent("out")
        for (split, n) in [("train", 5), ("test", 2)] {
            for i in 0..<n {
                let img = try Image(contentsOf: out.appendingPathComponent(String(format: "\(split)/00000/%05d.png", i)))
                XCTAssertEqual(img, try Image(width: 28, height: 28, channels: 1, pixels: pixels(i)))
            }
        }
        let meta = try metadata(out)
        XCTAssertEqual(meta.count, 7)
        XCTAssertEqual(meta.map { $0["file_name"] as? String },
                       ["train/00000/00000.png", "train/00000/00001.png", "train/00000/00002.png", "train/00000/00003.png", "train/00000/00004.png",
                        "test/00000/00000.png", "test/00000/00001.png"])
        XCTAssertEqual(meta.map { $0["label"] as? Int }, [0, 1, 9, 4, 7, 3, 8])
        XCTAssertEqual(meta.map { $0["split"] as? String }, ["train", "train", "train", "train", "train", "test", "test"])
        XCTAssertEqual(meta[0]["text"] as? String, "a photo of a t-shirt")
        XCTAssertEqual(meta[0]["class_name"] as? String, "T-shirt/top")
        XCTAssertEqual(meta[2]["text"] as? String, "a photo of an ankle boot")
        XCTAssertEqual(meta[2]["class_name"] as? String, "Ankle boot")
        // The exact line format (key order) of the brief.
        let first = try String(contentsOf: out.appendingPathComponent("metadata.jsonl"), encoding: .utf8)
            .split(separator: "\n")[0]
        XCTAssertEqual(String(first), #"{"file_name": "train/00000/00000.png", "text": "a photo of a t-shirt", "label": 0, "class_name": "T-shirt/top", "split": "train"}"#)

        let licence = try String(contentsOf: out.appendingPathComponent("LICENSE.md"), encoding: .utf8)
        XCTAssert(licence.contains("Zalando SE") && licence.contains("MIT"))
        let readme = try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssert(readme.contains("zalandoresearch/fashion-mnist"))
        XCTAssert(FileManager.default.fileExists(atPath: out.appendingPathComponent(FashionMNIST.markerName).path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(FashionMNIST.inProgressName).path))
    }

    func testLimitAndSplit() throws {
        let src = try writeSource()
        XCTAssertEqual(try FashionMNIST.importDataset(options(src, splits: [.train], limit: 3)), .imported(images: 3))
        let out = tmp.appendingPathComponent("out")
        XCTAssertEqual(try metadata(out).map { $0["file_name"] as? String },
                       ["train/00000/00000.png", "train/00000/00001.png", "train/00000/00002.png"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("test").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("train/00000/00003.png").path))
    }

    func testCorruptMagic() throws {
        var bad = IDX.encodeImages(pixels(0), count: 1, rows: 28, cols: 28)
        bad[3] = 0x01  // 2049: a label file's magic
        let src = try writeSource(train: [0], imagesOverride: ["train": try Gzip.compress(bad)])
        assertThrows({ try FashionMNIST.importDataset(self.options(src)) },
                     contains: "train-images-idx3-ubyte.gz: bad magic number 2049, expected 2051")
        let badLabels = [0, 0, 0x08, 0x03] + Array(IDX.encodeLabels([0]).dropFirst(4))
        let src2 = try writeSource(train: [0], labelsOverride: ["train": try Gzip.compress(badLabels)])
        assertThrows({ try FashionMNIST.importDataset(self.options(src2)) },
                     contains: "train-labels-idx1-ubyte.gz: bad magic number 2051, expected 2049")
    }

    func testTruncatedData() throws {
        // An IDX file shorter than its header says (well-formed gzip).
        let full = IDX.encodeImages((0..<3).flatMap { pixels($0) }, count: 3, rows: 28, cols: 28)
        let src = try writeSource(train: [0, 1, 2], imagesOverride: ["train": try Gzip.compress(Array(full.dropLast(100)))])
        assertThrows({ try FashionMNIST.importDataset(self.options(src)) },
                     contains: "train-images-idx3-ubyte.gz: truncated: the header says 3 images of 28×28")
        // A cut gzip stream.
        let gz = try Gzip.compress(full)
        let src2 = try writeSource(train: [0, 1, 2], imagesOverride: ["train": Array(gz.prefix(gz.count - 20))])
        assertThrows({ try FashionMNIST.importDataset(self.options(src2)) }, contains: "truncated gzip data")
        // Truncated labels.
        let lbl = IDX.encodeLabels([0, 1, 2])
        let src3 = try writeSource(train: [0, 1, 2], labelsOverride: ["train": try Gzip.compress(Array(lbl.dropLast()))])
        assertThrows({ try FashionMNIST.importDataset(self.options(src3)) },
                     contains: "train-labels-idx1-ubyte.gz: truncated: the header says 3 labels but 2 bytes follow")
    }

    func testCountMismatchAndBadLabel() throws {
        let src = try writeSource(labelsOverride: ["train": try Gzip.compress(IDX.encodeLabels([0, 1, 2, 3]))])
        assertThrows({ try FashionMNIST.importDataset(self.options(src)) },
                     contains: "train: train-images-idx3-ubyte.gz holds 5 images but train-labels-idx1-ubyte.gz holds 4 labels")
        let src2 = try writeSource(train: [0, 10])
        assertThrows({ try FashionMNIST.importDataset(self.options(src2)) }, contains: "label 10 at index 1 is not a class")
    }

    func testMissingSourceFiles() throws {
        let src = try writeSource()
        try FileManager.default.removeItem(at: src.appendingPathComponent("t10k-labels-idx1-ubyte.gz"))
        assertThrows({ try FashionMNIST.importDataset(self.options(src)) }, contains: "missing t10k-labels-idx1-ubyte.gz")
        XCTAssertEqual(try FashionMNIST.importDataset(options(src, splits: [.train])), .imported(images: 5))
    }

    func testRerunIsANoOp() throws {
        let src = try writeSource()
        XCTAssertEqual(try FashionMNIST.importDataset(options(src)), .imported(images: 7))
        let png = tmp.appendingPathComponent("out/train/00000/00000.png")
        let before = try FileManager.default.attributesOfItem(atPath: png.path)[.modificationDate] as? Date
        // Even with the source gone, a complete dataset is reported and left alone.
        try FileManager.default.removeItem(at: src)
        var lines: [String] = []
        XCTAssertEqual(try FashionMNIST.importDataset(options(src)) { lines.append($0) }, .alreadyComplete(images: 7))
        XCTAssert(lines.joined().contains("already there"), "\(lines)")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: png.path)[.modificationDate] as? Date, before)
    }

    func testPartialDatasetIsRebuilt() throws {
        let src = try writeSource()
        try FashionMNIST.importDataset(options(src))
        let out = tmp.appendingPathComponent("out")
        // Simulate an interrupted run: in-progress file, no marker, a stale extra image and a broken one.
        try FileManager.default.removeItem(at: out.appendingPathComponent(FashionMNIST.markerName))
        try Data("started\n".utf8).write(to: out.appendingPathComponent(FashionMNIST.inProgressName))
        try Data("junk".utf8).write(to: out.appendingPathComponent("train/00000/00001.png"))
        try Data("junk".utf8).write(to: out.appendingPathComponent("train/00000/00099.png"))
        var lines: [String] = []
        XCTAssertEqual(try FashionMNIST.importDataset(options(src)) { lines.append($0) }, .imported(images: 7))
        XCTAssert(lines.joined().contains("partial import"), "\(lines)")
        XCTAssertEqual(try Image(contentsOf: out.appendingPathComponent("train/00000/00001.png")),
                       try Image(width: 28, height: 28, channels: 1, pixels: pixels(1)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("train/00000/00099.png").path))
        XCTAssert(FileManager.default.fileExists(atPath: out.appendingPathComponent(FashionMNIST.markerName).path))
    }

    func testNeverOverwritesADifferentDatasetSilently() throws {
        let src = try writeSource()
        // A foreign folder.
        let foreign = tmp.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: foreign.appendingPathComponent("metadata.jsonl"))
        assertThrows({ try FashionMNIST.importDataset(self.options(src, out: "foreign")) }, contains: "pass --force")
        XCTAssertEqual(try String(contentsOf: foreign.appendingPathComponent("metadata.jsonl"), encoding: .utf8), "{}")
        XCTAssertEqual(try FashionMNIST.importDataset(options(src, out: "foreign", force: true)), .imported(images: 7))
        // A complete import made with other options.
        try FashionMNIST.importDataset(options(src, limit: 2))
        assertThrows({ try FashionMNIST.importDataset(self.options(src)) }, contains: "made with other options")
        XCTAssertEqual(try FashionMNIST.importDataset(options(src, force: true)), .imported(images: 7))
        // An output path that is a file.
        try Data("x".utf8).write(to: tmp.appendingPathComponent("file"))
        assertThrows({ try FashionMNIST.importDataset(self.options(src, out: "file")) }, contains: "is not a folder")
    }

    /// An --out that overlaps the IDX folder is refused, force or not, and the source is left byte-identical.
    func testOutputOverlappingTheSourceIsRefused() throws {
        let src = try writeSource()
        try Data("# the IDX files\n".utf8).write(to: src.appendingPathComponent("README.md"))
        let before = fileTree(tmp)
        for out in ["src", "src/", "src/fm", "."] {
            for force in [false, true] {
                assertThrows({ try FashionMNIST.importDataset(self.options(src, out: out, force: force)) },
                             contains: "overlap")
                XCTAssertEqual(fileTree(tmp), before, "--out \(out) force \(force) changed the source")
            }
        }
    }

    /// The real Debian files (installed by the importer's own step when absent; CI runs as root), 50 per split.
    func testDebianPackageEndToEnd() throws {
        if !FashionMNIST.filesPresent() {
            try FashionMNIST.installPackage { print($0) }
        }
        XCTAssert(FashionMNIST.filesPresent(), "dataset-fashion-mnist did not provide \(FashionMNIST.systemDirectory.path)")
        let opts = FashionMNIST.Options(output: tmp.appendingPathComponent("fm"), limit: 50, install: false)
        XCTAssertEqual(try FashionMNIST.importDataset(opts), .imported(images: 100))
        let meta = try metadata(opts.output)
        XCTAssertEqual(meta.count, 100)
        // The well-known first labels: train starts Ankle boot, T-shirt/top, T-shirt/top; t10k starts Ankle boot, Pullover.
        XCTAssertEqual(meta.prefix(3).map { $0["label"] as? Int }, [9, 0, 0])
        XCTAssertEqual(meta[50]["file_name"] as? String, "test/00000/00000.png")
        XCTAssertEqual(meta[50...51].map { $0["class_name"] as? String }, ["Ankle boot", "Pullover"])
        for row in meta {
            let label = try XCTUnwrap(row["label"] as? Int)
            XCTAssertEqual(row["text"] as? String, FashionMNIST.captions[label])
            let img = try Image(contentsOf: opts.output.appendingPathComponent(try XCTUnwrap(row["file_name"] as? String)))
            XCTAssertEqual([img.width, img.height, img.channels], [28, 28, 1])
        }
        XCTAssertEqual(try FashionMNIST.importDataset(opts), .alreadyComplete(images: 100))
    }
}
