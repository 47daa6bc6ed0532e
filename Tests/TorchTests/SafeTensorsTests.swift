import CTorch
import Foundation
import XCTest

@testable import Torch

/// The raw fixture file `Fixtures/<name>`.
func fixtureURL(_ name: String) throws -> URL {
    let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
    guard let url = Bundle.module.url(forResource: parts[0], withExtension: parts.count > 1 ? parts[1] : nil,
                                      subdirectory: "Fixtures") else {
        throw TorchError("missing fixture \(name): run scripts/make_fixtures.sh io")
    }
    return url
}

/// A fresh temporary folder, removed at the end of the test.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-io-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

/// What io.py recorded about each tensor of io_dtypes.safetensors, independently of the safetensors format.
struct DTypeRecord {
    struct Entry {
        let dtype: String
        let shape: [Int]
        let bytes: [UInt8]
    }
    let metadata: [String: String]
    let tensors: [String: Entry]

    static func load() throws -> DTypeRecord {
        let data = try Data(contentsOf: try fixtureURL("io_dtypes.json"))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        var tensors: [String: Entry] = [:]
        for (k, v) in root["tensors"] as! [String: [String: Any]] {
            let hex = Array((v["hex"] as! String).utf8)
            let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
            tensors[k] = Entry(dtype: v["dtype"] as! String, shape: v["shape"] as! [Int], bytes: bytes)
        }
        return DTypeRecord(metadata: root["metadata"] as! [String: String], tensors: tensors)
    }

    /// The recorded tensors rebuilt from their raw bytes (never through a safetensors reader).
    func rebuild(_ names: [String]? = nil) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for name in names ?? Array(tensors.keys) {
            let e = tensors[name]!
            let dtype = try XCTUnwrap(SafeTensors.dtype(named: e.dtype))
            out[name] = try e.bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: e.shape, dtype: dtype) }
        }
        return out
    }
}

final class SafeTensorsTests: XCTestCase {
    // MARK: reading Python's files

    func testReadsPythonFileBitForBit() throws {
        let record = try DTypeRecord.load()
        let file = try SafeTensors.load(try fixtureURL("io_dtypes.safetensors"))
        XCTAssertEqual(Set(file.names), Set(record.tensors.keys))
        XCTAssertEqual(file.names.count, record.tensors.count)
        XCTAssertEqual(file.metadata, record.metadata)
        for (name, e) in record.tensors {
            let t = try file.tensor(name)
            XCTAssertEqual(SafeTensors.name(of: t.dtype), e.dtype, name)
            XCTAssertEqual(t.shape, e.shape, name)
            XCTAssertEqual(try t.bytes(), e.bytes, "\(name): bytes differ")
            XCTAssertEqual(t.device, .cpu)
        }
        // Every supported dtype is covered, plus rank 0 and an empty tensor.
        XCTAssertEqual(Set(record.tensors.values.map(\.dtype)), Set(DType.allCases.map { SafeTensors.name(of: $0) }))
        XCTAssertEqual(try file.tensor("scalar").shape, [])
        XCTAssertEqual(try file.tensor("scalar").item(), 3.5)
        XCTAssertEqual(try file.tensor("empty").shape, [0, 3])
        XCTAssertEqual(try file.tensor("naïve_名前").toArray(as: Float.self), [1, 2])
        XCTAssertThrowsError(try file.tensor("nope")) { XCTAssertTrue("\($0)".contains("no tensor named 'nope'")) }
    }

    func testLoadedTensorsPointIntoTheMappedFile() throws {
        let file = try SafeTensors.load(try fixtureURL("io_dtypes.safetensors"))
        let entries = Dictionary(uniqueKeysWithValues: file.entries.map { ($0.name, $0) })
        let a = try file.tensor("f32"), b = try file.tensor("i64")
        let pa = Int(bitPattern: ct_data_ptr(a.handle)), pb = Int(bitPattern: ct_data_ptr(b.handle))
        XCTAssertEqual(pb - pa, entries["i64"]!.byteRange.lowerBound - entries["f32"]!.byteRange.lowerBound,
                       "tensors should be views of one mapping, not copies")
    }

    func testInPlaceOpOnLoadedTensorChangesNeitherFileNorCrashes() throws {
        let url = try fixtureURL("io_plain.safetensors")
        let before = try Data(contentsOf: url)
        var t: Tensor? = try SafeTensors.load(url).tensor("f32")
        try t!.mul_(2)
        try t!.add_(1)
        XCTAssertEqual(try Data(contentsOf: url), before)
        // The mapping outlives the file struct: the tensor is still readable after everything else is gone.
        let values = try t!.toArray(as: Float.self)
        XCTAssertEqual(values.count, 12)
        t = nil
        let again = try SafeTensors.load(url).tensor("f32")
        XCTAssertEqual(try again.toArray(as: Float.self).map { $0 * 2 + 1 }, values)
    }

    func testMappingLivesExactlyAsLongAsItsTensors() throws {
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("mapped.safetensors")
        try SafeTensors.save(["a": try Tensor.ones([64]), "b": try Tensor.zeros([8], dtype: .int64)], to: url)
        let before = Mapping.live
        var b: Tensor?
        do {
            let file = try SafeTensors.load(url)
            b = try file.tensor("b")
            XCTAssertEqual(Mapping.live, before + 1)
        }
        XCTAssertEqual(Mapping.live, before + 1, "a live tensor keeps the mapping")
        XCTAssertEqual(try b!.toArray(as: Int64.self), [Int64](repeating: 0, count: 8))
        let c = try b!.reshape([2, 4])  // a view shares the storage, and so the mapping
        b = nil
        XCTAssertEqual(Mapping.live, before + 1, "a view keeps the mapping")
        XCTAssertEqual(c.shape, [2, 4])
        _ = consume c
        XCTAssertEqual(Mapping.live, before, "the mapping is released with the last tensor")
        _ = try SafeTensors.header(url)
        XCTAssertEqual(Mapping.live, before, "reading only the header releases the mapping at once")
        XCTAssertThrowsError(try SafeTensors.load(try fixtureURL("io_dtypes.json")))
        XCTAssertEqual(Mapping.live, before, "a failed load releases the mapping")
    }

    func testMisalignedDataIsCopied() throws {
        // Other writers may leave the data unaligned (the header need not be padded): such tensors are copied.
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("odd.safetensors")
        var h = Array(#"{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#.utf8)
        while (8 + h.count) % 8 != 3 { h.append(0x20) }
        let values: [Double] = [1.5, -2.25]
        let data = values.withUnsafeBytes { Array($0) }
        try Data(withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + data).write(to: url)
        let x = try SafeTensors.load(url).tensor("x")
        XCTAssertEqual(try x.toArray(as: Double.self), values)
        XCTAssertEqual(Int(bitPattern: ct_data_ptr(x.handle)) % 8, 0)
    }

    func testLoadOntoCUDA() throws {
        guard Runtime.cudaIsAvailable else { throw XCTSkip("no CUDA device") }
        let file = try SafeTensors.load(try fixtureURL("io_dtypes.safetensors"), device: .cuda(0))
        let record = try DTypeRecord.load()
        for (name, e) in record.tensors {
            let t = try file.tensor(name)
            XCTAssertEqual(t.device, .cuda(0))
            XCTAssertEqual(try t.bytes(), e.bytes, name)
        }
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("gpu.safetensors")
        try SafeTensors.save(file.tensors, to: url, metadata: record.metadata)
        XCTAssertEqual(try SafeTensors.load(url).tensors.count, record.tensors.count)
    }

    // MARK: writing like Python

    func testWriterIsByteIdenticalToPython() throws {
        // io_plain.safetensors: Python's save_file with metadata {"format": "pt"}, fully reproducible.
        let record = try DTypeRecord.load()
        let tensors = try record.rebuild(["f32", "bf16", "i64", "bool", "scalar", "empty", "u8"])
        let python = [UInt8](try Data(contentsOf: try fixtureURL("io_plain.safetensors")))
        XCTAssertEqual(try SafeTensors.serialize(tensors), python)
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("plain.safetensors")
        try SafeTensors.save(tensors, to: url)
        XCTAssertEqual([UInt8](try Data(contentsOf: url)), python)
    }

    func testWriterMatchesPythonWithUserMetadata() throws {
        // Python orders __metadata__ keys at random (a Rust HashMap); everything else must be identical.
        let record = try DTypeRecord.load()
        let python = [UInt8](try Data(contentsOf: try fixtureURL("io_dtypes.safetensors")))
        let ours = try SafeTensors.serialize(try record.rebuild(), metadata: record.metadata)
        XCTAssertEqual(ours.count, python.count)
        let open = Array("{\"__metadata__\":".utf8)
        XCTAssertEqual(Array(python[8..<(8 + open.count)]), open)
        XCTAssertEqual(Array(ours[0..<(8 + open.count)]), Array(python[0..<(8 + open.count)]))
        // The metadata object ends at the first '}' not inside a string: find it in ours, compare the rest.
        var i = 8 + open.count, inString = false, escaped = false
        while true {
            let c = ours[i]
            if inString {
                if escaped { escaped = false } else if c == 0x5C { escaped = true } else if c == 0x22 { inString = false }
            } else if c == 0x22 {
                inString = true
            } else if c == UInt8(ascii: "}") {
                break
            }
            i += 1
        }
        XCTAssertEqual(Array(ours[(i + 1)...]), Array(python[(i + 1)...]), "tensor entries or data differ")
        let pm = try SafeTensors.load(try fixtureURL("io_dtypes.safetensors")).metadata
        XCTAssertEqual(pm, record.metadata)
    }

    func testHeaderIsPaddedToEightBytesAndSortedLikeTheReference() throws {
        let t: [String: Tensor] = [
            "b": try Tensor([Int8(1)]), "a": try Tensor([Int8(1)]), "z": try Tensor([1.0] as [Double]),
            "m": try Tensor([Float(1)]), "h": try Tensor.zeros([1], dtype: .bfloat16), "i": try Tensor([Int64(1)]),
            "f": try Tensor.zeros([1], dtype: .float16), "q": try Tensor([true]), "u": try Tensor([UInt8(1)]),
        ]
        let bytes = try SafeTensors.serialize(t)
        let n = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(n % 8, 0)
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("x.safetensors")
        try SafeTensors.save(t, to: url)
        XCTAssertEqual(try SafeTensors.load(url).names, ["i", "z", "m", "h", "f", "a", "b", "u", "q"])
    }

    // MARK: round trips

    func testRoundTripSwiftToSwift() throws {
        Runtime.manualSeed(1)
        let base = try Tensor.randn([4, 6])
        var tensors: [String: Tensor] = [
            "transposed": try base.transpose(0, 1),  // non-contiguous
            "slice": try base.slice(1, 2, 5),
            "scalar": try Tensor(scalar: -2.25, dtype: .float64),
            "empty": try Tensor.zeros([3, 0, 2], dtype: .int32),
            "quote\"back\\slash\nnewline/é": try Tensor([Float(7)]),
        ]
        for d in DType.allCases { tensors["d.\(d)"] = try Tensor.randint(0, 100, [2, 3]).to(dtype: d) }
        let meta = ["step": "1200", "config": "{\"depth\": 12}", "ünïcode": "✓\u{1}"]
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("round.safetensors")
        try SafeTensors.save(tensors, to: url, metadata: meta)
        let back = try SafeTensors.load(url)
        XCTAssertEqual(back.metadata, meta.merging(["format": "pt"]) { a, _ in a })
        XCTAssertEqual(Set(back.names), Set(tensors.keys))
        for (k, t) in tensors {
            let u = try back.tensor(k)
            XCTAssertEqual(u.shape, t.shape, k)
            XCTAssertEqual(u.dtype, t.dtype, k)
            XCTAssertEqual(try u.bytes(), try t.bytes(), k)
        }
        // Saving what was loaded gives the same file again.
        let url2 = dir.appendingPathComponent("round2.safetensors")
        try SafeTensors.save(back.tensors, to: url2, metadata: back.metadata)
        XCTAssertEqual(try Data(contentsOf: url2), try Data(contentsOf: url))
    }

    func testSaveIsAtomicAndLeavesNoTemporaryFiles() throws {
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try SafeTensors.save(["a": try Tensor([Float(1)])], to: url)
        try SafeTensors.save(["a": try Tensor([Float(2)])], to: url)
        XCTAssertEqual(try SafeTensors.load(url).tensor("a").toArray(as: Float.self), [2])
        // A failing save leaves the old file and no temporary.
        XCTAssertThrowsError(try SafeTensors.save(["__metadata__": try Tensor([Float(3)])], to: url)) {
            XCTAssertTrue("\($0)".contains("reserved"), "\($0)")
        }
        XCTAssertThrowsError(try SafeTensors.save(["a": try Tensor([Float(3)])], to: url, metadata: ["format": "tf"])) {
            XCTAssertTrue("\($0)".contains("format"), "\($0)")
        }
        XCTAssertEqual(try SafeTensors.load(url).tensor("a").toArray(as: Float.self), [2])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt.safetensors"])
        let attrs = try FileManager.default.attributesOfItem(atPath: url.path)
        XCTAssertEqual((attrs[.posixPermissions] as! Int) & 0o044, 0o044 & ~Int(currentUmask()), "mkstemp's 0600 was not widened")
        XCTAssertThrowsError(try SafeTensors.save(["a": try Tensor([Float(1)])],
                                                  to: dir.appendingPathComponent("missing/x.safetensors"))) {
            XCTAssertTrue("\($0)".contains("does not exist"), "\($0)")
        }
    }

    /// Python's safetensors (its numpy side: no torch) reads the file we write from io_dtypes.json's record: the
    /// same tensor names, dtypes, shapes and raw bytes, and the same metadata.
    func testPythonReadsSwiftFiles() throws {
        let record = try DTypeRecord.load()
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("swift.safetensors")
        try SafeTensors.save(try record.rebuild(), to: url, metadata: record.metadata)
        guard let python = try interopPython("Python's safetensors reading Swift's file") else { return }
        // numpy has no bfloat16: ml_dtypes registers one, which safetensors.numpy then uses for BF16 tensors.
        let script = """
            import json, sys
            import ml_dtypes, numpy as np
            from safetensors import safe_open
            from safetensors.numpy import load_file
            assert sys.byteorder == "little"  # tobytes() below is in the machine's order; the file's is little-endian
            NUMPY = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32,
                     "I64": np.int64, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F32": np.float32,
                     "F64": np.float64}
            record = json.load(open(sys.argv[2], encoding="utf-8"))
            tensors = load_file(sys.argv[1])
            assert set(tensors) == set(record["tensors"]), (sorted(tensors), sorted(record["tensors"]))
            with safe_open(sys.argv[1], framework="numpy") as f:
                assert f.metadata() == record["metadata"], f.metadata()
                assert set(f.keys()) == set(record["tensors"]), sorted(f.keys())
                for k, e in record["tensors"].items():
                    header = f.get_slice(k)
                    assert header.get_dtype() == e["dtype"], (k, header.get_dtype(), e["dtype"])
                    assert header.get_shape() == e["shape"], (k, header.get_shape(), e["shape"])
                    t = tensors[k]
                    assert t.dtype == np.dtype(NUMPY[e["dtype"]]), (k, t.dtype, e["dtype"])
                    assert list(t.shape) == e["shape"], (k, t.shape, e["shape"])
                    assert t.tobytes().hex() == e["hex"], (k, t.tobytes().hex(), e["hex"])
                    assert f.get_tensor(k).tobytes() == t.tobytes(), k
            print("python-ok", len(tensors))
            """
        let p = Process()
        p.executableURL = python
        p.arguments = ["-c", script, url.path, try fixtureURL("io_dtypes.json").path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("python-ok \(record.tensors.count)"), text)
    }

    // MARK: bad files

    /// Writes a file made of an 8-byte length, `header` and `data`, then expects `load` to fail with `expected`.
    private func expectFailure(header: String, data: [UInt8] = [], length: UInt64? = nil, _ expected: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let h = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { Array($0) }
        bytes += h + data
        try expectFailure(bytes: bytes, expected, file: file, line: line)
    }

    private func expectFailure(bytes: [UInt8], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("bad.safetensors")
        try Data(bytes).write(to: url)
        XCTAssertThrowsError(try SafeTensors.load(url), file: file, line: line) { error in
            guard let e = error as? TorchError else { return XCTFail("not a TorchError: \(error)", file: file, line: line) }
            XCTAssertTrue(e.message.contains(expected), "message: \(e.message)\nexpected: \(expected)", file: file, line: line)
            XCTAssertTrue(e.message.contains(url.path), "the message should name the file: \(e.message)", file: file, line: line)
        }
    }

    private let f32 = #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    private let eight = [UInt8](repeating: 0, count: 8)

    func testMissingFile() throws {
        let url = URL(fileURLWithPath: "/nonexistent/paris/x.safetensors")
        XCTAssertThrowsError(try SafeTensors.load(url)) {
            XCTAssertEqual("\($0)", "/nonexistent/paris/x.safetensors: no such file")
        }
    }

    func testTruncatedFiles() throws {
        try expectFailure(bytes: [], "the file is 0 bytes, shorter than the 8-byte header length")
        try expectFailure(bytes: [8, 0, 0], "the file is 3 bytes")
        try expectFailure(header: "{\(f32)}", data: [0, 0, 0, 0], "tensor data ends at byte 8 of the data buffer, but the file holds only 4")
        // A real file, cut in the middle of its data.
        let full = [UInt8](try Data(contentsOf: try fixtureURL("io_plain.safetensors")))
        try expectFailure(bytes: Array(full.prefix(full.count - 3)), "truncated file?")
        try expectFailure(bytes: Array(full.prefix(100)), "the header length is 456 bytes but only 92 bytes follow it")
    }

    func testHeaderLengthLimits() throws {
        try expectFailure(header: "{}", length: 100_000_008, "the header length is 100000008 bytes, over the format's limit of 100000000")
        try expectFailure(header: "{}", length: UInt64.max, "over the format's limit")
        try expectFailure(header: "{}", length: 64, "the header length is 64 bytes but only 2 bytes follow it")
    }

    func testHeaderNotJSON() throws {
        try expectFailure(header: "{not json}", "the header is not valid JSON: expected a string key at header byte 1")
        try expectFailure(header: "{\"a\": {\"dtype\": \"F32\",", "the header is not valid JSON")
        try expectFailure(header: "{\(f32)} x", data: eight, "unexpected data after the JSON value")
        var bad = Array("{\"\u{E9}\":1}".utf8)
        bad[2] = 0xFF
        try expectFailure(bytes: withUnsafeBytes(of: UInt64(bad.count).littleEndian) { Array($0) } + bad, "not valid UTF-8")
    }

    func testHeaderNotAnObject() throws {
        try expectFailure(header: "[1, 2]  ", "the header is not a JSON object: it does not start with '{'")
        try expectFailure(header: "  {}    ", "the header is not a JSON object: it does not start with '{'")
        try expectFailure(header: "{\"a\": [1]}", "the entry for 'a' is an array, expected an object")
    }

    func testBadDTypes() throws {
        try expectFailure(header: #"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#, data: .init(repeating: 0, count: 16),
                          #"tensor 'a' has unknown dtype "F128""#)
        try expectFailure(header: #"{"a":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0],
                          "'a'.dtype is a number, expected a string")
        // U16 is valid safetensors: the header reads, loading says Paris does not support it.
        try expectFailure(header: #"{"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0],
                          "tensor 'a' has dtype U16, which safetensors defines but Paris does not support")
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("u16.safetensors")
        let h = Array(#"{"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[4,7]}}"#.utf8)
        try Data(withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + [UInt8](repeating: 0, count: 7)).write(to: url)
        let header = try SafeTensors.header(url)
        XCTAssertEqual(header.entries.map(\.dtypeName), ["U16", "F8_E4M3"])
        XCTAssertEqual(header.entries.map(\.dtype), [nil, nil])
        XCTAssertEqual(header.parameterCount, 5)
    }

    func testShapeAndOffsetsMismatch() throws {
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight,
                          "tensor 'a' (F32, shape [3]) needs 12 bytes, but its data_offsets [0, 8] span 8")
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight,
                          "'a'.shape holds a negative or non-integer number")
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: eight,
                          "data_offsets must be [BEGIN, END] with BEGIN <= END")
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, data: eight,
                          "data_offsets must be [BEGIN, END]")
        try expectFailure(header: #"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, data: eight, "the entry for 'a' has no shape")
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: eight,
                          "element count overflows")
    }

    func testOffsetsMustCoverTheBufferExactly() throws {
        // A hole between two tensors.
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                          data: .init(repeating: 0, count: 12), "bytes [4, 8) of the data buffer belong to no tensor (a hole before tensor 'b')")
        // A hole at the start.
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight, "bytes [0, 4) of the data buffer belong to no tensor")
        // Trailing bytes after the last tensor.
        try expectFailure(header: "{\(f32)}", data: eight + [1, 2], "the tensors cover 8 bytes, but the data buffer holds 10 bytes")
        // Out of range.
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: eight,
                          "tensor data ends at byte 16 of the data buffer, but the file holds only 8")
    }

    func testOverlappingOffsets() throws {
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                          data: eight, "tensor 'b' at bytes [4, 8) overlaps tensor 'a', which ends at byte 8")
        try expectFailure(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                          data: eight, "overlaps tensor 'a'")
    }

    func testDuplicateKeys() throws {
        try expectFailure(header: "{\(f32),\(f32)}", data: eight, #"duplicate key "a""#)
        try expectFailure(header: #"{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight, #"duplicate key "dtype""#)
        try expectFailure(header: #"{"__metadata__":{"k":"1","k":"2"},"# + f32 + "}", data: eight, #"duplicate key "k""#)
    }

    func testMetadataMustMapStringsToStrings() throws {
        try expectFailure(header: #"{"__metadata__":{"step":1200},"# + f32 + "}", data: eight,
                          "__metadata__ value for 'step' is a number; metadata values must be strings")
        try expectFailure(header: #"{"__metadata__":{"cfg":{"a":"b"}},"# + f32 + "}", data: eight,
                          "__metadata__ value for 'cfg' is an object")
        try expectFailure(header: #"{"__metadata__":"pt","# + f32 + "}", data: eight, "__metadata__ is a string, expected an object of strings")
    }

    func testEdgeCasesThatAreValid() throws {
        let dir = try temporaryFolder(self)
        // No tensors at all, only metadata; escapes in names; spaces in the header; unknown entry fields.
        let url = dir.appendingPathComponent("edge.safetensors")
        let h = Array(#"{ "__metadata__" : { "k\u00e9" : "v\n" } , "a\"b" : {"dtype":"F32","shape":[],"data_offsets":[0,4],"extra":1} , "e":{"dtype":"I64","shape":[0],"data_offsets":[4,4]}}   "#.utf8)
        try Data(withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + [0, 0, 0x80, 0x3F]).write(to: url)
        let f = try SafeTensors.load(url)
        XCTAssertEqual(f.metadata, ["ké": "v\n"])
        XCTAssertEqual(f.names, ["a\"b", "e"])
        XCTAssertEqual(try f.tensor("a\"b").item(), 1)
        XCTAssertEqual(try f.tensor("e").shape, [0])
        let empty = dir.appendingPathComponent("empty.safetensors")
        try SafeTensors.save([String: Tensor](), to: empty)
        XCTAssertEqual(try SafeTensors.load(empty).names, [])
        XCTAssertEqual(try SafeTensors.load(empty).metadata, ["format": "pt"])
    }
}

private func currentUmask() -> mode_t {
    let m = umask(0)
    umask(m)
    return m
}
