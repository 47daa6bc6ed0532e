import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// An expert's published weights, in the released Paris repository's naming:
/// `expert_<k>/config.json` (the model config's snake_case keys plus `_class_name`, `objective`, `cluster`,
/// `text_encoder`) and `expert_<k>/diffusion_pytorch_model.safetensors` (the EMA weights).
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

    public init(model: ParisExpertConfig, objective: Objective, cluster: Int?, textEncoder: String, steps: Int) {
        self.model = model
        self.objective = objective
        self.cluster = cluster
        self.textEncoder = textEncoder
        self.steps = steps
    }

    /// Whether `folder` holds a complete checkpoint (both files).
    public static func exists(in folder: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder.appendingPathComponent(configName).path)
            && fm.fileExists(atPath: folder.appendingPathComponent(weightsName).path)
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
            return ExpertCheckpoint(model: model, objective: objective, cluster: dict["cluster"] as? Int,
                                    textEncoder: dict["text_encoder"] as? String ?? "unknown",
                                    steps: dict["steps"] as? Int ?? 0)
        } catch {
            throw RunError("\(url.path): \(error)")
        }
    }

    /// Loads config and weights (strictly) into a model in eval mode on `device`.
    public static func load(from folder: URL, device: Device = .cpu) throws -> (ParisExpert, ExpertCheckpoint) {
        let info = try read(from: folder)
        let model = try ParisExpert(info.model, device: device)
        let url = folder.appendingPathComponent(weightsName)
        guard FileManager.default.fileExists(atPath: url.path) else { throw RunError("\(url.path): not found") }
        let weights = try SafeTensors.load(url, device: device)
        do { try model.loadStateDict(weights.tensors) } catch { throw RunError("\(url.path): \(error)") }
        model.train(false)
        return (model, info)
    }
}

/// The router's published weights: `router/config.json` (RouterConfig keys plus `_class_name`) and
/// `router/model.safetensors`.
public enum RouterCheckpoint {
    public static let configName = "config.json"
    public static let weightsName = "model.safetensors"
    public static let className = "ParisRouter"
    /// The held-out evaluation the router trainer writes beside the weights (`RouterEvaluation`).
    public static let evaluationName = "eval.json"

    /// The held-out accuracy recorded in `folder/eval.json`, nil when there is none.
    public static func heldOutAccuracy(in folder: URL) -> Double? {
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(evaluationName).path),
              let dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        return (dict["accuracy"] as? NSNumber)?.doubleValue
    }

    public static func exists(in folder: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder.appendingPathComponent(configName).path)
            && fm.fileExists(atPath: folder.appendingPathComponent(weightsName).path)
    }

    /// Writes the weights, then the config (both atomic).
    public static func write(config: RouterConfig, weights: [String: Tensor], steps: Int, to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try SafeTensors.save(weights, to: folder.appendingPathComponent(weightsName),
                             metadata: ["paris_class": className, "steps": String(steps)])
        var dict = try JSONObject.encode(config)
        dict["_class_name"] = className
        dict["steps"] = steps
        try JSONObject.write(dict, to: folder.appendingPathComponent(configName))
    }

    /// Loads config and weights (strictly) into a router in eval mode on `device`.
    public static func load(from folder: URL, device: Device = .cpu) throws -> Router {
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
        let router = try Router(config, device: device)
        let wurl = folder.appendingPathComponent(weightsName)
        guard FileManager.default.fileExists(atPath: wurl.path) else { throw RunError("\(wurl.path): not found") }
        do { try router.loadStateDict(try SafeTensors.load(wurl, device: device).tensors) } catch {
            throw RunError("\(wurl.path): \(error)")
        }
        router.train(false)
        return router
    }
}

/// JSON objects as dictionaries, for config files that merge a Codable model config with extra keys.
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
