import Foundation
import Torch

/// `shard.json`: what one cluster's shard holds. Written last, so its presence means the shard is complete.
public struct ShardInfo: Codable, Sendable, Equatable {
    public static let currentFormat = "paris-shard-v1"
    public var format: String
    /// This shard's cluster index k, in 0..<numClusters.
    public var cluster: Int
    public var numClusters: Int
    /// Number of images N.
    public var count: Int
    public var channels: Int
    public var imageSize: Int
    /// Number of distinct captions U (captions are stored once and indexed).
    public var captionCount: Int
    /// The text encoder that made the caption token embeddings, e.g. `all-MiniLM-L6-v2`.
    public var textEncoder: String
    /// Tokens per caption T (padded) and embedding width D.
    public var textLength: Int
    public var textDim: Int
    /// The dataset folder's name and the partition method that assigned these images to cluster k.
    public var dataset: String
    public var partitionMethod: String
    /// sha256 of each data file in the folder, by file name.
    public var checksums: [String: String]

    public init(cluster: Int, numClusters: Int, count: Int, channels: Int, imageSize: Int, captionCount: Int,
                textEncoder: String, textLength: Int, textDim: Int, dataset: String, partitionMethod: String,
                checksums: [String: String] = [:]) {
        self.format = Self.currentFormat
        self.cluster = cluster
        self.numClusters = numClusters
        self.count = count
        self.channels = channels
        self.imageSize = imageSize
        self.captionCount = captionCount
        self.textEncoder = textEncoder
        self.textLength = textLength
        self.textDim = textDim
        self.dataset = dataset
        self.partitionMethod = partitionMethod
        self.checksums = checksums
    }
}

/// One cluster's shard: a folder holding everything an expert needs and nothing else.
///
/// ```
/// shard_<k>/
///   images.safetensors   images [N, C, H, W] uint8 (training resolution), caption_index [N] int64
///   text.safetensors     text_embeddings [U, T, D] float16, text_mask [U, T] bool (true = real token)
///   items.jsonl          one line per image: {"file_name", "text", "label"} (label: the dataset's known class)
///   shard.json           ShardInfo, written last
/// ```
public struct Shard {
    public static let infoName = "shard.json"
    public static let imagesName = "images.safetensors"
    public static let textName = "text.safetensors"
    public static let itemsName = "items.jsonl"
    /// The data files, which `shard.json` checksums.
    public static let dataFiles = [imagesName, textName, itemsName]

    /// One image's provenance.
    public struct Item: Codable, Sendable, Equatable {
        public var fileName: String
        public var text: String
        public var label: String?
        public init(fileName: String, text: String, label: String?) {
            self.fileName = fileName
            self.text = text
            self.label = label
        }
        enum CodingKeys: String, CodingKey { case fileName = "file_name", text, label }
    }

    public var info: ShardInfo
    /// [N, C, H, W] uint8.
    public var images: Tensor
    /// [N] int64, rows of `textEmbeddings`.
    public var captionIndex: Tensor
    /// [U, T, D] float16.
    public var textEmbeddings: Tensor
    /// [U, T] bool.
    public var textMask: Tensor
    public var items: [Item]

    public init(info: ShardInfo, images: Tensor, captionIndex: Tensor, textEmbeddings: Tensor, textMask: Tensor,
                items: [Item]) throws {
        self.info = info
        self.images = images
        self.captionIndex = captionIndex
        self.textEmbeddings = textEmbeddings
        self.textMask = textMask
        self.items = items
        try validate(origin: "shard \(info.cluster)")
    }

    /// The folder name of cluster k's shard.
    public static func folderName(cluster k: Int) -> String { "shard_\(k)" }

    /// Checks that the tensors agree with the info and with each other.
    public func validate(origin: String) throws {
        let n = info.count, u = info.captionCount
        func fail(_ why: String) -> DatasetImportError { DatasetImportError("\(origin): \(why)") }
        guard info.format == ShardInfo.currentFormat else {
            throw fail("format '\(info.format)', expected '\(ShardInfo.currentFormat)'")
        }
        guard info.numClusters > 0, (0..<info.numClusters).contains(info.cluster) else {
            throw fail("cluster \(info.cluster) is not in 0..<\(info.numClusters)")
        }
        guard images.shape == [n, info.channels, info.imageSize, info.imageSize], images.dtype == .uint8 else {
            throw fail("images are \(images.dtype) \(images.shape), expected uint8 "
                + "\([n, info.channels, info.imageSize, info.imageSize])")
        }
        guard captionIndex.shape == [n], captionIndex.dtype == .int64 else {
            throw fail("caption_index is \(captionIndex.dtype) \(captionIndex.shape), expected int64 [\(n)]")
        }
        guard textEmbeddings.shape == [u, info.textLength, info.textDim] else {
            throw fail("text_embeddings are \(textEmbeddings.shape), expected \([u, info.textLength, info.textDim])")
        }
        guard textMask.shape == [u, info.textLength], textMask.dtype == .bool else {
            throw fail("text_mask is \(textMask.dtype) \(textMask.shape), expected bool \([u, info.textLength])")
        }
        guard items.count == n else { throw fail("items.jsonl has \(items.count) lines for \(n) images") }
        if n > 0 {
            let lo = try captionIndex.amin().itemInt(), hi = try captionIndex.amax().itemInt()
            guard lo >= 0, hi < u else { throw fail("caption_index spans \(lo)...\(hi), outside 0..<\(u)") }
        }
    }

    /// Writes the shard into `folder` (created; must not hold another shard unless `overwrite`). Data files are
    /// written atomically; `shard.json` with their checksums comes last.
    public func write(to folder: URL, overwrite: Bool = false) throws {
        let fm = FileManager.default
        let infoURL = folder.appendingPathComponent(Self.infoName)
        if fm.fileExists(atPath: infoURL.path) && !overwrite {
            throw DatasetImportError("\(folder.path) already holds a shard; remove it or pass overwrite")
        }
        try? fm.removeItem(at: infoURL)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let meta = ["cluster": String(info.cluster)]
        try SafeTensors.save(["images": images, "caption_index": captionIndex],
                             to: folder.appendingPathComponent(Self.imagesName), metadata: meta)
        try SafeTensors.save(["text_embeddings": textEmbeddings, "text_mask": textMask],
                             to: folder.appendingPathComponent(Self.textName), metadata: meta)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = [UInt8]()
        for item in items { lines += try encoder.encode(item); lines.append(10) }
        try AtomicFile.write(lines, to: folder.appendingPathComponent(Self.itemsName))
        var info = self.info
        for name in Self.dataFiles { info.checksums[name] = try Checksum.sha256(file: folder.appendingPathComponent(name)) }
        try AtomicFile.write(try Self.encode(info), to: infoURL)
    }

    /// Reads only `shard.json` (no checksum check).
    public static func info(at folder: URL) throws -> ShardInfo {
        let url = folder.appendingPathComponent(infoName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DatasetImportError("\(folder.path): no \(infoName); the shard is missing or was not finished")
        }
        do { return try JSONDecoder.snakeCase.decode(ShardInfo.self, from: data) } catch {
            throw DatasetImportError("\(url.path): malformed shard info (\(error))")
        }
    }

    /// Loads and checks a shard. `expectedCluster`: refuse a shard that belongs to another cluster.
    /// `verifyChecksums`: hash every data file against `shard.json` first (catches corruption and tampering).
    public static func load(from folder: URL, expectedCluster: Int? = nil, verifyChecksums: Bool = true) throws -> Shard {
        let info = try info(at: folder)
        if let k = expectedCluster, info.cluster != k {
            throw DatasetImportError("\(folder.path) holds the shard of cluster \(info.cluster), not of cluster \(k)")
        }
        if verifyChecksums {
            for name in dataFiles {
                let url = folder.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw DatasetImportError("\(folder.path): \(name) is missing")
                }
                guard let want = info.checksums[name] else {
                    throw DatasetImportError("\(folder.path): \(infoName) has no checksum for \(name)")
                }
                let got = try Checksum.sha256(file: url)
                guard got == want else {
                    throw DatasetImportError("\(url.path): checksum mismatch (sha256 \(got.prefix(12))…, "
                        + "\(infoName) says \(want.prefix(12))…); the file is corrupt or was changed")
                }
            }
        }
        let imagesFile = try SafeTensors.load(folder.appendingPathComponent(imagesName))
        let textFile = try SafeTensors.load(folder.appendingPathComponent(textName))
        let itemsURL = folder.appendingPathComponent(itemsName)
        guard let itemsData = FileManager.default.contents(atPath: itemsURL.path) else {
            throw DatasetImportError("\(itemsURL.path): cannot read")
        }
        var items: [Item] = []
        for (i, line) in itemsData.split(separator: 10).enumerated() where !line.isEmpty {
            do { items.append(try JSONDecoder().decode(Item.self, from: Data(line))) } catch {
                throw DatasetImportError("\(itemsURL.path): line \(i + 1) is not a valid item (\(error))")
            }
        }
        let shard = Shard(unchecked: info, images: try imagesFile.tensor("images"),
                          captionIndex: try imagesFile.tensor("caption_index"),
                          textEmbeddings: try textFile.tensor("text_embeddings"),
                          textMask: try textFile.tensor("text_mask"), items: items)
        try shard.validate(origin: folder.path)
        return shard
    }

    private init(unchecked info: ShardInfo, images: Tensor, captionIndex: Tensor, textEmbeddings: Tensor,
                 textMask: Tensor, items: [Item]) {
        self.info = info
        self.images = images
        self.captionIndex = captionIndex
        self.textEmbeddings = textEmbeddings
        self.textMask = textMask
        self.items = items
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(value)) + [10]
    }
}

extension JSONDecoder {
    /// A decoder for the project's snake_case JSON files.
    static var snakeCase: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}
