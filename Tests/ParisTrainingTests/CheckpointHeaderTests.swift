import Foundation
import ParisDiffusion
import ParisModels
import ParisRun
import ParisRunTestSupport
import ParisTestSupport
import Torch
import XCTest

/// A published checkpoint's config.json is bounded and checked against its weights' safetensors header before a
/// model is built from it (issue #18: `depth: 100000000` built layers until the machine ran out of memory).
final class CheckpointHeaderTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    /// Rewrites keys of `folder/config.json`.
    func edit(_ folder: URL, _ changes: [String: Any]) throws {
        let url = folder.appendingPathComponent("config.json")
        var dict = try JSONObject.read(url)
        for (k, v) in changes { dict[k] = v }
        try JSONObject.write(dict, to: url)
    }

    func testExpertConfigIsBoundedAndMatchedToItsWeightsBeforeBuilding() throws {
        let root = try TinyRun.temporaryFolder(self)
        let folder = root.appendingPathComponent("expert_0")
        let info = ExpertCheckpoint(model: .cpuTiny, objective: .flowMatching(.uniform), cluster: 0,
                                    textEncoder: "minilm", steps: 1)
        try info.write(weights: try ParisExpert(.cpuTiny).stateDict(), to: folder)
        XCTAssertNoThrow(try ExpertCheckpoint.load(from: folder))
        let config = folder.appendingPathComponent("config.json").path

        try edit(folder, ["depth": 100_000_000])
        assertThrows({ try ExpertCheckpoint.load(from: folder) },
                     contains: "\(config): ParisExpertConfig: depth 100000000 is more than 256 (ModelLimits.maxDepth)")
        // Legal sizes that are not what the weights hold: built first, this config would take 161 GB.
        try edit(folder, ["depth": 200, "hidden_size": 4096, "num_heads": 16])
        assertThrows({ try ExpertCheckpoint.load(from: folder) },
                     contains: "\(config) does not match diffusion_pytorch_model.safetensors: the config's depth is 200, "
                        + "but the weights hold 2 layers (layers.0 … layers.1)")
        try edit(folder, ["depth": 2, "hidden_size": 4096])
        assertThrows({ try ExpertCheckpoint.load(from: folder) },
                     contains: "'patch_embed.weight' has shape [64, 3, 4, 4], but the config (hidden_size 4096, "
                        + "in_channels 3, patch_size 4) needs [4096, 3, 4, 4]")
        try edit(folder, ["hidden_size": 64, "num_heads": 4, "text_dim": 512])
        assertThrows({ try ExpertCheckpoint.checkWeights(in: folder) },
                     contains: "'text_proj.weight' has shape [64, 384], but the config (text_dim 512, hidden_size 64)")
        try edit(folder, ["text_dim": 384, "null_text": "zero"])
        assertThrows({ try ExpertCheckpoint.checkWeights(in: folder) },
                     contains: "the weights hold 'null_text_embedding', which a model of this config has no place for")
        try edit(folder, ["null_text": "learned"])
        XCTAssertNoThrow(try ExpertCheckpoint.load(from: folder))
    }

    func testRouterConfigIsBoundedAndMatchedToItsWeightsBeforeBuilding() throws {
        let folder = try TinyRun.temporaryFolder(self).appendingPathComponent("router")
        try RouterCheckpoint.write(config: .cpuTiny, weights: try Router(.cpuTiny).stateDict(), steps: 1, to: folder)
        XCTAssertNoThrow(try RouterCheckpoint.load(from: folder))
        try edit(folder, ["depth": 100_000_000])
        assertThrows({ try RouterCheckpoint.load(from: folder) }, contains: "config.json: RouterConfig: depth 100000000")
        try edit(folder, ["depth": 2, "num_experts": 9])
        assertThrows({ try RouterCheckpoint.load(from: folder) },
                     contains: "'head.4.weight' has shape [8, 64], but the config (hidden_size 64, num_experts 9)")
    }

    /// A weights file of `entries` (float32) whose data is a hole (a sparse file: nothing is written or read but
    /// the header), for checking full-size configs without their gigabytes.
    func sparseWeights(_ entries: [StateDictEntry], to url: URL) throws {
        var offset = 0
        var parts: [String] = []
        for e in entries {
            let bytes = e.shape.reduce(4, *)
            parts.append("\"\(e.name)\":{\"dtype\":\"F32\",\"shape\":\(e.shape),\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(32) }
        var length = UInt64(header.count).littleEndian
        var data = Data(bytes: &length, count: 8)
        data.append(contentsOf: header)
        try data.write(to: url)
        let h = try FileHandle(forWritingTo: url)
        try h.truncate(atOffset: UInt64(data.count + offset))
        try h.close()
    }

    /// The released Paris expert (DiT-XL/2 scale, 605M parameters) and router (DiT-B/2) pass the bounds and the
    /// header check; one layer fewer in the config is caught.
    func testReleasedShapesPassTheHeaderCheck() throws {
        let root = try TinyRun.temporaryFolder(self)
        let expert = root.appendingPathComponent("expert_0")
        try FileManager.default.createDirectory(at: expert, withIntermediateDirectories: true)
        try sparseWeights(ParisExpertConfig.paris.stateDictEntries,
                          to: expert.appendingPathComponent(ExpertCheckpoint.weightsName))
        var dict = try JSONObject.encode(ParisExpertConfig.paris)
        dict["_class_name"] = ExpertCheckpoint.className
        dict["objective"] = try JSONObject.encode(Objective.flowMatching(.uniform))
        try JSONObject.write(dict, to: expert.appendingPathComponent("config.json"))
        XCTAssertEqual(try ExpertCheckpoint.checkWeights(in: expert).model, .paris)
        XCTAssertEqual(try SafeTensors.header(expert.appendingPathComponent(ExpertCheckpoint.weightsName))
            .parameterCount, 605_970_448)
        try edit(expert, ["depth": 27])
        assertThrows({ try ExpertCheckpoint.checkWeights(in: expert) },
                     contains: "the config's depth is 27, but the weights hold 28 layers")

        let router = root.appendingPathComponent("router")
        try FileManager.default.createDirectory(at: router, withIntermediateDirectories: true)
        try sparseWeights(RouterConfig.paris.stateDictEntries, to: router.appendingPathComponent(RouterCheckpoint.weightsName))
        var r = try JSONObject.encode(RouterConfig.paris)
        r["_class_name"] = RouterCheckpoint.className
        try JSONObject.write(r, to: router.appendingPathComponent("config.json"))
        XCTAssertEqual(try RouterCheckpoint.checkWeights(in: router), .paris)
    }
}
