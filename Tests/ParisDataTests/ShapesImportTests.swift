import Foundation
@testable import ParisData
import ParisImage
import ParisTestSupport
import Torch
import XCTest

/// `paris data import shapes`: determinism, captions that say what is drawn, the bounded folder layout, the
/// safe-rerun protocol, bad input, and a folder the partitioner reads.
final class ShapesImportTests: XCTestCase {
    private var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("shapes-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func options(_ name: String = "out", count: Int = 40, seed: UInt64 = 1, perFolder: Int = 1000)
        -> ShapesImport.Options {
        .init(output: tmp.appendingPathComponent(name), count: count, seed: seed, filesPerFolder: perFolder,
              workers: 2)
    }

    private func rows(_ out: URL) throws -> [[String: Any]] {
        try String(contentsOf: out.appendingPathComponent("metadata.jsonl"), encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    /// Every file under `folder` with its bytes, by relative path.
    private func files(_ folder: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let walker = FileManager.default.enumerator(atPath: folder.path)!
        while let rel = walker.nextObject() as? String {
            var isDir: ObjCBool = false
            let path = folder.appendingPathComponent(rel).path
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
                out[rel] = FileManager.default.contents(atPath: path)
            }
        }
        return out
    }

    func testSameSeedSameBytesAndOtherSeedsDiffer() throws {
        for index in [0, 7, 123_456] {
            let a = try SyntheticShapes.image(seed: 42, index: index, side: 32)
            let b = try SyntheticShapes.image(seed: 42, index: index, side: 32)
            XCTAssertEqual(try a.image.pngData(), try b.image.pngData())
            XCTAssertEqual(a.spec, b.spec)
        }
        let seed1 = try (0..<20).map { try SyntheticShapes.image(seed: 1, index: $0, side: 32).image }
        let seed2 = try (0..<20).map { try SyntheticShapes.image(seed: 2, index: $0, side: 32).image }
        XCTAssertEqual(zip(seed1, seed2).filter { $0 == $1 }.count, 0)
        XCTAssertGreaterThan(Set(seed1.map(\.pixels)).count, 18)  // neighbouring indices differ too
        // Two imports of the same settings are byte-identical, whatever the number of threads.
        try ShapesImport.importDataset(options("a"))
        var one = options("b")
        one.workers = 1
        try ShapesImport.importDataset(one)
        XCTAssertEqual(try files(tmp.appendingPathComponent("a")), try files(tmp.appendingPathComponent("b")))
    }

    func testCaptionAndLabelSayWhatIsDrawn() throws {
        var seen = Set<String>()
        for index in 0..<300 {
            let (spec, image) = try SyntheticShapes.image(seed: 3, index: index, side: 32)
            func pixel(_ x: Int, _ y: Int) -> Image.RGB {
                let i = 3 * (y * 32 + x)
                return Image.RGB(image.pixels[i], image.pixels[i + 1], image.pixels[i + 2])
            }
            XCTAssertNotEqual(spec.colour, spec.background)
            for (x, y) in [(0, 0), (31, 0), (0, 31), (31, 31)] {
                XCTAssertEqual(pixel(x, y), spec.background.rgb, "\(index) \(spec.caption): corner (\(x), \(y))")
            }
            // The pixels around the shape's centre (3×3 for a large shape) are the shape's colour.
            let cx = Int(spec.centre.x), cy = Int(spec.centre.y), r = spec.size == .large ? 1 : 0
            for y in (cy - r)...(cy + r) {
                for x in (cx - r)...(cx + r) {
                    XCTAssertEqual(pixel(x, y), spec.colour.rgb, "\(index) \(spec.caption): centre (\(x), \(y))")
                }
            }
            let words = spec.caption.split(separator: " ").map(String.init)
            XCTAssertEqual(words, ["a", spec.size.rawValue, spec.colour.name, spec.shape.rawValue, "on", "a",
                                   spec.background.name, "background"])
            seen.insert(spec.shape.rawValue)
        }
        XCTAssertEqual(seen.count, SyntheticShapes.Shape.allCases.count)
        XCTAssertEqual(SyntheticShapes.distinctCaptions, 672)

        try ShapesImport.importDataset(options(count: 30))
        for (index, row) in try rows(tmp.appendingPathComponent("out")).enumerated() {
            let spec = SyntheticShapes.spec(seed: 1, index: index, side: 32)
            XCTAssertEqual(row["text"] as? String, spec.caption)
            XCTAssertEqual(row["label"] as? String, spec.shape.rawValue)
            XCTAssertEqual(row["colour"] as? String, spec.colour.name)
            XCTAssertEqual(row["background"] as? String, spec.background.name)
            XCTAssertEqual(row["size"] as? String, spec.size.rawValue)
            let file = try XCTUnwrap(row["file_name"] as? String)
            XCTAssertEqual(file, "images/00000/\(index).png")
            XCTAssertEqual(try Image(contentsOf: tmp.appendingPathComponent("out/\(file)")),
                           try SyntheticShapes.render(spec, side: 32))
        }
    }

    func testNoFolderHoldsMoreThanItsCap() throws {
        XCTAssertEqual(BoundedFolders.standard.filesPerFolder, 1000)
        XCTAssertEqual(BoundedFolders.standard.path(12_345, under: "images", name: "x.png"), "images/00012/x.png")
        XCTAssertEqual(BoundedFolders.standard.folder(999), "00000")
        XCTAssertEqual(BoundedFolders.standard.folder(1000), "00001")
        let summary = try ShapesImport.importDataset(options(count: 250, perFolder: 100))
        XCTAssertEqual(summary, ImportSummary(images: 250))
        let out = tmp.appendingPathComponent("out")
        let images = out.appendingPathComponent("images")
        let folders = try FileManager.default.contentsOfDirectory(atPath: images.path).sorted()
        XCTAssertEqual(folders, ["00000", "00001", "00002"])
        XCTAssertEqual(try folders.map { try FileManager.default.contentsOfDirectory(atPath: images.appendingPathComponent($0).path).count },
                       [100, 100, 50])
        let names = try rows(out).map { try XCTUnwrap($0["file_name"] as? String) }
        XCTAssertEqual(names.count, 250)
        XCTAssertEqual(names[199], "images/00001/199.png")
        // The top of the folder: the card, the metadata and the marker; no partial metadata left.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(),
                       [DatasetFolder.markerName, "LICENSE.md", "README.md", "images", "metadata.jsonl"])
        let readme = try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssert(readme.contains("672 distinct captions") && readme.contains("--count 250"), readme)
    }

    func testRerunLeavesACompleteFolderAloneAndOtherSettingsNeedForce() throws {
        var lines: [String] = []
        try ShapesImport.importDataset(options()) { lines.append($0) }
        XCTAssert(lines.contains { $0.hasPrefix("40/40 images (100%)") }, "\(lines)")
        XCTAssertEqual(lines.filter { $0.contains("images/s") }.count, 10, "a progress line every 10 %: \(lines)")
        let png = tmp.appendingPathComponent("out/images/00000/0.png")
        let before = try FileManager.default.attributesOfItem(atPath: png.path)[.modificationDate] as? Date
        XCTAssertEqual(try ShapesImport.importDataset(options()), ImportSummary(images: 40, alreadyComplete: true))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: png.path)[.modificationDate] as? Date, before)
        assertThrows({ try ShapesImport.importDataset(self.options(seed: 2)) }, contains: "made with other options")
        var forced = options(count: 12, seed: 2)
        forced.force = true
        XCTAssertEqual(try ShapesImport.importDataset(forced).images, 12)
        XCTAssertEqual(try rows(tmp.appendingPathComponent("out")).count, 12)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("out/images/00000/30.png").path))
    }

    func testKilledImportIsRebuiltToTheSameBytes() throws {
        try ShapesImport.importDataset(options("fresh", count: 25, perFolder: 10))
        try ShapesImport.importDataset(options(count: 25, perFolder: 10))
        let out = tmp.appendingPathComponent("out")
        // Simulate a kill: no marker, the in-progress file, a half-written metadata stream, a truncated image,
        // a missing one, no metadata.jsonl.
        let fm = FileManager.default
        try fm.removeItem(at: out.appendingPathComponent(DatasetFolder.markerName))
        try fm.removeItem(at: out.appendingPathComponent("metadata.jsonl"))
        try Data("started\n".utf8).write(to: out.appendingPathComponent(DatasetFolder.inProgressName))
        try Data(#"{"file_name": "images/00000/0.png""#.utf8).write(to: out.appendingPathComponent(MetadataStream.partialName))
        try Data("junk".utf8).write(to: out.appendingPathComponent("images/00001/13.png"))
        try fm.removeItem(at: out.appendingPathComponent("images/00002/21.png"))
        var lines: [String] = []
        XCTAssertEqual(try ShapesImport.importDataset(options(count: 25, perFolder: 10)) { lines.append($0) },
                       ImportSummary(images: 25))
        XCTAssert(lines.joined().contains("partial import"), "\(lines)")
        XCTAssertEqual(try files(out), try files(tmp.appendingPathComponent("fresh")))
    }

    /// A killed import of the same settings (its in-progress marker records them) keeps its images folder and the
    /// images it had written (same inode, same modification time: not written again), writes the missing and the
    /// empty one, and removes the temporary file a kill left; one of other settings is deleted first. Either way the
    /// result is byte-identical to a fresh import.
    func testKilledImportWithTheSameSettingsIsResumedInPlace() throws {
        let opts = options(count: 25, perFolder: 10)
        try ShapesImport.importDataset(options("fresh", count: 25, perFolder: 10))
        try ShapesImport.importDataset(opts)
        let out = tmp.appendingPathComponent("out"), fm = FileManager.default
        try fm.removeItem(at: out.appendingPathComponent(DatasetFolder.markerName))
        try Data(DatasetFolder.inProgressMarker(dataset: ShapesImport.name, settings: ShapesImport.settings(opts)))
            .write(to: out.appendingPathComponent(DatasetFolder.inProgressName))
        try Data().write(to: out.appendingPathComponent("images/00001/13.png"))  // created, not yet written
        try fm.removeItem(at: out.appendingPathComponent("images/00002/21.png"))
        try Data("half an image".utf8).write(to: out.appendingPathComponent("images/00002/.21.png.partial"))
        let kept = try fm.attributesOfItem(atPath: out.appendingPathComponent("images/00000").path)[.systemFileNumber]
        func identity(_ i: Int) -> [Int] {
            var s = stat()
            XCTAssertEqual(stat(out.appendingPathComponent("images/\(String(format: "%05d", i / 10))/\(i).png").path, &s), 0)
            return [Int(s.st_ino), Int(s.st_mtim.tv_sec), Int(s.st_mtim.tv_nsec)]
        }
        let finished = (0..<25).filter { $0 != 13 && $0 != 21 }
        let before = finished.map(identity)
        usleep(20_000)  // so that a rewritten file would have a later modification time
        var lines: [String] = []
        XCTAssertEqual(try ShapesImport.importDataset(opts) { lines.append($0) }, ImportSummary(images: 25))
        XCTAssert(lines.joined().contains("same settings found (no completion marker); resuming"), "\(lines)")
        XCTAssert(lines.contains("resumed: 23 of 25 images were already written and kept"), "\(lines)")
        XCTAssertEqual(finished.map(identity), before, "the finished images were not written again")
        XCTAssertEqual(try fm.attributesOfItem(atPath: out.appendingPathComponent("images/00000").path)[.systemFileNumber]
                       as? Int, kept as? Int, "the images folder was kept, not deleted and remade")
        XCTAssertEqual(try files(out), try files(tmp.appendingPathComponent("fresh")))
        XCTAssertTrue(ShapesImport.isCompletePNG(out.appendingPathComponent("images/00001/13.png").path))
        XCTAssertFalse(ShapesImport.isCompletePNG(out.appendingPathComponent("metadata.jsonl").path))
        // A partial import of another count: deleted (its extra images would otherwise stay), then rebuilt.
        try ShapesImport.importDataset(options("more", count: 30, perFolder: 10))
        let more = tmp.appendingPathComponent("more")
        try fm.removeItem(at: more.appendingPathComponent(DatasetFolder.markerName))
        try Data(DatasetFolder.inProgressMarker(dataset: ShapesImport.name, settings: ShapesImport.settings(
            options("more", count: 30, perFolder: 10)))).write(to: more.appendingPathComponent(DatasetFolder.inProgressName))
        lines = []
        try ShapesImport.importDataset(options("more", count: 25, perFolder: 10)) { lines.append($0) }
        XCTAssert(lines.joined().contains("partial import found (no completion marker); rebuilding"), "\(lines)")
        XCTAssertEqual(try files(more), try files(tmp.appendingPathComponent("fresh")))
    }

    /// The real `paris data import shapes` on a "full disk" (a file-size limit, `runProcess(fileSizeLimitKiB:)`):
    /// the metadata stream passes the limit, and the import stops with an error naming the file and the OS's
    /// reason; every image under its final name is whole and no temporary file is left; run again without the
    /// limit it keeps those images and ends byte-identical to an import that never failed.
    func testFullDiskStopsTheImportClearlyAndTheRerunResumes() throws {
        let paris = try parisBinary(self)
        let fresh = tmp.appendingPathComponent("fresh"), out = tmp.appendingPathComponent("out")
        let clean = try runProcess(paris, ["data", "import", "shapes", "--count", "3000", "--out", fresh.path])
        XCTAssertEqual(clean.status, 0, clean.output)
        let full = try runProcess(paris, ["data", "import", "shapes", "--count", "3000", "--out", out.path],
                                  fileSizeLimitKiB: 100)
        XCTAssertNotEqual(full.status, 0, full.output)
        XCTAssertTrue(full.output.contains("\(MetadataStream.partialName): write failed: File too large"), full.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(DatasetFolder.markerName).path))
        let written = try files(out).keys.filter { $0.hasPrefix("images/") }
        XCTAssertGreaterThan(written.count, 0)
        XCTAssertLessThan(written.count, 3000)
        for name in written {
            XCTAssertTrue(ShapesImport.isCompletePNG(out.appendingPathComponent(name).path), name)
            XCTAssertFalse(name.hasSuffix(".partial"), name)
        }
        let resumed = try runProcess(paris, ["data", "import", "shapes", "--count", "3000", "--out", out.path])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed: \(written.count) of 3000 images were already written and kept"),
                      resumed.output)
        XCTAssertEqual(try files(out), try files(fresh))
    }

    /// 64 images on one sheet (8 × 8 tiles of 34 px); set PARIS_SHAPES_SHEET=/path.png to keep it and look at it.
    func testContactSheet() throws {
        let sheet = try SyntheticShapes.contactSheet(seed: 0, count: 64, side: 32)
        XCTAssertEqual([sheet.width, sheet.height, sheet.channels], [272, 272, 3])
        XCTAssertEqual(Array(sheet.pixels[(3 * (272 * 33 + 33))...].prefix(3)), [255, 255, 255])  // the gap
        if let path = ProcessInfo.processInfo.environment["PARIS_SHAPES_SHEET"] {
            try sheet.writePNG(to: URL(fileURLWithPath: path))
        }
    }

    func testBadInputHasClearErrors() {
        assertThrows({ try ShapesImport.importDataset(self.options(count: 0)) }, contains: "--count must be positive, not 0")
        var o = options()
        o.size = 4
        assertThrows({ try ShapesImport.importDataset(o) }, contains: "--size must be between 8 and 256 pixels, not 4")
        o.size = 300
        assertThrows({ try ShapesImport.importDataset(o) }, contains: "not 300")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("out").path))
    }

    /// The imported folder partitions: by label (one shape a cluster) and by k-means on mean-colour features.
    func testImportedFolderPartitions() throws {
        try ShapesImport.importDataset(options(count: 60, perFolder: 25))
        let data = tmp.appendingPathComponent("out")
        XCTAssertEqual(try ImageFolder.read(data).count, 60)
        let encoders = PartitionEncoders.fakes
        var config = PartitionConfig.tiny
        config.numClusters = 6
        config.method = .label
        config.imageSize = 8
        config.seed = 5
        config.features = .image
        let out = tmp.appendingPathComponent("run/partition")
        let byShape = try Partitioner.run(dataset: data, output: out, config: config, encoders: encoders)
        XCTAssertEqual(byShape.numImages, 60)
        XCTAssertEqual(byShape.sizes.reduce(0, +), 60)
        XCTAssertEqual(byShape.metrics?.purity, 1.0)
        for k in 0..<6 {
            let shard = try Shard.load(from: out.appendingPathComponent("shard_\(k)"), expectedCluster: k)
            XCTAssertEqual(Set(shard.items.compactMap(\.label)).count, 1)
            XCTAssertEqual(shard.images.shape, [shard.info.count, 3, 8, 8])
        }
        config.method = .kmeans
        config.numClusters = 3
        let byColour = try Partitioner.run(dataset: data, output: out, config: config, encoders: encoders, overwrite: true)
        XCTAssertEqual(byColour.sizes.reduce(0, +), 60)
    }
}
