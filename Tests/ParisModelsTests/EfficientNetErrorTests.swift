import Foundation
import ParisModels
import Torch
import XCTest

/// EfficientNet-Lite's errors (weights that do not fit, images it cannot take) and its CPU throughput.
final class EfficientNetErrorTests: XCTestCase {
    /// A `.pth` with only the stem (efficientnet_truncated.pth), and the real weights with one key removed.
    func testWeightsThatDoNotFitNameTheKey() throws {
        let truncated = try EfficientNetTests.fixtureURL("efficientnet_truncated", "pth")
        assertThrows({ try ImageFeatureExtractor(weights: truncated) },
                     contains: "missing key '_blocks.0._depthwise_conv.weight'")
        assertThrows({ try EfficientNetLite.pretrained(weights: truncated) }, contains: truncated.path)
        assertThrows({ try EfficientNetLite.pretrained(weights: URL(fileURLWithPath: "/nonexistent/lite0.pth")) },
                     contains: "no such file")

        let weights = try EfficientNetTests.liteWeights()
        var dict = try PyTorchCheckpoint.open(weights).dictionary
        dict["_blocks.7._bn1.running_var"] = nil
        dict["_extra.weight"] = try Tensor.zeros([1])
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("lite0-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: copy) }
        try SafeTensors.save(dict, to: copy)
        assertThrows({ try ImageFeatureExtractor(weights: copy) }, contains: "missing key '_blocks.7._bn1.running_var'")
        assertThrows({ try ImageFeatureExtractor(weights: copy) }, contains: "unexpected key '_extra.weight'")
    }

    func testImagesItCannotTakeAreRefused() throws {
        let extractor = try ImageFeatureExtractor(model: try EfficientNetLite(.lite0), batchSize: 4)
        assertThrows({ try extractor.embed(try Tensor.zeros([2, 2, 8, 8], dtype: .uint8)) },
                     contains: "[B, 3, H, W] (RGB) or [B, 1, H, W] (grayscale), got [2, 2, 8, 8]")
        assertThrows({ try extractor.embed(try Tensor.zeros([2, 4, 8, 8], dtype: .uint8)) }, contains: "alpha")
        assertThrows({ try extractor.embed(try Tensor.zeros([3, 8, 8], dtype: .uint8)) }, contains: "got [3, 8, 8]")
        assertThrows({ try extractor.embed(try Tensor.zeros([1, 3, 0, 8])) }, contains: "no pixels")
        assertThrows({ try extractor.embed(try Tensor.zeros([1, 3, 8, 8], dtype: .int32)) }, contains: "int32")
        assertThrows({ try extractor.embed(try Tensor.full([1, 3, 8, 8], -1)) }, contains: "(x + 1) / 2")
        assertThrows({ try extractor.embed(try Tensor.full([1, 3, 8, 8], 255)) }, contains: "in [0, 1]")
        assertThrows({ try extractor.model.features(try Tensor.zeros([1, 1, 32, 32])) }, contains: "[B, 3, H, W]")
        assertThrows({ try ImageFeatureExtractor(model: extractor.model, resolution: 16) }, contains: "at least 32")
        assertThrows({ try ImageFeatureExtractor(model: extractor.model, batchSize: 0) }, contains: "batchSize")
    }
}
