import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// An expert's published weights, in the released Paris repository's naming:
/// `expert_<k>/config.json` (the model config's snake_case keys plus `_class_name`, `objective`, `cluster`,
/// `text_encoder`, `steps` and `shards`) and `expert_<k>/diffusion_pytorch_model.safetensors` (the EMA weights).
public struct ExpertCheckpoint: Sendable {
    public static let configName = "config.json"
    public static let weightsName = "diffusion_pytorch_model.safetensors"
    public static let className = "ParisExpert"

    public var model: ParisExpertConfig
    public var objective: Objective
    /// The cluster the expert was trained on (nil for the monolith).
    public var cluster: Int?
    /// The text encoder whose token embeddings condition the expert.
    public var textEncoder: String
    /// Training steps behind these weights.
    public var steps: Int
    /// The shards the weights were trained on (`ShardIdentity`; the expert's own, or all of them for the
    /// monolith); nil in a checkpoint written before they were recorded.
    public var shards: ShardIdentity?
    /// The autoencoder whose latents the expert learned (`LatentSpace`, config.json's `latents`); nil for an expert
    /// on pixels.
    public var latents: LatentSpace?

    public init(model: ParisExpertConfig, objective: Objective, cluster: Int?, textEncoder: String, steps: Int,
                shards: ShardIdentity? = nil, latents: LatentSpace? = nil) {
        self.model = model
        self.objective = objective
        self.cluster = cluster
        self.textEncoder = textEncoder
        self.steps = steps
        self.shards = shards
        self.latents = latents
    }

    /// Whether `folder` holds a complete checkpoint (both files).
    public static func exists(in folder: URL) -> Bool {
        bothFilesExist(in: folder, configName, weightsName)
    }

    /// Writes the weights, then the config (both atomic), so a config always describes weights that are there.
    public func write(weights: [String: Tensor], to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try SafeTensors.save(weights, to: folder.appendingPathComponent(Self.weightsName),
                             metadata: ["paris_class": Self.className, "steps": String(steps)])
        var dict = try JSONObject.encode(model)
        dict["_class_name"] = Self.className
        dict["objective"] = try JSONObject.encode(objective)
        dict["cluster"] = cluster.map { $0 as Any } ?? NSNull()
        dict["text_encoder"] = textEncoder
        dict["steps"] = steps
        if let shards { dict["shards"] = shards.digests }
        if let latents { dict["latents"] = try JSONObject.encode(latents) }
        try JSONObject.write(dict, to: folder.appendingPathComponent(Self.configName))
    }

    /// Reads `config.json`.
    public static func read(from folder: URL) throws -> ExpertCheckpoint {
        let url = folder.appendingPathComponent(configName)
        let dict = try JSONObject.read(url)
        guard dict["_class_name"] as? String == className else {
            throw RunError("\(url.path): _class_name is \(dict["_class_name"] ?? "missing"), expected \(className)")
        }
        do {
            let model = try JSONObject.decode(ParisExpertConfig.self, from: dict)
            try model.validate()
            guard let objectiveDict = dict["objective"] as? [String: Any] else { throw RunError("missing objective") }
            let objective = try JSONObject.decode(Objective.self, from: objectiveDict)
            let latents = try (dict["latents"] as? [String: Any]).map {
                try JSONObject.decode(LatentSpace.self, from: $0)
            }
            return ExpertCheckpoint(model: model, objective: objective, cluster: dict["cluster"] as? Int,
                                    textEncoder: dict["text_encoder"] as? String ?? "unknown",
                                    steps: dict["steps"] as? Int ?? 0,
                                    shards: (dict["shards"] as? [String: String]).map(ShardIdentity.init),
                                    latents: latents)
        } catch {
            throw RunError("\(url.path): \(error)")
        }
    }

    /// Reads `config.json` (validated, so within `ModelLimits`) and compares the model it describes with the header
    /// of the weights file (names and shapes; no tensor is loaded, no model built). A config.json that disagrees
    /// with its weights fails here, naming both files and the key.
    @discardableResult
    public static func checkWeights(in folder: URL) throws -> ExpertCheckpoint {
        let info = try read(from: folder)
        let url = folder.appendingPathComponent(weightsName)
        guard FileManager.default.fileExists(atPath: url.path) else { throw RunError("\(url.path): not found") }
        try checkWeightsHeader(info.model.stateDictEntries, depth: info.model.depth, config: info.model,
                               configURL: folder.appendingPathComponent(configName), weights: url)
        return info
    }

    /// Loads config and weights (strictly) into a model in eval mode on `device`, after `checkWeights(in:)`: the
    /// model is built only from a config that matches its weights.
    public static func load(from folder: URL, device: Device = .cpu) throws -> (ParisExpert, ExpertCheckpoint) {
        let info = try checkWeights(in: folder)
        let url = folder.appendingPathComponent(weightsName)
        let model = try ParisExpert(info.model, device: device)
        let weights = try SafeTensors.load(url, device: device)
        do { try model.loadStateDict(weights.tensors) } catch { throw RunError("\(url.path): \(error)") }
        model.train(false)
        return (model, info)
    }
}

/// The router's published weights: `router/config.json` (RouterConfig keys plus `_class_name`, `steps`,
/// `router_kind` — `text-free` or `text-conditioned`; a config without it, from before text-conditioned routers, is
/// text-free — and `shards`, the `ShardIdentity` of every shard it was trained on) and `router/model.safetensors`.
public enum RouterCheckpoint {
    public static let configName = "config.json"
    public static let weightsName = "model.safetensors"
    public static let className = "ParisRouter"
    /// The config key that says which router it is (`RouterKind`).
    public static let kindKey = "router_kind"
    /// The held-out evaluation the router trainer writes beside the weights (`RouterEvaluation`).
    public static let evaluationName = "eval.json"

    /// The held-out accuracy recorded in `folder/eval.json`, nil when there is none.
    public static func heldOutAccuracy(in folder: URL) -> Double? {
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(evaluationName).path),
              let dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        return (dict["accuracy"] as? NSNumber)?.doubleValue
    }

    public static func exists(in folder: URL) -> Bool {
        bothFilesExist(in: folder, configName, weightsName)
    }

    /// The shards the router in `folder` was trained on (config.json `shards`), nil when it records none.
    public static func shards(in folder: URL) -> ShardIdentity? {
        ((try? JSONObject.read(folder.appendingPathComponent(configName)))?["shards"] as? [String: String])
            .map(ShardIdentity.init)
    }

    /// Writes the weights, then the config (both atomic). `shards`: what it was trained on.
    public static func write(config: RouterConfig, weights: [String: Tensor], steps: Int,
                             shards: ShardIdentity? = nil, to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try SafeTensors.save(weights, to: folder.appendingPathComponent(weightsName),
                             metadata: ["paris_class": className, "steps": String(steps)])
        var dict = try JSONObject.encode(config)
        dict["_class_name"] = className
        dict[kindKey] = config.kind.rawValue
        dict["steps"] = steps
        if let shards { dict["shards"] = shards.digests }
        try JSONObject.write(dict, to: folder.appendingPathComponent(configName))
    }

    /// Loads config and weights (strictly) into a router in eval mode on `device`, after `checkWeights(in:)`.
    /// `kind` and `numExperts`, when given, are what the caller needs: a router of another kind or for another K
    /// is refused here, naming the file, before the router is built.
    public static func load(from folder: URL, device: Device = .cpu, kind: RouterKind? = nil,
                            numExperts: Int? = nil) throws -> Router {
        let config = try checkWeights(in: folder)
        let url = folder.appendingPathComponent(configName)
        if let kind, config.kind != kind {
            throw RunError("\(url.path): the router is \(config.kind) (\(config.kind.inputs)), but a \(kind) router "
                + "(\(kind.inputs)) is expected; retrain it with `paris train router` or fix run.json's router model")
        }
        if let numExperts, config.numExperts != numExperts {
            throw RunError("\(url.path): the router scores \(config.numExperts) experts, but the run has \(numExperts); "
                + "it was trained for another K")
        }
        let router = try Router(config, device: device)
        let wurl = folder.appendingPathComponent(weightsName)
        do { try router.loadStateDict(try SafeTensors.load(wurl, device: device).tensors) } catch {
            throw RunError("\(wurl.path): \(error)")
        }
        router.train(false)
        return router
    }

    /// Reads `config.json` (validated) and compares the router it describes with the weights file's header, without
    /// loading a tensor or building the router (see `ExpertCheckpoint.checkWeights(in:)`).
    @discardableResult
    public static func checkWeights(in folder: URL) throws -> RouterConfig {
        let url = folder.appendingPathComponent(configName)
        let dict = try JSONObject.read(url)
        guard dict["_class_name"] as? String == className else {
            throw RunError("\(url.path): _class_name is \(dict["_class_name"] ?? "missing"), expected \(className)")
        }
        let config: RouterConfig
        do {
            config = try JSONObject.decode(RouterConfig.self, from: dict)
            try config.validate()
        } catch { throw RunError("\(url.path): \(error)") }
        if let written = dict[kindKey] {
            guard let name = written as? String, let kind = RouterKind(rawValue: name) else {
                throw RunError("\(url.path): \(kindKey) is \(written), expected one of "
                    + RouterKind.allCases.map(\.rawValue).joined(separator: ", "))
            }
            guard kind == config.kind else {
                throw RunError("\(url.path): \(kindKey) says \(kind), but text_dim is "
                    + (config.textDim.map(String.init) ?? "absent") + " (a \(config.kind) router)")
            }
        }
        let wurl = folder.appendingPathComponent(weightsName)
        guard FileManager.default.fileExists(atPath: wurl.path) else { throw RunError("\(wurl.path): not found") }
        try checkWeightsHeader(config.stateDictEntries, depth: config.depth, config: config, configURL: url,
                               weights: wurl)
        return config
    }
}

/// Compares a model config's state-dict entries (`stateDictEntries`) with the names and shapes in the header of
/// its weights file, without loading a tensor, before the model is built: the header bounds what the config may
/// ask for (a file cannot list the layers of `depth: 100000000` without holding them).
func checkWeightsHeader<C: Encodable>(_ entries: [StateDictEntry], depth: Int, config: C, configURL: URL,
                                      weights: URL) throws {
    let header = try SafeTensors.header(weights)
    let found = Dictionary(header.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
    let values = try JSONObject.encode(config).mapValues { "\($0)" }
    do { try StateDictEntry.check(entries, against: found, depth: depth, values: values) } catch {
        throw RunError("\(configURL.path) does not match \(weights.lastPathComponent): \(error)")
    }
}

/// JSON objects as dictionaries, for config files that merge a Codable model config with extra keys.
/// Whether `folder` holds both files of a published checkpoint (its config and its weights): the one "is it
/// there" rule of the expert, router and LoRA checkpoints.
func bothFilesExist(in folder: URL, _ config: String, _ weights: String) -> Bool {
    let fm = FileManager.default
    return fm.fileExists(atPath: folder.appendingPathComponent(config).path)
        && fm.fileExists(atPath: folder.appendingPathComponent(weights).path)
}

public enum JSONObject {
    public static func encode<T: Encodable>(_ value: T) throws -> [String: Any] {
        let data = try JSONEncoder().encode(value)
        guard let dict = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RunError("\(T.self) does not encode to a JSON object")
        }
        return dict
    }

    public static func decode<T: Decodable>(_ type: T.Type, from dict: [String: Any]) throws -> T {
        try JSONDecoder().decode(T.self, from: try JSONSerialization.data(withJSONObject: dict))
    }

    public static func read(_ url: URL) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw RunError("\(url.path): not found") }
        guard let dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw RunError("\(url.path): not a JSON object")
        }
        return dict
    }

    public static func write(_ dict: [String: Any], to url: URL) throws {
        let data = try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys,
                                                                              .withoutEscapingSlashes])
        try AtomicFile.write([UInt8](data) + [10], to: url)
    }
}
