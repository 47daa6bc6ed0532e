import Foundation
import ParisDiffusion
import ParisModels
import Torch

/// `run.json`: everything about a decentralized run. K experts (each with its own job settings, so experts may
/// differ in model, objective and hardware), the router, and the compute-matched monolith baseline.
public struct RunConfig: Codable, Sendable, Equatable {
    public static let currentVersion = 1
    public var version: Int
    public var name: String
    /// The imagefolder dataset the partition was made from (path as given; relative paths are relative to the run).
    public var dataset: String
    /// The partition folder, relative to the run folder (holds manifest.json and shard_<k>/).
    public var partition: String
    /// K: the number of clusters, experts and router classes.
    public var numExperts: Int
    /// One entry per expert, index k = cluster k.
    public var experts: [TrainJobConfig]
    public var router: TrainJobConfig
    /// The compute-matched single model (DDM): global batch K·B for the experts' S steps.
    public var monolith: TrainJobConfig?

    public init(name: String, dataset: String, partition: String = "partition", numExperts: Int,
                experts: [TrainJobConfig], router: TrainJobConfig, monolith: TrainJobConfig? = nil) {
        self.version = Self.currentVersion
        self.name = name
        self.dataset = dataset
        self.partition = partition
        self.numExperts = numExperts
        self.experts = experts
        self.router = router
        self.monolith = monolith
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case version, name, dataset, partition, numExperts = "num_experts", experts, router, monolith
    }

    /// Every key must be known, here and in each job and its `resources` (`UnknownKeyError`, naming the key, where
    /// it is and the nearest known key), and integers must be integers (`"num_experts": 4.5` is a type error at
    /// `num_experts`, not "not valid JSON").
    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeInteger(Int.self, forKey: .version)
        name = try c.decode(String.self, forKey: .name)
        dataset = try c.decode(String.self, forKey: .dataset)
        partition = try c.decode(String.self, forKey: .partition)
        numExperts = try c.decodeInteger(Int.self, forKey: .numExperts)
        experts = try c.decode([TrainJobConfig].self, forKey: .experts)
        router = try c.decode(TrainJobConfig.self, forKey: .router)
        monolith = try c.decodeIfPresent(TrainJobConfig.self, forKey: .monolith)
    }

    /// Checks K against the experts, every job's settings and every model preset.
    public func validate() throws {
        guard version == Self.currentVersion else {
            throw RunError("run.json version \(version) is not supported (this paris reads version \(Self.currentVersion))")
        }
        guard numExperts >= 1 else { throw RunError("num_experts must be at least 1, not \(numExperts)") }
        guard numExperts <= RouterConfig.maxExperts else {
            throw RunError("num_experts must be ≤ \(RouterConfig.maxExperts) (RouterConfig.maxExperts), not \(numExperts)")
        }
        guard experts.count == numExperts else {
            throw RunError("num_experts is \(numExperts) but run.json lists \(experts.count) experts")
        }
        for (k, e) in experts.enumerated() {
            try e.validate("expert \(k)")
            do { _ = try ParisExpertConfig.preset(named: e.model) } catch { throw RunError("expert \(k): \(error)") }
        }
        try router.validate("router")
        do { _ = try RouterConfig.preset(named: router.model) } catch { throw RunError("router: \(error)") }
        if let m = monolith {
            try m.validate("monolith")
            do { _ = try ParisExpertConfig.preset(named: m.model) } catch { throw RunError("monolith: \(error)") }
        }
    }

    /// Expert k's job settings, or a clear error when k is out of range.
    public func expert(_ k: Int) throws -> TrainJobConfig {
        guard (0..<numExperts).contains(k) else {
            throw RunError("expert index \(k) is out of range: this run has \(numExperts) experts (0...\(numExperts - 1))")
        }
        return experts[k]
    }

    /// Reads and validates `run.json`, with errors that name the file and the bad key.
    public static func load(_ url: URL) throws -> RunConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw RunError("\(url.path): not found; create the run with `paris run init`")
        }
        let config: RunConfig
        do { config = try JSONDecoder().decode(RunConfig.self, from: data) } catch let error as DecodingError {
            throw RunError("\(url.path): malformed run.json: \(describe(error))")
        } catch {
            throw RunError("\(url.path): malformed run.json: \(error)")
        }
        do { try config.validate() } catch { throw RunError("\(url.path): \(error)") }
        return config
    }

    /// Writes `run.json` atomically.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10], to: url)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "at the top level" : "at \(p.hasPrefix(".") ? String(p.dropFirst()) : p)"
        }
        switch error {
        case .keyNotFound(let key, let c): return "missing key '\(key.stringValue)' \(path(c))"
        case .typeMismatch(_, let c): return "wrong type \(path(c)): \(c.debugDescription)"
        case .valueNotFound(_, let c): return "missing value \(path(c))"
        case .dataCorrupted(let c): return "\(c.debugDescription) \(path(c))"
        @unknown default: return "\(error)"
        }
    }
}
