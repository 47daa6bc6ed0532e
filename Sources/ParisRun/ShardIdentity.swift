import Crypto
import Foundation

/// The data a model was trained on, shard by shard: `{"shard_0": "9f2c41d07be3a815"}`, each value the digest of
/// that shard's `shard.json` checksums (the SHA-256 of every data file: images, text embeddings, items). It changes
/// whenever a shard's content does, in particular when the partition is rebuilt under the run
/// (`paris partition … --force` with another seed or K: k-means numbers its clusters anew).
///
/// Written once here and recorded in two places: the training state (`state.json` `shards`; a resume on changed
/// shards is refused) and the published checkpoint (`config.json` `shards` of an expert, the monolith and the
/// router; `paris sample` and `paris eval` warn by name about each model trained on other data). An expert records
/// its own shard, the monolith and the router every shard.
public struct ShardIdentity: Codable, Sendable, Equatable {
    /// Shard folder name (`shard_<k>`) → digest.
    public var digests: [String: String]

    public init(_ digests: [String: String]) { self.digests = digests }

    /// The identity of shards given as (cluster, the per-file checksums of its `shard.json`).
    public init(shards: [(cluster: Int, checksums: [String: String])]) {
        digests = Dictionary(shards.map { (RunLayout.shardFolder($0.cluster), Self.digest(checksums: $0.checksums)) },
                             uniquingKeysWith: { a, _ in a })
    }

    /// The first 16 hex digits of the SHA-256 of the checksums as sorted `<file> <sha256>` lines: one short value
    /// that changes when any file's checksum does.
    public static func digest(checksums: [String: String]) -> String {
        var hash = SHA256()
        for (name, sum) in checksums.sorted(by: { $0.key < $1.key }) { hash.update(data: Array("\(name) \(sum)\n".utf8)) }
        return String(hash.finalize().map { String(format: "%02x", $0) }.joined().prefix(16))
    }

    /// What the partition folder holds now for `clusters`, from each `shard_<k>/shard.json` (no data file is read or
    /// hashed; `ShardReader` checks those against the checksums). A shard without a readable `shard.json` is left out.
    public static func current(partition: URL, clusters: [Int]) -> ShardIdentity {
        /// The one key of `shard.json` (ParisData's `ShardInfo`) that the identity needs.
        struct Checksums: Decodable { let checksums: [String: String] }
        return ShardIdentity(shards: clusters.compactMap { k in
            let url = partition.appendingPathComponent(RunLayout.shardFolder(k)).appendingPathComponent("shard.json")
            guard let data = FileManager.default.contents(atPath: url.path),
                  let info = try? JSONDecoder().decode(Checksums.self, from: data) else { return nil }
            return (k, info.checksums)
        })
    }

    /// How `current` differs from this (recorded) identity, one entry per shard, sorted by name:
    /// `shard_1 (trained on 9f2c41d07be3a815, now 03aa…)`, `shard_2 (trained on …, now absent)`,
    /// `shard_3 (not trained on)`; empty when they are equal.
    public func differences(from current: ShardIdentity) -> [String] {
        Set(digests.keys).union(current.digests.keys).sorted {
            ($0.count, $0) < ($1.count, $1)  // shard_2 before shard_10
        }.compactMap { name in
            switch (digests[name], current.digests[name]) {
            case let (was?, now?): return was == now ? nil : "\(name) (trained on \(was), now \(now))"
            case let (was?, nil): return "\(name) (trained on \(was), now absent)"
            default: return "\(name) (not trained on)"
            }
        }
    }

    /// The warning (without a "warning: " prefix) `paris sample` and `paris eval` give for a published model (`model`: "expert 1", "the router")
    /// whose `recorded` identity differs from what `partition` holds now for `clusters`; nil when they agree, when
    /// the checkpoint records none (written before identities were recorded) or when the partition folder is not
    /// there (a run copied without its data). `retrain`: the command that brings the model up to date.
    public static func staleness(of model: String, recorded: ShardIdentity?, partition: URL, clusters: [Int],
                                 retrain: String) -> String? {
        guard let recorded, FileManager.default.fileExists(atPath: partition.path) else { return nil }
        let changed = recorded.differences(from: current(partition: partition, clusters: clusters))
        guard !changed.isEmpty else { return nil }
        return "\(model) was trained on other data than \(partition.path) holds now: "
            + changed.joined(separator: ", ") + "; the partition was rebuilt since. Retrain it (`\(retrain)`) or "
            + "re-partition back (the same data, settings and seed)"
    }

    // A plain JSON object, `{"shard_0": "…"}`.
    public init(from decoder: Decoder) throws {
        digests = try decoder.singleValueContainer().decode([String: String].self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(digests)
    }
}

extension RunLayout {
    /// The staleness warning (`ShardIdentity.staleness`) of every published model of the run that was trained on
    /// other shards than its partition holds now, keyed by job name (`expert_<k>`, `router`, `monolith`), each
    /// with the command that retrains it; empty when all agree. Reads config files only, no weights. The one
    /// check behind `paris status`, `paris launch --resume` (which refuses to skip a stale job as finished),
    /// `paris sample` and `paris eval`.
    public func staleJobs(_ config: RunConfig) -> [String: String] {
        let partition = partition(config), all = Array(0..<config.numExperts), run = root.path
        var stale: [String: String] = [:]
        for k in all {
            let recorded = (try? ExpertCheckpoint.read(from: expert(k)))?.shards
            stale["expert_\(k)"] = ShardIdentity.staleness(
                of: "expert \(k)", recorded: recorded, partition: partition, clusters: [k],
                retrain: "paris train expert --run \(run) --expert \(k) --restart")
        }
        stale["router"] = ShardIdentity.staleness(
            of: "the router", recorded: RouterCheckpoint.shards(in: router), partition: partition, clusters: all,
            retrain: "paris train router --run \(run) --restart")
        stale["monolith"] = ShardIdentity.staleness(
            of: "the monolith", recorded: (try? ExpertCheckpoint.read(from: monolith))?.shards,
            partition: partition, clusters: all, retrain: "paris train monolith --run \(run) --restart")
        return stale
    }
}
