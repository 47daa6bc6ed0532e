import Foundation
import Torch

/// One part of a shard: a fixed number of images with their captions, self-contained so that a part can be read,
/// verified and batched without any other.
///
/// ```
/// part-<i>.safetensors   images [n, C, H, W] uint8 (training resolution), caption_index [n] int64 (rows of this
///                        part's table), text_embeddings [u, T, D] float16, text_mask [u, T] bool (true = real token)
/// part-<i>.jsonl         one line per image: {"file_name", "text", "label"}
/// ```
/// A latent shard's parts hold `latents` [n, L, s, s] float16 instead of `images` (`ShardInfo.content`); `images`
/// below is then that tensor. A v1 shard's three files (`images.safetensors`, `text.safetensors`, `items.jsonl`) are read as one part.
public struct ShardPart {
    /// [n, C, H, W] uint8 pixels, or [n, L, h, w] float16 latents.
    public var images: Tensor
    /// [n] int64, rows of `textEmbeddings`.
    public var captionIndex: Tensor
    /// [u, T, D] float16.
    public var textEmbeddings: Tensor
    /// [u, T] bool.
    public var textMask: Tensor
    public var items: [Shard.Item]

    public init(images: Tensor, captionIndex: Tensor, textEmbeddings: Tensor, textMask: Tensor, items: [Shard.Item]) {
        self.images = images
        self.captionIndex = captionIndex
        self.textEmbeddings = textEmbeddings
        self.textMask = textMask
        self.items = items
    }

    /// What a model sees of stored images: uint8 pixels → float32 in [−1, 1]; float16 latents → float32 as they are.
    public static func modelInput(_ stored: Tensor) throws -> Tensor {
        stored.dtype == .uint8 ? try stored.to(dtype: .float32) / 127.5 - 1 : try stored.to(dtype: .float32)
    }

    /// Images n.
    public var count: Int { items.count }
    /// Caption rows u.
    public var captions: Int { textEmbeddings.size(0) }

    /// The tensor names of the images: `images` (uint8 pixels) or `latents` (float16).
    public static let pixelsKey = "images", latentsKey = "latents"

    public static func name(_ index: Int) -> String { "part-" + String(format: "%05d", index) }
    public static func tensorsName(_ name: String) -> String { name + ".safetensors" }
    public static func itemsName(_ name: String) -> String { name + ".jsonl" }
    /// `part-` and digits only, so that a shard.json cannot name a file outside its folder.
    static func isValidName(_ name: String) -> Bool {
        name.hasPrefix("part-") && name.count > 5 && name.dropFirst(5).allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Checks that the tensors agree with the shard's shapes and with each other.
    /// `dtype`: uint8 for pixels, float16 for latents (`ShardInfo.dataType`). `count`: the images expected (nil: one
    /// per item; a part read without its items passes its shard.json count).
    public func validate(channels c: Int, imageSize s: Int, textLength t: Int, textDim d: Int, dtype: DType = .uint8,
                         count: Int? = nil, origin: String) throws {
        let n = count ?? items.count, u = textEmbeddings.rank == 3 ? textEmbeddings.size(0) : -1
        func fail(_ why: String) -> DatasetImportError { DatasetImportError("\(origin): \(why)") }
        guard images.shape == [n, c, s, s], images.dtype == dtype else {
            let what = dtype == .uint8 ? "images" : "latents"
            throw fail("\(what) are \(images.dtype) \(images.shape), expected \(dtype) \([n, c, s, s])"
                + (images.dtype != dtype ? (images.dtype == .uint8 ? " (the part holds pixels, its shard.json says latents)"
                    : " (the part holds latents, its shard.json says pixels)") : ""))
        }
        guard captionIndex.shape == [n], captionIndex.dtype == .int64 else {
            throw fail("caption_index is \(captionIndex.dtype) \(captionIndex.shape), expected int64 [\(n)]")
        }
        guard textEmbeddings.shape == [u, t, d] else {
            throw fail("text_embeddings are \(textEmbeddings.shape), expected [U, \(t), \(d)]")
        }
        guard textMask.shape == [u, t], textMask.dtype == .bool else {
            throw fail("text_mask is \(textMask.dtype) \(textMask.shape), expected bool \([u, t])")
        }
        if n > 0 {
            let lo = try captionIndex.amin().itemInt(), hi = try captionIndex.amax().itemInt()
            guard lo >= 0, hi < u else { throw fail("caption_index spans \(lo)...\(hi), outside 0..<\(u)") }
        }
    }

    /// The rows `rows` (in that order) with only the captions they use, renumbered in order of first use.
    public func rows(_ rows: [Int]) throws -> ShardPart {
        let index = try captionIndex.toArray(as: Int64.self)
        var local: [Int64: Int64] = [:], kept: [Int64] = [], newIndex: [Int64] = []
        for r in rows {
            let g = index[r]
            if local[g] == nil { local[g] = Int64(kept.count); kept.append(g) }
            newIndex.append(local[g]!)
        }
        let captionRows = try Tensor(kept), imageRows = try Tensor(rows.map { Int64($0) })
        return ShardPart(images: try images.indexSelect(dim: 0, index: imageRows).contiguous(),
                         captionIndex: try Tensor(newIndex),
                         textEmbeddings: try textEmbeddings.indexSelect(dim: 0, index: captionRows).contiguous(),
                         textMask: try textMask.indexSelect(dim: 0, index: captionRows).contiguous(),
                         items: rows.map { items[$0] })
    }

    /// Rows of several parts in the order given: `picks[i]` is (part, row in that part). Each part is fetched once
    /// (`part(p)`, in order of first use), its rows taken with one index_select, and the pieces put back in pick
    /// order. Returns the stored images [B, C, H, W] (uint8 pixels or float16 latents) and, when `text`, each row's
    /// caption tokens [B, T, D] float16 and mask [B, T] bool.
    public static func gather(_ picks: [(part: Int, row: Int)], text: Bool, from part: (Int) throws -> ShardPart)
        throws -> (images: Tensor, tokens: Tensor?, mask: Tensor?) {
        var images: [Tensor] = [], tokens: [Tensor] = [], masks: [Tensor] = []
        var slot = [Int](repeating: 0, count: picks.count), done = 0
        for p in picks.map(\.part).uniqued() {
            let source = try part(p)
            let positions = picks.indices.filter { picks[$0].part == p }
            let rows = try Tensor(positions.map { Int64(picks[$0].row) })  // [b_p] int64
            images.append(try source.images.indexSelect(dim: 0, index: rows))  // [b_p, C, H, W]
            if text {
                let captions = try source.captionIndex.indexSelect(dim: 0, index: rows)  // [b_p] rows of its table
                tokens.append(try source.textEmbeddings.indexSelect(dim: 0, index: captions))  // [b_p, T, D]
                masks.append(try source.textMask.indexSelect(dim: 0, index: captions))  // [b_p, T]
            }
            for (k, i) in positions.enumerated() { slot[i] = done + k }
            done += positions.count
        }
        let order = try Tensor(slot.map { Int64($0) })  // [B]: pick i is row slot[i] of the joined pieces
        func joined(_ pieces: [Tensor]) throws -> Tensor { try Tensor.cat(pieces, dim: 0).indexSelect(dim: 0, index: order) }
        return (try joined(images), text ? try joined(tokens) : nil, text ? try joined(masks) : nil)
    }

    /// The parts one after another: images and items appended, caption tables stacked, indices shifted.
    public static func concatenated(_ parts: [ShardPart]) throws -> ShardPart {
        guard let first = parts.first else { throw DatasetImportError("no parts to join") }
        if parts.count == 1 { return first }
        var offset: Int64 = 0, indices: [Tensor] = []
        for p in parts { indices.append(try p.captionIndex + Int(offset)); offset += Int64(p.captions) }
        return ShardPart(images: try Tensor.cat(parts.map(\.images), dim: 0),  // [Σn, C, H, W]
                         captionIndex: try Tensor.cat(indices, dim: 0),  // [Σn]
                         textEmbeddings: try Tensor.cat(parts.map(\.textEmbeddings), dim: 0),  // [Σu, T, D]
                         textMask: try Tensor.cat(parts.map(\.textMask), dim: 0),  // [Σu, T]
                         items: parts.flatMap(\.items))
    }

    /// Writes `<name>.safetensors` and `<name>.jsonl` into `folder` atomically; returns their sha256 by file name.
    public func write(to folder: URL, name: String, cluster: Int) throws -> [String: String] {
        let tensors = folder.appendingPathComponent(Self.tensorsName(name))
        let lines = folder.appendingPathComponent(Self.itemsName(name))
        let key = images.dtype == .uint8 ? Self.pixelsKey : Self.latentsKey
        try SafeTensors.save([(key, images), ("caption_index", captionIndex), ("text_embeddings", textEmbeddings),
                              ("text_mask", textMask)], to: tensors, metadata: ["cluster": String(cluster)])
        try AtomicFile.write(try Self.encode(items), to: lines)
        return [tensors.lastPathComponent: try Checksum.sha256(file: tensors),
                lines.lastPathComponent: try Checksum.sha256(file: lines)]
    }

    /// Reads the part `name` of the shard in `folder` (`nil`: the v1 single-file layout). `checksums`: verify each
    /// file against these first (a mismatch names the file). `items`: false leaves the part's items unread (`items`
    /// is then empty; the tensors are mapped all the same).
    static func read(folder: URL, name: String?, checksums: [String: String]?, items: Bool = true) throws -> ShardPart {
        let tensorFiles = name.map { [Self.tensorsName($0)] } ?? [Shard.imagesName, Shard.textName]
        let itemsFile = name.map(Self.itemsName) ?? Shard.itemsName
        if let checksums {
            for file in tensorFiles + [itemsFile] { try verify(folder.appendingPathComponent(file), checksums[file]) }
        }
        let files = try tensorFiles.map { try SafeTensors.load(folder.appendingPathComponent($0)) }
        func tensor(_ key: String) throws -> Tensor {
            guard let file = files.first(where: { $0.tensors[key] != nil }) else {
                throw DatasetImportError("\(folder.path): no tensor '\(key)' in \(tensorFiles.joined(separator: ", "))")
            }
            return try file.tensor(key)
        }
        let hasLatents = files.contains { $0.tensors[latentsKey] != nil }
        return ShardPart(images: try tensor(hasLatents ? latentsKey : pixelsKey), captionIndex: try tensor("caption_index"),
                         textEmbeddings: try tensor("text_embeddings"), textMask: try tensor("text_mask"),
                         items: items ? try decodeItems(folder.appendingPathComponent(itemsFile)) : [])
    }

    static func verify(_ url: URL, _ want: String?) throws {
        let name = url.lastPathComponent, shard = url.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw DatasetImportError("\(shard): \(name) is missing")
        }
        guard let want else { throw DatasetImportError("\(shard): \(Shard.infoName) has no checksum for \(name)") }
        let got = try Checksum.sha256(file: url)
        guard got == want else {
            throw DatasetImportError("\(url.path): checksum mismatch (sha256 \(got.prefix(12))…, "
                + "\(Shard.infoName) says \(want.prefix(12))…); the file is corrupt or was changed")
        }
    }

    static func encode(_ items: [Shard.Item]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = [UInt8]()
        for item in items { lines += try encoder.encode(item); lines.append(10) }
        return lines
    }

    static func decodeItems(_ url: URL) throws -> [Shard.Item] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DatasetImportError("\(url.path): cannot read")
        }
        let decoder = JSONDecoder()
        var items: [Shard.Item] = []
        for (i, line) in data.split(separator: 10).enumerated() where !line.isEmpty {
            do { items.append(try decoder.decode(Shard.Item.self, from: Data(line))) } catch {
                throw DatasetImportError("\(url.path): line \(i + 1) is not a valid item (\(error))")
            }
        }
        return items
    }
}
