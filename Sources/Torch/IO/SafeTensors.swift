import CTorch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The safetensors format (huggingface/safetensors), read and written exactly per its specification:
///
/// - bytes 0..<8: N, the header's length, a little-endian UInt64 (at most 100,000,000);
/// - N bytes of UTF-8 JSON starting with `{`, possibly padded at the end with spaces:
///   `{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...}`;
/// - the byte buffer: each tensor's little-endian, row-major bytes at [BEGIN, END) relative to the buffer's start.
///   Tensors cover the buffer exactly, with no hole and no overlap; names are unique.
///
/// Reading maps the file (`mmap`, `MAP_PRIVATE`) and wraps each tensor in place, without copying: the mapping stays
/// alive until the last tensor that points into it is freed. The mapping is private and writable, so an in-place
/// operation on a loaded tensor changes only this process's copy of the page, never the file. A tensor whose bytes
/// are not aligned to its element size is copied instead (this never happens with files from the reference writer or
/// from `save`, which order tensors by decreasing alignment after an 8-byte-aligned header). As with any mapped
/// file, truncating the file while its tensors are alive makes reading them fault: write a new file and rename it
/// over the old one instead (which `save` does).
///
/// Writing follows the reference writer so that the bytes equal Python's `safetensors.torch.save_file` for the same
/// tensors and metadata: tensors sorted by decreasing dtype alignment then by name, packed back to back, the header
/// compact JSON padded with spaces to a multiple of 8. `__metadata__` always holds `"format": "pt"`, which
/// `transformers` requires. (Python's writer orders the metadata keys at random — a Rust HashMap — so with more
/// than one key the files differ only in that order; this writer sorts them.) The write is atomic: a temporary file
/// in the same folder, flushed, then renamed over the target.
public enum SafeTensors {
    /// The spec's limit on the header's length (the reference implementation's `MAX_HEADER_SIZE`).
    public static let maxHeaderSize = 100_000_000

    /// Every dtype name the specification defines, in the reference implementation's enum order (increasing
    /// alignment), with its size in bits. Paris reads and writes those that map to a `DType`.
    static let specDTypes: [(name: String, bits: Int)] = [
        ("BOOL", 8), ("F4", 4), ("F6_E2M3", 6), ("F6_E3M2", 6), ("U8", 8), ("I8", 8), ("F8_E5M2", 8), ("F8_E4M3", 8),
        ("F8_E8M0", 8), ("F8_E4M3FNUZ", 8), ("F8_E5M2FNUZ", 8), ("I16", 16), ("U16", 16), ("F16", 16), ("BF16", 16),
        ("I32", 32), ("U32", 32), ("F32", 32), ("C64", 64), ("F64", 64), ("I64", 64), ("U64", 64),
    ]

    /// The safetensors name of a dtype.
    public static func name(of dtype: DType) -> String {
        switch dtype {
        case .bool: "BOOL"
        case .uint8: "U8"
        case .int8: "I8"
        case .int16: "I16"
        case .float16: "F16"
        case .bfloat16: "BF16"
        case .int32: "I32"
        case .float32: "F32"
        case .float64: "F64"
        case .int64: "I64"
        }
    }

    /// The dtype a safetensors name stands for, or nil for names Paris does not support (or that do not exist).
    public static func dtype(named name: String) -> DType? {
        DType.allCases.first { Self.name(of: $0) == name }
    }

    /// The supported names, for error messages.
    static var supportedNames: String { DType.allCases.map { name(of: $0) }.joined(separator: ", ") }

    /// The reference writer's sort key: the position of the dtype in its enum (increasing alignment).
    static func rank(of dtype: DType) -> Int {
        specDTypes.firstIndex { $0.name == name(of: dtype) }!
    }

    // MARK: reading

    /// Maps `url` and returns its tensors (CPU, zero-copy) and metadata. Throws a `TorchError` naming the file and the
    /// problem for anything that breaks the format.
    public static func load(_ url: URL) throws -> SafeTensorsFile {
        try read(try Mapping(url), url: url)
    }

    /// Reads safetensors bytes held in memory (an HTTP body), with every check `load` makes; `name` stands for the
    /// file in errors ("request body: …") and in the result's `url`. The bytes are copied once.
    public static func decode(_ bytes: [UInt8], name: String) throws -> SafeTensorsFile {
        try read(Mapping(bytes: bytes, name: name), url: URL(fileURLWithPath: name))
    }

    static func read(_ mapping: Mapping, url: URL) throws -> SafeTensorsFile {
        let header = try SafeTensorsHeader(mapping: mapping)
        var tensors: [String: Tensor] = [:]
        tensors.reserveCapacity(header.entries.count)
        for entry in header.entries {
            guard let dtype = entry.dtype else {
                throw TorchError("\(url.path): tensor '\(entry.name)' has dtype \(entry.dtypeName), which safetensors "
                    + "defines but Paris does not support (supported: \(supportedNames))")
            }
            tensors[entry.name] = try mapping.tensor(at: header.dataStart + entry.byteRange.lowerBound,
                                                     shape: entry.shape, dtype: dtype)
        }
        return SafeTensorsFile(url: url, names: header.entries.map(\.name), tensors: tensors,
                               metadata: header.metadata, entries: header.entries)
    }

    /// Loads `url` and moves every tensor to `device` (a no-op on the CPU).
    public static func load(_ url: URL, device: Device) throws -> SafeTensorsFile {
        let file = try load(url)
        if device == .cpu { return file }
        var moved: [String: Tensor] = [:]
        for (k, t) in file.tensors { moved[k] = try t.to(device: device) }
        return SafeTensorsFile(url: url, names: file.names, tensors: moved, metadata: file.metadata,
                               entries: file.entries)
    }

    /// Reads and validates only the header: names, dtypes, shapes and metadata, without making tensors. Unlike
    /// `load`, dtypes that the spec defines but Paris does not support (U16, F8_E4M3, ...) are accepted here.
    public static func header(_ url: URL) throws -> SafeTensorsHeader {
        try SafeTensorsHeader(mapping: try Mapping(url))
    }

    // MARK: writing

    /// Writes `tensors` to `url` atomically. `metadata` is merged with `"format": "pt"` (a different `format` is
    /// refused: these are PyTorch-layout tensors). Tensors may live on any device and need not be contiguous.
    public static func save(_ tensors: [String: Tensor], to url: URL, metadata: [String: String] = [:]) throws {
        try AtomicFile.write(to: url) { handle in
            try serialize(tensors, metadata: metadata, path: url.path) { chunk in try handle.write(chunk) }
        }
    }

    /// Same as `save`, with tensors given as an ordered list (the order does not matter: the format sorts them).
    public static func save(_ tensors: [(String, Tensor)], to url: URL, metadata: [String: String] = [:]) throws {
        try save(try uniqueDictionary(tensors), to: url, metadata: metadata)
    }

    /// The bytes of a safetensors file holding `tensors` (what `save` writes).
    public static func serialize(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> [UInt8] {
        var out: [UInt8] = []
        try serialize(tensors, metadata: metadata, path: "safetensors") { out.append(contentsOf: $0) }
        return out
    }

    static func uniqueDictionary(_ tensors: [(String, Tensor)]) throws -> [String: Tensor] {
        var d: [String: Tensor] = [:]
        for (k, t) in tensors {
            if d.updateValue(t, forKey: k) != nil { throw TorchError("safetensors: duplicate tensor name '\(k)'") }
        }
        return d
    }

    /// Emits the file in chunks: the 8-byte length with the padded header, then each tensor's bytes in storage order.
    static func serialize(_ tensors: [String: Tensor], metadata: [String: String], path: String,
                          emit: ([UInt8]) throws -> Void) throws {
        if let f = metadata["format"], f != "pt" {
            throw TorchError("\(path): metadata 'format' must be \"pt\" (Paris writes PyTorch-layout tensors), got \"\(f)\"")
        }
        if tensors["__metadata__"] != nil {
            throw TorchError("\(path): '__metadata__' is reserved by the safetensors format and cannot name a tensor")
        }
        for (name, t) in tensors where DType(rawValue: ct_dtype(t.handle)) == nil {
            throw TorchError("\(path): tensor '\(name)' has libtorch dtype number \(ct_dtype(t.handle)), which Paris "
                + "cannot write (supported: \(supportedNames))")
        }
        var meta = metadata
        meta["format"] = "pt"
        let order = tensors.map { (name: $0.key, tensor: $0.value, dtype: $0.value.dtype) }.sorted { a, b in
            let ra = rank(of: a.dtype), rb = rank(of: b.dtype)
            if ra != rb { return ra > rb }
            return Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
        }
        var json: [UInt8] = [UInt8(ascii: "{")]
        json.append(contentsOf: Array("\"__metadata__\":{".utf8))
        for (i, key) in meta.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).enumerated() {
            if i > 0 { json.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(key, to: &json)
            json.append(UInt8(ascii: ":"))
            JSONWriter.appendString(meta[key]!, to: &json)
        }
        json.append(UInt8(ascii: "}"))
        var offset = 0
        for item in order {
            let nbytes = item.tensor.count * item.dtype.size
            json.append(UInt8(ascii: ","))
            JSONWriter.appendString(item.name, to: &json)
            json.append(contentsOf: Array(":{\"dtype\":\"\(name(of: item.dtype))\",\"shape\":[".utf8))
            for (i, d) in item.tensor.shape.enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                JSONWriter.appendInt(d, to: &json)
            }
            json.append(contentsOf: Array("],\"data_offsets\":[".utf8))
            JSONWriter.appendInt(offset, to: &json)
            json.append(UInt8(ascii: ","))
            JSONWriter.appendInt(offset + nbytes, to: &json)
            json.append(contentsOf: Array("]}".utf8))
            offset += nbytes
        }
        json.append(UInt8(ascii: "}"))
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        guard json.count <= maxHeaderSize else {
            throw TorchError("\(path): the header would be \(json.count) bytes, over the format's limit of \(maxHeaderSize)")
        }
        var prefix = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { prefix = Array($0) }
        try emit(prefix + json)
        for item in order where item.tensor.count > 0 {
            try emit(try item.tensor.bytes())
        }
    }
}

/// A loaded safetensors file.
public struct SafeTensorsFile: @unchecked Sendable {
    public let url: URL
    /// Tensor names in storage order (the order of their bytes in the file).
    public let names: [String]
    /// The tensors, on the CPU, pointing into the mapped file (see `SafeTensors`).
    public let tensors: [String: Tensor]
    /// The `__metadata__` map (empty when absent); includes `format` when the writer set it.
    public let metadata: [String: String]
    /// The header entries, in storage order.
    public let entries: [SafeTensorsHeader.Entry]

    /// The tensor `name`, or a `TorchError` naming the file and the missing key.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw TorchError("\(url.path): no tensor named '\(name)'") }
        return t
    }

    /// (name, tensor) pairs in storage order.
    public var ordered: [(String, Tensor)] { names.map { ($0, tensors[$0]!) } }
}

/// A validated safetensors header.
public struct SafeTensorsHeader: Sendable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// The name in the file (`F32`, `BF16`, `F8_E4M3`...).
        public let dtypeName: String
        /// The matching `DType`, nil for dtypes the spec defines but Paris does not support.
        public let dtype: DType?
        public let shape: [Int]
        /// The tensor's bytes, relative to the start of the byte buffer.
        public let byteRange: Range<Int>
        public var count: Int { shape.reduce(1, *) }
    }

    /// Entries in storage order (by offset; the header's order for equal offsets).
    public let entries: [Entry]
    public let metadata: [String: String]
    /// The header's length N as stored (padding included).
    public let headerLength: Int
    /// Where the byte buffer starts in the file (8 + N).
    public var dataStart: Int { 8 + headerLength }
    /// The file's length.
    public let fileLength: Int

    /// Total number of elements over all tensors.
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }

    init(mapping: Mapping) throws {
        let path = mapping.path
        func bad(_ problem: String) -> TorchError { TorchError("\(path): not a valid safetensors file: \(problem)") }
        let size = mapping.length
        guard size >= 8 else {
            throw bad("the file is \(size) bytes, shorter than the 8-byte header length (truncated?)")
        }
        let bytes = UnsafeBufferPointer(start: mapping.base?.assumingMemoryBound(to: UInt8.self), count: size)
        var n64: UInt64 = 0
        for k in (0..<8).reversed() { n64 = n64 << 8 | UInt64(bytes[k]) }
        guard n64 <= UInt64(SafeTensors.maxHeaderSize) else {
            throw bad("the header length is \(n64) bytes, over the format's limit of \(SafeTensors.maxHeaderSize)")
        }
        let n = Int(n64)
        guard 8 + n <= size else {
            throw bad("the header length is \(n) bytes but only \(size - 8) bytes follow it (truncated file?)")
        }
        guard n >= 2 else { throw bad("the header is \(n) bytes, too short to be a JSON object") }
        let headerBytes = UnsafeBufferPointer(rebasing: bytes[8..<(8 + n)])
        guard headerBytes[0] == UInt8(ascii: "{") else {
            throw bad("the header is not a JSON object: it does not start with '{' (is this a safetensors file?)")
        }
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw bad("the header is not valid UTF-8") }
        let root: JSONValue
        do {
            root = try JSONParser.parse(headerBytes)
        } catch {
            throw bad("the header is not valid JSON: \(error.message) at header byte \(error.offset)")
        }
        guard case .object(let members) = root else { throw bad("the header is not a JSON object") }

        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        let bufferLength = size - 8 - n
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else {
                    throw bad("__metadata__ is \(value.kind), expected an object of strings")
                }
                for (k, v) in pairs {
                    guard case .string(let s) = v else {
                        throw bad("__metadata__ value for '\(k)' is \(v.kind); metadata values must be strings")
                    }
                    metadata[k] = s
                }
                continue
            }
            entries.append(try Self.entry(name, value, bad))
        }

        // Storage order, then the spec's layout rules: contiguous from 0, no overlap, no hole, buffer fully covered.
        let sorted = entries.enumerated().sorted {
            ($0.element.byteRange.lowerBound, $0.element.byteRange.upperBound, $0.offset)
                < ($1.element.byteRange.lowerBound, $1.element.byteRange.upperBound, $1.offset)
        }.map(\.element)
        var end = 0
        for (i, e) in sorted.enumerated() {
            if e.byteRange.lowerBound < end {
                throw bad("tensor '\(e.name)' at bytes [\(e.byteRange.lowerBound), \(e.byteRange.upperBound)) overlaps "
                    + "tensor '\(sorted[i - 1].name)', which ends at byte \(end)")
            }
            if e.byteRange.lowerBound > end {
                throw bad("bytes [\(end), \(e.byteRange.lowerBound)) of the data buffer belong to no tensor (a hole "
                    + "before tensor '\(e.name)')")
            }
            end = e.byteRange.upperBound
        }
        if end > bufferLength {
            throw bad("tensor data ends at byte \(end) of the data buffer, but the file holds only \(bufferLength) "
                + "bytes after the header (truncated file?)")
        }
        if end < bufferLength {
            throw bad("the tensors cover \(end) bytes, but the data buffer holds \(bufferLength) bytes (trailing data)")
        }
        self.entries = sorted
        self.metadata = metadata
        self.headerLength = n
        self.fileLength = size
    }

    private static func entry(_ name: String, _ value: JSONValue, _ bad: (String) -> TorchError) throws -> Entry {
        guard case .object(let fields) = value else { throw bad("the entry for '\(name)' is \(value.kind), expected an object") }
        var dtypeName: String?, shape: [Int]?, offsets: [Int]?
        func ints(_ v: JSONValue, _ field: String) throws -> [Int] {
            guard case .array(let items) = v else { throw bad("'\(name)'.\(field) is \(v.kind), expected an array") }
            return try items.map {
                guard case .integer(let x) = $0, x >= 0 else {
                    throw bad("'\(name)'.\(field) holds \($0.kind == "a number" ? "a negative or non-integer number" : $0.kind), "
                        + "expected non-negative integers")
                }
                return Int(x)
            }
        }
        for (k, v) in fields {
            switch k {
            case "dtype":
                guard case .string(let s) = v else { throw bad("'\(name)'.dtype is \(v.kind), expected a string") }
                dtypeName = s
            case "shape": shape = try ints(v, "shape")
            case "data_offsets": offsets = try ints(v, "data_offsets")
            default: continue  // serde, in the reference reader, ignores unknown fields too

            }
        }
        guard let dtypeName else { throw bad("the entry for '\(name)' has no dtype") }
        guard let shape else { throw bad("the entry for '\(name)' has no shape") }
        guard let offsets else { throw bad("the entry for '\(name)' has no data_offsets") }
        guard let spec = SafeTensors.specDTypes.first(where: { $0.name == dtypeName }) else {
            throw bad("tensor '\(name)' has unknown dtype \"\(dtypeName)\" (the format defines "
                + SafeTensors.specDTypes.map(\.name).joined(separator: ", ") + ")")
        }
        guard offsets.count == 2, offsets[0] <= offsets[1] else {
            throw bad("'\(name)'.data_offsets must be [BEGIN, END] with BEGIN <= END, got \(offsets)")
        }
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            if o { throw bad("tensor '\(name)' has shape \(shape), whose element count overflows") }
            count = p
        }
        let (bits, o) = count.multipliedReportingOverflow(by: spec.bits)
        guard !o, bits % 8 == 0 else {
            throw bad("tensor '\(name)' of dtype \(dtypeName) and shape \(shape) does not fill a whole number of bytes")
        }
        let nbytes = bits / 8
        guard offsets[1] - offsets[0] == nbytes else {
            throw bad("tensor '\(name)' (\(dtypeName), shape \(shape)) needs \(nbytes) bytes, but its data_offsets "
                + "[\(offsets[0]), \(offsets[1])] span \(offsets[1] - offsets[0])")
        }
        return Entry(name: name, dtypeName: dtypeName, dtype: SafeTensors.dtype(named: dtypeName), shape: shape,
                     byteRange: offsets[0]..<offsets[1])
    }
}

/// A read-only file mapped privately (copy-on-write) into memory; unmapped when the last reference goes.
final class Mapping: @unchecked Sendable {
    let path: String
    let base: UnsafeMutableRawPointer?
    let length: Int
    /// A copy of bytes in memory (`init(bytes:name:)`), freed rather than unmapped.
    let inMemory: Bool

    /// How many mappings are alive (for tests of their lifetime).
    static var live: Int { counterLock.withLock { counter } }
    private static let counterLock = NSLock()
    nonisolated(unsafe) private static var counter = 0

    /// A copy of `bytes`, read as a mapped file would be; `name` stands for its path in errors.
    init(bytes: [UInt8], name: String) {
        path = name
        length = bytes.count
        inMemory = true
        guard length > 0 else { base = nil; return }
        let n = bytes.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: n) }
        base = p
        Self.counterLock.withLock { Self.counter += 1 }
    }

    init(_ url: URL) throws {
        path = url.path
        inMemory = false
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { throw TorchError("\(path): no such file") }
            throw TorchError("\(path): cannot open: \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TorchError("\(path): cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw TorchError("\(path): not a regular file") }
        length = Int(st.st_size)
        if length == 0 {
            base = nil
            return
        }
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw TorchError("\(path): cannot map the file: \(String(cString: strerror(errno)))")
        }
        base = p
        Self.counterLock.withLock { Self.counter += 1 }
    }

    deinit {
        if let base {
            if inMemory { base.deallocate() } else { munmap(base, length) }
            Self.counterLock.withLock { Self.counter -= 1 }
        }
    }

    /// A CPU tensor over `shape.product * dtype.size` bytes at `offset`: zero-copy when aligned, else copied.
    func tensor(at offset: Int, shape: [Int], dtype: DType) throws -> Tensor {
        let count = shape.reduce(1, *)
        if count == 0 { return try Tensor.empty(shape, dtype: dtype) }
        let nbytes = count * dtype.size
        precondition(offset >= 0 && offset + nbytes <= length, "safetensors: validated range out of the mapping")
        let p = base! + offset
        if Int(bitPattern: p) % dtype.size != 0 {
            return try Tensor(bytes: UnsafeRawBufferPointer(start: p, count: nbytes), shape: shape, dtype: dtype)
        }
        let ctx = Unmanaged.passRetained(self).toOpaque()
        let s = shape.map(Int64.init)
        let h = s.withUnsafeBufferPointer {
            ct_from_blob(p, $0.baseAddress ?? UnsafePointer(bitPattern: 8)!, Int64(s.count), dtype.rawValue,
                         mappingRelease, ctx)
        }
        // On failure libtorch made no storage, so the deleter will never run; the one reference taken above leaks
        // (a leak is safer than a double release should that ever not hold).
        guard let h else { throw TorchError.last() }
        return Tensor(handle: h)
    }
}

/// The deleter handed to libtorch: drops the reference a tensor held on its mapping.
private let mappingRelease: @convention(c) (UnsafeMutableRawPointer?) -> Void = { ctx in
    guard let ctx else { return }
    Unmanaged<Mapping>.fromOpaque(ctx).release()
}
