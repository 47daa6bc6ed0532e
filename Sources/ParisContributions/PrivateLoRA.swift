import Foundation
import ParisEnsemble
import ParisModels
import ParisRun
import ParisZK
import Torch

/// A LoRA whose weights stay with the contributor (ZKLoRA, arXiv 2501.13965): the bundle carries only
/// `adapter_config.json`, and the manifest publishes, before the first query, the KZG commitment of each adapted
/// layer's A and B under the owner's keys. The owner then measures base + LoRA over `paris serve lora`
/// (`RemoteLoRA`) and verifies proofs against these commitments.
///
/// The order of the protocol: the owner runs `paris zk setup` (circuits on dummy weights, a fresh SRS, keys) and
/// hands the folder to the contributor; the contributor commits (`paris contribute pack --private`), signs, and
/// serves; the owner admits.
public struct PrivateLoRA: Codable, Equatable, Sendable {
    /// The rows one proof covers (its circuit's).
    public var proofRows: Int
    public var layers: [Layer]

    /// One adapted layer with the text of its commitment.json.
    public struct Layer: Codable, Equatable, Sendable {
        public var path: String
        public var dIn: Int, dOut: Int, rank: Int
        public var commitment: String
        enum CodingKeys: String, CodingKey { case path, dIn = "d_in", dOut = "d_out", rank, commitment }
    }

    enum CodingKeys: String, CodingKey { case proofRows = "proof_rows", layers }

    /// The layers as the LoRA server lists them.
    public var wireLayers: [LoRAWire.Layer] { layers.map { .init(path: $0.path, dIn: $0.dIn, dOut: $0.dOut, rank: $0.rank) } }
    /// Layer path → commitment.
    public var commitments: [String: String] {
        Dictionary(layers.map { ($0.path, $0.commitment) }, uniquingKeysWith: { a, _ in a })
    }

    /// The layers a LoRA of `targets` at rank r adapts in an expert of `architecture`, in the model's order.
    public static func layers(of architecture: ParisExpertConfig, targets: [String], rank: Int) throws -> [LoRAWire.Layer] {
        let model = try ParisExpert(architecture)
        let found = LoRA.targetLayers(in: model, targets: targets)
        guard !found.isEmpty else { throw ContributionError("the LoRA targets \(targets) match no Linear of the expert") }
        return found.map { .init(path: $0.0, dIn: $0.1.inFeatures, dOut: $0.1.outFeatures, rank: rank) }
    }

    /// `paris zk setup` (the owner): keys for every layer shape a LoRA of `targets` at rank r has in expert k of
    /// `run`, under `out/<shape>/`; shapes already set up there are kept. Returns the shapes.
    @discardableResult
    public static func ownerSetup(run: URL, expert k: Int, targets: [String], rank: Int, rows: Int = 1,
                                  tool: ZKLoRATool, out: URL, log: (String) -> Void = { _ in }) throws -> [ZKLoRATool.Shape] {
        let base = try ExpertCheckpoint.checkWeights(in: RunLayout(run).expert(k))
        var shapes: [ZKLoRATool.Shape] = []
        for layer in try layers(of: base.model, targets: targets, rank: rank) {
            let shape = ZKLoRATool.Shape(dIn: layer.dIn, dOut: layer.dOut, rank: rank, rows: rows)
            if !shapes.contains(shape) { shapes.append(shape) }
        }
        for shape in shapes {
            let folder = ZKLoRATool.ownerFolder(out, shape)
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("shape.json").path) {
                log("\(shape): kept \(folder.path)")
                continue
            }
            let staging = out.appendingPathComponent(".\(shape.folderName).partial")
            try? FileManager.default.removeItem(at: staging)
            let logrows = try tool.setup(shape, out: staging)
            try FileManager.default.moveItem(at: staging, to: folder)
            log("\(shape): logrows \(logrows), keys in \(folder.path)")
        }
        return shapes
    }

    /// The contributor's commitments of the LoRA in `lora` under the owner's keys `owner`, with the compiled
    /// circuits (which hold the weights, and stay private) written under `contributor/<layer>/`.
    public static func commit(lora: URL, owner: URL, rows: Int = 1, tool: ZKLoRATool, contributor: URL,
                              log: (String) -> Void = { _ in }) throws -> PrivateLoRA {
        let checkpoint = try LoRACheckpoint.read(from: lora)
        let weights = lora.appendingPathComponent(LoRACheckpoint.weightsName)
        var out: [Layer] = []
        for layer in try layers(of: checkpoint.baseModel, targets: checkpoint.config.targetModules,
                                rank: checkpoint.config.r) {
            let shape = ZKLoRATool.Shape(dIn: layer.dIn, dOut: layer.dOut, rank: layer.rank, rows: rows)
            let keys = ZKLoRATool.ownerFolder(owner, shape)
            guard FileManager.default.fileExists(atPath: keys.path) else {
                throw ContributionError("the owner's keys have no circuit for \(layer.path) (\(shape)): \(keys.path) "
                    + "is missing; the owner runs `paris zk setup` with this LoRA's targets and rank")
            }
            let commitment = try tool.commit(weights: weights, layer: layer.path, owner: keys,
                                             out: ZKLoRATool.contributorFolder(contributor, layer: layer.path))
            out.append(Layer(path: layer.path, dIn: layer.dIn, dOut: layer.dOut, rank: layer.rank, commitment: commitment))
            log("committed \(layer.path) (\(shape))")
        }
        return PrivateLoRA(proofRows: rows, layers: out)
    }
}
