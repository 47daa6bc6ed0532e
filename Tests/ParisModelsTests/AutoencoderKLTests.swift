import Foundation
@testable import ParisModels
import Torch
import XCTest

/// AutoencoderKL against diffusers 0.42.1 (fixtures from scripts/fixtures/autoencoder.py): a random 2-level model
/// (`AutoencoderKLConfig.tiny`, TINY there) for encode, decode, forward, slicing and tiling; diffusers' posterior
/// class; the sd-vae-ft-mse configuration's keys, shapes and parameter count. Errors are in
/// AutoencoderKLErrorTests.swift.
final class AutoencoderKLTests: XCTestCase {
    /// |Δ| ≤ 1e-5·(1 + |b|). Outputs pass through ~40 float32 convolutions; the same libtorch kernels run in both,
    /// so the differences are at most rounding noise (the measured maxima are printed; on the CPU they are 0).
    static let tolerance = 1e-5

    static func url(_ name: String, _ ext: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures"),
                      "missing fixture \(name).\(ext): run scripts/make_fixtures.sh autoencoder")
    }

    /// The tiny model with the fixture's weights, in eval mode.
    static func tinyModel(_ fx: [String: Tensor]) throws -> AutoencoderKL {
        let model = try AutoencoderKL(.tiny)
        try model.loadStateDict(referenceStateDict(fx))
        model.eval()
        return model
    }

    /// Asserts |a − b| ≤ tolerance·(1 + |b|) and prints the largest difference.
    func assertParity(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath,
                      line: UInt = #line) throws {
        try assertClose(a, b, rtol: Self.tolerance, atol: Self.tolerance, what, file: file, line: line)
        if a.shape == b.shape {
            let diff = try (a.to(dtype: .float64) - b.to(dtype: .float64)).abs().amax().item()
            print("AutoencoderKL \(what): max |Δ| = \(diff)")
        }
    }

    func testConfigsDecodeFromDiffusersJSON() throws {
        let decoder = JSONDecoder()
        let sdJSON = try Data(contentsOf: Self.url("autoencoder_sd_config", "json"))
        let sd = try decoder.decode(AutoencoderKLConfig.self, from: sdJSON)
        XCTAssertEqual(sd, .sdVAEFtMSE)
        XCTAssertEqual(try AutoencoderKLConfig.load(from: Self.url("autoencoder_tiny_config", "json")), .tiny)
        // The keys stabilityai/sd-vae-ft-mse's published config.json sets (written from memory; the file cannot be
        // fetched here): the missing keys take diffusers' defaults.
        let original = """
            {"_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", "act_fn": "silu",
             "block_out_channels": [128, 256, 512, 512],
             "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
                                  "DownEncoderBlock2D"],
             "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
             "sample_size": 256,
             "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}
            """
        let decoded = try decoder.decode(AutoencoderKLConfig.self, from: Data(original.utf8))
        XCTAssertEqual(decoded, .sdVAEFtMSE)
        XCTAssertEqual(decoded.scalingFactor, 0.18215)
        XCTAssertEqual(decoded.downsamplingFactor, 8)
        // A list sample_size (diffusers takes its first entry); our JSON round-trips and names the class.
        let listed = try decoder.decode(AutoencoderKLConfig.self, from: Data(#"{"sample_size": [512, 512]}"#.utf8))
        XCTAssertEqual(listed.sampleSize, 512)
        XCTAssertEqual(listed.blockOutChannels, [64])  // diffusers' default
        var shifted = AutoencoderKLConfig.tiny
        shifted.shiftFactor = 0.1159
        shifted.latentsMean = [0, 1, 2, 3]
        let json = try JSONEncoder().encode(shifted)
        XCTAssertEqual(try decoder.decode(AutoencoderKLConfig.self, from: json), shifted)
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains(#""_class_name":"AutoencoderKL""#))
        XCTAssertEqual(try AutoencoderKLConfig.preset(named: "sd-vae-ft-mse"), .sdVAEFtMSE)
    }

    func testSDVAEFtMSEKeysShapesAndCountEqualDiffusers() throws {
        let fx = try fixture("autoencoder_sd_keys")
        var reference: [String: [Int]] = [:], order: [String: Int] = [:]
        for (key, value) in fx where key.hasPrefix("shape.") {
            reference[String(key.dropFirst(6))] = try value.toArray(as: Int64.self).map(Int.init)
        }
        for (key, value) in fx where key.hasPrefix("order.") { order[String(key.dropFirst(6))] = try value.itemInt() }
        let count = try tensor(fx, "parameter_count").itemInt()
        let model = try withNoGrad { try AutoencoderKL(.sdVAEFtMSE) }
        let built = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.shape) })
        XCTAssertEqual(Set(built.keys), Set(reference.keys))
        XCTAssertEqual(built, reference)
        XCTAssertEqual(model.stateDictKeys(), order.keys.sorted { order[$0]! < order[$1]! })  // diffusers' order
        XCTAssertEqual(model.parameterCount, count)
        XCTAssertEqual(model.namedBuffers().count, 0)
        XCTAssertEqual(AutoencoderKLConfig.sdVAEFtMSE.parameterCount, count)
        XCTAssertEqual(reference.count, 248)
        print("sd-vae-ft-mse: \(reference.count) tensors, \(count) parameters (diffusers), \(model.parameterCount) "
                  + "(built), \(AutoencoderKLConfig.sdVAEFtMSE.parameterCount) (from the config)")
        let catalog = Dictionary(uniqueKeysWithValues: ModelCatalog.entries.map { ($0.name, $0.parameterCount) })
        XCTAssertEqual(catalog["sd-vae-ft-mse"], count)
    }

    func testStateDictEntriesAreTheBuiltModelsInOrder() throws {
        var variants: [AutoencoderKLConfig] = [.tiny]
        var plain = AutoencoderKLConfig.tiny
        plain.midBlockAddAttention = false
        plain.useQuantConv = false
        plain.usePostQuantConv = false
        plain.blockOutChannels = [8, 16, 16]
        plain.downBlockTypes = Array(repeating: "DownEncoderBlock2D", count: 3)
        plain.upBlockTypes = Array(repeating: "UpDecoderBlock2D", count: 3)
        plain.layersPerBlock = 1
        variants.append(plain)
        for config in variants {
            let model = try AutoencoderKL(config)
            let built = try model.stateDict()
            XCTAssertEqual(config.stateDictEntries.map(\.name), model.stateDictKeys())
            XCTAssertEqual(config.stateDictEntries.map(\.shape), model.stateDictKeys().map { built[$0]!.shape })
            XCTAssertEqual(config.parameterCount, model.parameterCount)
        }
        let plainKeys = try AutoencoderKL(plain).stateDictKeys()
        XCTAssertFalse(plainKeys.contains { $0.contains("attentions") || $0.contains("quant") })
        print("vae-tiny: \(AutoencoderKLConfig.tiny.parameterCount) parameters")
    }

    func testInitialisationDrawsPyTorchsWeights() throws {
        let reference = referenceStateDict(try fixture("autoencoder_tiny"))
        Runtime.manualSeed(0)
        let model = try AutoencoderKL(.tiny)
        var compared = 0
        for (name, p) in model.namedParameters() {
            if name.contains("norm") {  // GroupNorms start at ones and zeros; the fixture perturbed them
                XCTAssertEqual(try p.amin().item(), try p.amax().item(), name)
            } else {
                XCTAssertTrue(try p.equal(XCTUnwrap(reference[name], name)), name)
                compared += 1
            }
        }
        XCTAssertEqual(compared, reference.keys.filter { !$0.contains("norm") }.count)
    }

    func testEncodeDecodeAndForwardMatchDiffusers() throws {
        let fx = try fixture("autoencoder_tiny")
        let model = try Self.tinyModel(fx)
        let x = try tensor(fx, "x"), z = try tensor(fx, "z")
        try withNoGrad {
            let posterior = try model.encode(x)
            try assertParity(posterior.mean, tensor(fx, "enc.mean"), "encode mean vs diffusers")
            try assertParity(posterior.logvar, tensor(fx, "enc.logvar"), "encode logvar vs diffusers")
            try assertParity(posterior.std, tensor(fx, "enc.std"), "encode std vs diffusers")
            try assertClose(posterior.kl(), tensor(fx, "enc.kl"), rtol: Self.tolerance, atol: 0, "encode kl")
            try assertParity(posterior.sample(seed: 11), tensor(fx, "enc.sample"),
                             "encode sample (seed 11) vs diffusers")
            try assertParity(model.decode(z), tensor(fx, "dec"), "decode vs diffusers")
            try assertParity(model(x), tensor(fx, "fwd.mode"), "forward (mode) vs diffusers")
            try assertParity(model(x, samplePosterior: true, seed: 7), tensor(fx, "fwd.sample"),
                             "forward (sample, seed 7) vs diffusers")
            XCTAssertEqual(posterior.mean.shape, [3, 4, 8, 12])
            XCTAssertGreaterThan(try (model(x, samplePosterior: true, seed: 8) - tensor(fx, "fwd.sample")).abs().amax()
                .item(), 1e-3)
        }
    }

    /// Slicing gives the unsliced result up to float32 rounding: libtorch's kernels may order their sums
    /// differently for another batch size (diffusers' own sliced and unsliced decodes differ as much).
    func testSlicedEqualsUnsliced() throws {
        let fx = try fixture("autoencoder_tiny")
        let model = try Self.tinyModel(fx)
        let x = try tensor(fx, "x"), z = try tensor(fx, "z")
        try withNoGrad {
            let whole = try model.decode(z), mean = try model.encode(x).mean
            for size in [1, 2, 3, 5] {
                try assertParity(model.decode(z, sliceSize: size), whole, "decode sliceSize \(size) vs unsliced")
                try assertParity(model.encode(x, sliceSize: size).mean, mean, "encode sliceSize \(size) vs unsliced")
            }
            try assertParity(model.decode(z, sliceSize: 1), tensor(fx, "dec.sliced"),
                             "decode sliceSize 1 vs diffusers' enable_slicing")
            try assertParity(model(x, sliceSize: 2), model(x), "forward sliceSize 2 vs unsliced")
        }
    }

    func testTiledMatchesDiffusers() throws {
        let fx = try fixture("autoencoder_tiny")
        let model = try Self.tinyModel(fx)
        let x = try tensor(fx, "x"), z = try tensor(fx, "z")
        let tiling = AutoencoderKLTiling.defaults(for: .tiny)
        XCTAssertEqual(tiling, AutoencoderKLTiling(tileSampleSize: 8, overlapFactor: 0.25))
        XCTAssertEqual(try tiling.tileLatentSize(.tiny), 4)
        try withNoGrad {
            let tiled = try model.encode(x, tiling: tiling)
            try assertParity(tiled.mean, tensor(fx, "tiled.mean"), "tiled encode mean vs diffusers")
            try assertParity(tiled.logvar, tensor(fx, "tiled.logvar"), "tiled encode logvar vs diffusers")
            let decoded = try model.decode(z, tiling: tiling)
            try assertParity(decoded, tensor(fx, "tiled.dec"), "tiled decode vs diffusers")
            // Tiling changes the result (each tile is decoded alone); slicing on top of it does not.
            XCTAssertGreaterThan(try (decoded - tensor(fx, "dec")).abs().amax().item(), 1e-3)
            try assertParity(model.decode(z, sliceSize: 1, tiling: tiling), decoded, "tiled + sliced vs tiled")
            // Inputs no larger than one tile are not tiled.
            let small = try z.slice(2, 0, 4).slice(3, 0, 4)
            try assertClose(model.decode(small, tiling: tiling), model.decode(small), rtol: 0, atol: 0, "one tile")
        }
    }

    func testPosteriorMatchesDiffusers() throws {
        let fx = try fixture("autoencoder_posterior")
        let posterior = try DiagonalGaussianDistribution(tensor(fx, "moments"))
        for (name, value) in [("mean", posterior.mean), ("logvar", posterior.logvar), ("std", posterior.std),
                              ("var", posterior.variance), ("mode", posterior.mode())] {
            try assertClose(value, tensor(fx, name), rtol: 1e-6, atol: 0, "posterior \(name)")
        }
        XCTAssertEqual(try posterior.logvar.amin().item(), -30)
        XCTAssertEqual(try posterior.logvar.amax().item(), 20)
        try assertClose(posterior.kl(), tensor(fx, "kl"), rtol: 1e-6, atol: 0, "posterior kl")
        try assertClose(posterior.sample(seed: 3), tensor(fx, "sample"), rtol: 1e-6, atol: 1e-6, "posterior sample")
        // sample(seed:) leaves libtorch's generator where it was; sample() draws from it.
        Runtime.manualSeed(5)
        let expected = try Tensor.randn([4])
        Runtime.manualSeed(5)
        _ = try posterior.sample(seed: 3)
        XCTAssertTrue(try Tensor.randn([4]).equal(expected))
        Runtime.manualSeed(3)
        try assertClose(posterior.sample(), tensor(fx, "sample"), rtol: 1e-6, atol: 1e-6, "posterior sample()")
        let noise = try Tensor.ones(posterior.mean.shape)
        try assertClose(posterior.sample(noise: noise), posterior.mean + posterior.std, rtol: 0, atol: 0, "mean + std")
    }

    func testLoadsDiffusersFoldersAndDeprecatedAttentionNames() throws {
        let fx = try fixture("autoencoder_tiny")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vae-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: Self.url("autoencoder_tiny_config", "json"),
                                         to: folder.appendingPathComponent("config.json"))
        let weights = folder.appendingPathComponent("diffusion_pytorch_model.safetensors")
        try SafeTensors.save(referenceStateDict(fx), to: weights)
        let model = try AutoencoderKL.pretrained(directory: folder)
        XCTAssertFalse(model.isTraining)
        try withNoGrad {
            try assertParity(model.decode(tensor(fx, "z")), tensor(fx, "dec"), "decode (model folder) vs diffusers")
        }

        // Files written before diffusers 0.14 name the attention projections query, key, value, proj_attn.
        var old: [String: Tensor] = [:]
        let renames = [("to_q.", "query."), ("to_k.", "key."), ("to_v.", "value."), ("to_out.0.", "proj_attn.")]
        for (key, value) in referenceStateDict(fx) {
            old[renames.reduce(key) { $0.replacingOccurrences(of: $1.0, with: $1.1) }] = value
        }
        XCTAssertNotNil(old["decoder.mid_block.attentions.0.proj_attn.weight"])
        let oldURL = folder.appendingPathComponent("old.safetensors")
        try SafeTensors.save(old, to: oldURL)
        let renamed = try AutoencoderKL.load(weights: oldURL, config: .tiny)
        try withNoGrad {
            try assertParity(renamed.decode(tensor(fx, "z")), tensor(fx, "dec"), "decode (old key names) vs diffusers")
        }
    }

    func testLatentScaling() throws {
        let z = try Tensor([1, -2, 0.5, 4] as [Float], shape: [1, 4, 1, 1])
        let sd = try AutoencoderKL(.tiny)
        try assertClose(sd.scaledLatents(z), z * 0.18215, rtol: 0, atol: 0, "z·0.18215")
        try assertClose(sd.unscaledLatents(sd.scaledLatents(z)), z, rtol: 1e-6, atol: 1e-6, "round trip")
        var config = AutoencoderKLConfig.tiny
        config.scalingFactor = 1.5305
        config.shiftFactor = 0.0609
        let shifted = try AutoencoderKL(config)
        try assertClose(shifted.scaledLatents(z), (z - 0.0609) * 1.5305, rtol: 0, atol: 0, "(z − shift)·scale")
        try assertClose(shifted.unscaledLatents(shifted.scaledLatents(z)), z, rtol: 1e-6, atol: 1e-6, "round trip")
    }
}
