import Foundation
@testable import ParisModels
import Torch
import XCTest

/// AutoencoderKL's clear errors: bad configurations, bad inputs, and weights files that do not fit the model.
/// (The class name keeps `AutoencoderKLTests` in it, so `--filter AutoencoderKLTests` runs both files.)
final class AutoencoderKLTestsErrors: XCTestCase {
    func testBadConfigsAreRefusedByKey() throws {
        func refused(_ change: (inout AutoencoderKLConfig) -> Void, _ text: String, line: UInt = #line) {
            var config = AutoencoderKLConfig.tiny
            change(&config)
            assertThrows({ try AutoencoderKL(config) }, contains: text, line: line)
        }
        refused({ $0.normNumGroups = 3 }, "block_out_channels entry 8 is not divisible by norm_num_groups 3")
        refused({ $0.blockOutChannels = [] }, "block_out_channels is empty")
        refused({ $0.blockOutChannels = Array(repeating: 8, count: 9) }, "(AutoencoderKLConfig.maxLevels)")
        refused({ $0.blockOutChannels = [8, 0] }, "must all be positive")
        refused({ $0.blockOutChannels = [8, 32_768] }, "(ModelLimits.maxWidth)")
        refused({ $0.downBlockTypes = ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"] },
                "down_block_types entry 'AttnDownEncoderBlock2D' is not supported")
        refused({ $0.upBlockTypes = ["UpDecoderBlock2D", "UpBlock2D"] },
                "up_block_types entry 'UpBlock2D' is not supported")
        refused({ $0.downBlockTypes = ["DownEncoderBlock2D"] },
                "down_block_types has 1 entries but block_out_channels has 2")
        refused({ $0.actFn = "mish" }, "act_fn 'mish' is not supported")
        refused({ $0.latentChannels = 0 }, "latent_channels must be positive")
        refused({ $0.inChannels = 65 }, "in_channels 65 is more than 64 (ModelLimits.maxChannels)")
        refused({ $0.layersPerBlock = 0 }, "layers_per_block must be at least 1")
        refused({ $0.layersPerBlock = 1_000_000 }, "(ModelLimits.maxDepth)")
        refused({ $0.sampleSize = 0 }, "sample_size 0 is not in 1...16384")
        refused({ $0.scalingFactor = .nan }, "scaling_factor must be a finite positive number")
        refused({ $0.latentsStd = [1, 2] }, "latents_std has 2 entries but latent_channels is 4")
        // Other activations diffusers accepts build.
        for act in ["swish", "gelu", "relu"] {
            var config = AutoencoderKLConfig.tiny
            config.actFn = act
            XCTAssertNoThrow(try AutoencoderKL(config), act)
        }
    }

    func testBadConfigFilesNameTheFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vae-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("config.json")
        for (json, text) in [(#"{"_class_name": "UNet2DConditionModel"}"#, "describes a UNet2DConditionModel"),
                             (#"{"block_out_channels": [30, 60]}"#, "block_out_channels entry 30 is not divisible"),
                             (#"{"layers_per_block": "two"}"#, "is not a valid AutoencoderKL config.json"),
                             ("{", "is not a valid AutoencoderKL config.json")] {
            try Data(json.utf8).write(to: url)
            assertThrows({ try AutoencoderKLConfig.load(from: url) }, contains: text)
            assertThrows({ try AutoencoderKLConfig.load(from: url) }, contains: url.path)
        }
        assertThrows({ try AutoencoderKLConfig.load(from: folder.appendingPathComponent("none.json")) },
                     contains: "none.json cannot be read")
        assertThrows({ try AutoencoderKL.pretrained(directory: folder.appendingPathComponent("missing")) },
                     contains: "missing/config.json cannot be read")
    }

    func testBadInputsSayWhatIsExpected() throws {
        let model = try AutoencoderKL(.tiny)
        try withNoGrad {
            let x = try Tensor.randn([1, 3, 8, 8])
            assertThrows({ try model.encode(try Tensor.randn([1, 4, 8, 8])) },
                         contains: "encode expects images of shape [B, 3, H, W] (in_channels 3), got [1, 4, 8, 8]")
            assertThrows({ try model.encode(try Tensor.randn([3, 8, 8])) }, contains: "got [3, 8, 8]")
            assertThrows({ try model.encode(try Tensor.randn([1, 3, 9, 8])) },
                         contains: "the images are 9×8 pixels, but their sides must be multiples of 2")
            assertThrows({ try model.encode(try x.to(dtype: .float64)) },
                         contains: "expects float32 images (the model's dtype), got float64")
            assertThrows({ try model.decode(x) },
                         contains: "decode expects latents of shape [B, 4, H, W] (latent_channels 4), got [1, 3, 8, 8]")
            assertThrows({ try model.decode(try Tensor.randn([2, 4, 4, 4]), sliceSize: 0) },
                         contains: "sliceSize must be positive, got 0")
            assertThrows({ try model.encode(x, tiling: AutoencoderKLTiling(tileSampleSize: 1)) },
                         contains: "the tile (1 px) must hold at least 2 pixels")
            let z = try Tensor.randn([1, 4, 4, 4])
            assertThrows({ try model.decode(z, tiling: AutoencoderKLTiling(tileSampleSize: 8, overlapFactor: 1)) },
                         contains: "the overlap factor (1.0) must lie in [0, 1)")
            assertThrows({ try model.decode(z, tiling: AutoencoderKLTiling(tileSampleSize: 2, overlapFactor: 0.5)) },
                         contains: "a latent tile of 1 with overlap 0.5 advances by 0")
            assertThrows({ try DiagonalGaussianDistribution(try Tensor.randn([1, 3, 2, 2])) },
                         contains: "expects moments [B, 2L, h, w]")
            let posterior = try model.encode(x)
            assertThrows({ try posterior.sample(noise: try Tensor.randn([1, 4, 2, 2])) },
                         contains: "the noise has shape [1, 4, 2, 2], the latents [1, 4, 4, 4]")
        }
    }

    func testWeightsThatDoNotFitAreRefusedNamingFileAndKey() throws {
        let fx = try fixture("autoencoder_tiny")
        let reference = referenceStateDict(fx)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vae-w-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func refused(_ tensors: [String: Tensor], _ texts: [String], line: UInt = #line) throws {
            let url = folder.appendingPathComponent("w\(line).safetensors")
            try SafeTensors.save(tensors, to: url)
            for text in texts + [url.path] {
                assertThrows({ try AutoencoderKL.load(weights: url, config: .tiny) }, contains: text, line: line)
            }
        }
        var missing = reference
        missing["decoder.up_blocks.1.resnets.0.conv_shortcut.weight"] = nil
        try refused(missing, ["missing key 'decoder.up_blocks.1.resnets.0.conv_shortcut.weight'"])
        var extra = reference
        extra["decoder.up_blocks.1.upsamplers.0.conv.weight"] = try Tensor.zeros([8, 8, 3, 3])
        try refused(extra, ["unexpected key 'decoder.up_blocks.1.upsamplers.0.conv.weight'"])
        var wrong = reference
        wrong["encoder.mid_block.attentions.0.to_q.weight"] = try Tensor.zeros([16, 8])
        try refused(wrong, ["shape mismatch for 'encoder.mid_block.attentions.0.to_q.weight'", "[16, 16]", "[16, 8]"])
        // A wider, shallower model's weights for the tiny config: every difference is reported.
        var other = AutoencoderKLConfig.tiny
        other.blockOutChannels = [16, 32]
        other.layersPerBlock = 1
        try refused(try AutoencoderKL(other).stateDict(), ["missing key 'encoder.down_blocks.0.resnets.1.norm1.weight'",
                                                            "shape mismatch for 'encoder.conv_in.weight'"])
        let none = folder.appendingPathComponent("none.safetensors")
        assertThrows({ try AutoencoderKL.load(weights: none, config: .tiny) }, contains: "none.safetensors do not exist")
        let truncated = folder.appendingPathComponent("truncated.safetensors")
        try Data([1, 2, 3]).write(to: truncated)
        assertThrows({ try AutoencoderKL.load(weights: truncated, config: .tiny) }, contains: truncated.path)
    }
}
