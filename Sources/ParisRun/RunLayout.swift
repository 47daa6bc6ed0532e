import Foundation

/// The folders and files of a run (they mirror the released Paris repository: `expert_<k>/`, `router/`).
///
/// ```
/// <run>/run.json, <run>/mixture.json (optional: remote experts)
/// <run>/partition/{manifest.json, centroids.safetensors, grids.png, shard_<k>/}
/// <run>/expert_<k>/{config.json, diffusion_pytorch_model.safetensors, state/, metrics.jsonl, samples/, log.txt}
/// <run>/router/{config.json, model.safetensors, state/, metrics.jsonl, eval.json}
/// <run>/monolith/   (same layout as an expert)
/// <run>/eval/report.md, <run>/samples/, <run>/launch/
/// ```
public struct RunLayout: Sendable, Equatable {
    public let root: URL
    public init(_ root: URL) { self.root = root.standardizedFileURL }

    public var runJSON: URL { root.appendingPathComponent("run.json") }
    /// The optional list of remote experts that fill some of the run's slots at sampling time
    /// (`RemoteExpertConfig.read(mixtureJSON:)`).
    public var mixtureJSON: URL { root.appendingPathComponent("mixture.json") }
    public func partition(_ config: RunConfig) -> URL { root.appendingPathComponent(config.partition) }
    public func shard(_ k: Int, _ config: RunConfig) -> URL {
        partition(config).appendingPathComponent(Self.shardFolder(k))
    }
    /// Cluster k's shard folder inside a partition, `shard_<k>` (ParisData's `Shard.folderName` writes the same).
    public static func shardFolder(_ k: Int) -> String { "shard_\(k)" }
    public func expert(_ k: Int) -> URL { root.appendingPathComponent("expert_\(k)") }
    public var router: URL { root.appendingPathComponent("router") }
    public var monolith: URL { root.appendingPathComponent("monolith") }
    public var eval: URL { root.appendingPathComponent("eval") }
    /// `eval/report.md`, which `paris eval` writes last: evaluation is finished when it exists.
    public var evalReport: URL { eval.appendingPathComponent("report.md") }
    public var samples: URL { root.appendingPathComponent("samples") }
    public var launch: URL { root.appendingPathComponent("launch") }

    /// Loads and validates `run.json`.
    public func config() throws -> RunConfig { try RunConfig.load(runJSON) }
}
