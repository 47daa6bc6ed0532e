import ParisData
import ParisRun

extension ShardIdentity {
    /// The identity of shards as loaded for training (their `shard.json` infos): what a trainer records in its
    /// state and its published checkpoint.
    public init(_ infos: [ShardInfo]) {
        self.init(shards: infos.map { (cluster: $0.cluster, checksums: $0.checksums) })
    }
}
