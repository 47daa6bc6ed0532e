import Foundation
import Torch

/// One cluster's shard held in memory: everything an expert needs and nothing else. On disk a shard is a folder of
/// parts (`ShardInfo`, `ShardPart`), written by `ShardWriter` and read part by part by `ShardReader`; this type is
/// the whole shard at once, for small shards (the tests write and check shards with it). Every job reads parts: the
/// experts stream them (`ShardLoader`), the router and the evaluation gather rows from them.
///
/// ```
/// shard_<k>/
///   part-00000.safetensors   images, caption_index, text_embeddings, text_mask (ShardPart)
///   part-00000.jsonl         one line per image: {"file_name", "text", "label"} (label: the dataset's known class)
///   part-00001.…             parts of `ShardWriter.defaultPartSize` images, the last one shorter
///   shard.json               ShardInfo (the parts, every file's sha256), written last
/// ```
public struct Shard {
    public static let infoName = "shard.json"
    /// The v1 single-file layout's files (still read, as one part).
    public static let imagesName = "images.safetensors"
    public static let textName = "text.safetensors"
    public static let itemsName = "items.jsonl"
    public static let singleFileNames = [imagesName, textName, itemsName]

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
    /// [N, C, H, W] uint8 pixels, or [N, L, h, w] float16 latents (`info.content`).
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
        try info.validate(origin: origin)
        guard info.count == items.count, info.captionCount == textEmbeddings.size(0) else {
            throw DatasetImportError("\(origin): images are \(images.dtype) \(images.shape) with \(items.count) items "
                + "and \(textEmbeddings.size(0)) captions, but the info says \(info.count) images, \(info.captionCount) captions")
        }
        try part.validate(channels: info.channels, imageSize: info.imageSize, textLength: info.textLength,
                          textDim: info.textDim, dtype: info.dataType, origin: origin)
    }

    /// The tensors and items as one part.
    public var part: ShardPart {
        ShardPart(images: images, captionIndex: captionIndex, textEmbeddings: textEmbeddings, textMask: textMask,
                  items: items)
    }

    /// Writes the shard into `folder` as parts of `partSize` images (`ShardWriter`; the folder must not hold another
    /// shard unless `overwrite`). Parts are written atomically; `shard.json` with their checksums comes last.
    public func write(to folder: URL, overwrite: Bool = false, partSize: Int = ShardWriter.defaultPartSize) throws {
        let writer = try ShardWriter(folder: folder, info: info, partSize: partSize, overwrite: overwrite)
        try writer.append(part)
        try writer.finish()
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

    /// Loads and checks a whole shard (every part, joined; only tests use it). `expectedCluster`: refuse a shard that
    /// belongs to another cluster. `verifyChecksums`: hash every data file against `shard.json` first (catches
    /// corruption and tampering).
    public static func load(from folder: URL, expectedCluster: Int? = nil, verifyChecksums: Bool = true) throws -> Shard {
        let reader = try ShardReader(folder: folder, expectedCluster: expectedCluster, verifyChecksums: verifyChecksums)
        let all = try reader.readAll()
        return try Shard(info: reader.info, images: all.images, captionIndex: all.captionIndex,
                         textEmbeddings: all.textEmbeddings, textMask: all.textMask, items: all.items)
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
