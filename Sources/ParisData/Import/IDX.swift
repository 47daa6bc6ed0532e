/// An error importing a dataset; the message names the file and the problem.
public struct DatasetImportError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The IDX format of MNIST and Fashion-MNIST: a big-endian magic (2051 images, 2049 labels), big-endian sizes, bytes.
public enum IDX {
    public static let imagesMagic: UInt32 = 2051
    public static let labelsMagic: UInt32 = 2049

    static func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    /// Images: `count` × `rows` × `cols` unsigned bytes, row-major.
    public struct Images: Equatable, Sendable {
        public let count: Int, rows: Int, cols: Int
        public let pixels: [UInt8]
        public func image(_ i: Int) -> ArraySlice<UInt8> { pixels[(i * rows * cols)..<((i + 1) * rows * cols)] }
    }

    /// Parses an uncompressed IDX3 image file; the sizes must account for every byte.
    public static func parseImages(_ b: [UInt8], name: String) throws -> Images {
        guard b.count >= 16 else { throw DatasetImportError("\(name): \(b.count) bytes is too short for an IDX image header (16)") }
        let magic = be32(b, 0)
        guard magic == imagesMagic else {
            throw DatasetImportError("\(name): bad magic number \(magic), expected \(imagesMagic) (IDX unsigned-byte images)")
        }
        let n = Int(be32(b, 4)), rows = Int(be32(b, 8)), cols = Int(be32(b, 12))
        guard rows > 0, cols > 0, rows <= 4096, cols <= 4096 else {
            throw DatasetImportError("\(name): unreasonable image size \(rows)×\(cols)")
        }
        let (need, overflow) = (n * rows).multipliedReportingOverflow(by: cols)
        guard !overflow else { throw DatasetImportError("\(name): impossible sizes \(n)×\(rows)×\(cols)") }
        guard b.count - 16 == need else {
            let what = b.count - 16 < need ? "truncated" : "has trailing bytes"
            throw DatasetImportError("\(name): \(what): the header says \(n) images of \(rows)×\(cols) (\(need) bytes) but \(b.count - 16) bytes follow")
        }
        return Images(count: n, rows: rows, cols: cols, pixels: Array(b[16...]))
    }

    /// Parses an uncompressed IDX1 label file; every label must be below `classes`.
    public static func parseLabels(_ b: [UInt8], name: String, classes: Int) throws -> [UInt8] {
        guard b.count >= 8 else { throw DatasetImportError("\(name): \(b.count) bytes is too short for an IDX label header (8)") }
        let magic = be32(b, 0)
        guard magic == labelsMagic else {
            throw DatasetImportError("\(name): bad magic number \(magic), expected \(labelsMagic) (IDX unsigned-byte labels)")
        }
        let n = Int(be32(b, 4))
        guard b.count - 8 == n else {
            let what = b.count - 8 < n ? "truncated" : "has trailing bytes"
            throw DatasetImportError("\(name): \(what): the header says \(n) labels but \(b.count - 8) bytes follow")
        }
        let labels = Array(b[8...])
        if let i = labels.firstIndex(where: { Int($0) >= classes }) {
            throw DatasetImportError("\(name): label \(labels[i]) at index \(i) is not a class (0..<\(classes))")
        }
        return labels
    }

    /// Builds an IDX3 image file (for tests and tools).
    public static func encodeImages(_ pixels: [UInt8], count: Int, rows: Int, cols: Int) -> [UInt8] {
        header([imagesMagic, UInt32(count), UInt32(rows), UInt32(cols)]) + pixels
    }

    /// Builds an IDX1 label file.
    public static func encodeLabels(_ labels: [UInt8]) -> [UInt8] { header([labelsMagic, UInt32(labels.count)]) + labels }

    static func header(_ words: [UInt32]) -> [UInt8] {
        words.flatMap { [UInt8($0 >> 24), UInt8($0 >> 16 & 0xff), UInt8($0 >> 8 & 0xff), UInt8($0 & 0xff)] }
    }
}
