import Foundation
@testable import ParisData
import ParisModels
import Torch
import XCTest

/// Latent shards: the same parts and shard.json as pixel shards, with float16 `latents` and the autoencoder's
/// `LatentSpace` in shard.json (`content: latents`).
final class LatentShardTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-latent-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static let space = LatentSpace(weights: "0123456789abcdef", latentChannels: 4, scalingFactor: 0.5,
                                   downsamplingFactor: 2, resolution: 8)

    /// `n` latents [n, 4, 4, 4] float16 over 3 captions.
    func latentShard(n: Int, space: LatentSpace = space) throws -> Shard {
        Runtime.manualSeed(2)
        let latents = try Tensor.randn([n, space.latentChannels, space.latentSize, space.latentSize]).to(dtype: .float16)
        let items = (0..<n).map { Shard.Item(fileName: "img\($0).png", text: "caption \($0 % 3)", label: nil) }
        let info = ShardInfo(cluster: 0, numClusters: 1, count: n, channels: space.latentChannels,
                             imageSize: space.latentSize, captionCount: 3, textEncoder: "fake", textLength: 2,
                             textDim: 3, dataset: "toy", partitionMethod: "random", latents: space)
        return try Shard(info: info, images: latents, captionIndex: try Tensor((0..<n).map { Int64($0 % 3) }),
                         textEmbeddings: try Tensor.randn([3, 2, 3]).to(dtype: .float16),
                         textMask: try Tensor.ones([3, 2], dtype: .bool), items: items)
    }

    func testLatentShardRoundTrip() throws {
        let shard = try latentShard(n: 11)
        let folder = dir.appendingPathComponent("shard_0")
        try shard.write(to: folder, partSize: 4)
        let info = try Shard.info(at: folder)
        XCTAssertEqual(info.kind, .latents)
        XCTAssertEqual(info.latents, Self.space)
        XCTAssertEqual(info.parts?.map(\.count), [4, 4, 3])
        // shard.json says what it holds, in snake_case.
        let json = String(decoding: try Data(contentsOf: folder.appendingPathComponent(Shard.infoName)), as: UTF8.self)
        XCTAssertTrue(json.contains("\"content\" : \"latents\""), json)
        XCTAssertTrue(json.contains("\"latent_channels\" : 4") && json.contains("\"scaling_factor\" : 0.5"), json)
        // The part file names its tensor `latents`, float16.
        let part = try SafeTensors.load(folder.appendingPathComponent("part-00000.safetensors"))
        XCTAssertNotNil(part.tensors["latents"])
        XCTAssertNil(part.tensors["images"])
        let back = try Shard.load(from: folder, expectedCluster: 0)
        XCTAssertTrue(try back.images.equal(shard.images))
        XCTAssertEqual(back.images.dtype, .float16)
        // The loader serves the latents as float32, unscaled.
        let loader = try ShardLoader(reader: try ShardReader(folder: folder), batchSize: 11, seed: 0, prefetch: 0)
        let batch = try loader.next()
        XCTAssertEqual(batch.images.dtype, .float32)
        let rows = try Tensor(batch.indices.map { Int64($0) })
        XCTAssertTrue(try batch.images.equal(try shard.images.indexSelect(dim: 0, index: rows).to(dtype: .float32)))
    }

    func testPixelShardSaysPixels() throws {
        let info = ShardInfo(cluster: 0, numClusters: 1, count: 0, channels: 3, imageSize: 4, captionCount: 0,
                             textEncoder: "fake", textLength: 2, textDim: 3, dataset: "toy", partitionMethod: "random")
        XCTAssertEqual(info.kind, .pixels)
        XCTAssertEqual(info.dataType, .uint8)
        XCTAssertEqual(try JSONDecoder.snakeCase.decode(ShardInfo.self, from: Data(try Shard.encode(info))).content, .pixels)
    }

    /// A part whose tensor is not what shard.json says (pixels in a latent shard, latents in a pixel shard).
    func testContentMismatchIsAnError() throws {
        let shard = try latentShard(n: 4)
        let folder = dir.appendingPathComponent("shard_0")
        try shard.write(to: folder)
        // shard.json edited to say pixels: the part's float16 latents are refused when read.
        var info = try Shard.info(at: folder)
        (info.content, info.latents) = (.pixels, nil)
        try Data(try Shard.encode(info)).write(to: folder.appendingPathComponent(Shard.infoName))
        XCTAssertThrowsError(try Shard.load(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("the part holds latents, its shard.json says pixels"), "\(error)")
        }
        // A latent shard.json without its autoencoder, or with latents of another shape, is refused at once.
        (info.content, info.latents) = (.latents, nil)
        XCTAssertThrowsError(try info.validate(origin: "x")) { XCTAssertTrue("\($0)".contains("must name its autoencoder")) }
        var other = Self.space
        other.latentChannels = 8
        (info.content, info.latents) = (.latents, other)
        XCTAssertThrowsError(try info.validate(origin: "x")) { XCTAssertTrue("\($0)".contains("makes 8×4×4"), "\($0)") }
        // Writing uint8 pixels into a latent shard is refused.
        let writer = try ShardWriter(folder: dir.appendingPathComponent("shard_1"), info: shard.info)
        var pixels = shard.part
        pixels.images = try Tensor.zeros([4, 4, 4, 4], dtype: .uint8)
        XCTAssertThrowsError(try writer.append(pixels)) { error in
            XCTAssertTrue("\(error)".contains("expected float16"), "\(error)")
        }
    }

    /// Shards of one reader must hold the same data (pixels, or one autoencoder's latents).
    func testShardsOfDifferentLatentsAreNotReadTogether() throws {
        try latentShard(n: 4).write(to: dir.appendingPathComponent("a"))
        var other = Self.space
        other.weights = "fedcba9876543210"
        var b = try latentShard(n: 4, space: other)
        b.info.cluster = 0
        try b.write(to: dir.appendingPathComponent("b"))
        XCTAssertThrowsError(try ShardReader(folders: [dir.appendingPathComponent("a"), dir.appendingPathComponent("b")])) {
            XCTAssertTrue("\($0)".contains("hold different data"), "\($0)")
        }
    }

    func testLatentSpaceDecodesBothKeyStyles() throws {
        let snake = try JSONEncoder().encode(Self.space)
        XCTAssertTrue(String(decoding: snake, as: UTF8.self).contains("latent_channels"))
        XCTAssertEqual(try JSONDecoder().decode(LatentSpace.self, from: snake), Self.space)
        XCTAssertEqual(try JSONDecoder.snakeCase.decode(LatentSpace.self, from: snake), Self.space)
        XCTAssertEqual(Self.space.difference(from: Self.space), nil)
        var other = Self.space
        other.scalingFactor = 0.25
        XCTAssertEqual(Self.space.difference(from: other), "scaling factor 0.5 vs 0.25")
    }
}
