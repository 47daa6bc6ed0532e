import Foundation
import Torch

/// Growing a partition by one cluster, for `paris run add-expert`: the new data arrives as a partition of its own
/// with K = 1 (`paris partition --data D --out OUT --k 1 --held-out N`, made with the run's caption encoder), and
/// becomes cluster K of the run's K-cluster partition.
///
/// Nothing of the existing clusters changes but one number: each `shard.json` (and held-out `shard.json`) says
/// K + 1 clusters afterwards. Their data files, and so their checksums and every model's recorded `ShardIdentity`,
/// stay as they are. The work is done in two steps so that a refusal or a crash leaves the run's partition intact:
/// `stage` writes a complete K + 1 partition elsewhere (the existing shards' data files linked, not copied), and
/// `commit` moves it in, the manifest last.
public enum PartitionAddition {
    /// One cluster added to a partition: recorded in `manifest.json` `additions`.
    public struct Addition: Codable, Sendable, Equatable {
        public var cluster: Int
        /// The K = 1 partition it came from, as given.
        public var from: String
        /// What added it: "trained here" or "contribution <id>".
        public var note: String
        public var date: String
    }

    /// Writes into `staging` (which must not exist) the K + 1 partition: `shard_0 … shard_{K-1}` with their data
    /// files linked to `partition`'s and their `shard.json` saying K + 1; `shard_K` from `data`'s one shard,
    /// renumbered; the same for `held_out/`; `manifest.json`; and `centroids.safetensors` with the new cluster's
    /// caption centroids appended when both partitions clustered the same caption features (so `--strategy prompt`
    /// can choose it; otherwise the old centroids are kept and `notes` says so). Only `staging` is written.
    @discardableResult
    public static func stage(partition: URL, adding data: URL, into staging: URL, note: String,
                             notes: inout [String]) throws -> PartitionManifest {
        let fm = FileManager.default
        let old = try PartitionManifest.load(from: partition)
        let new: PartitionManifest
        do { new = try PartitionManifest.load(from: data) } catch { throw PartitionError("--data: \(error)") }
        let k = old.numClusters
        if let earlier = old.additions?.first(where: { $0.from == data.path }) {
            throw PartitionError("--data \(data.path) was already added as cluster \(earlier.cluster) (\(earlier.date))")
        }
        guard new.numClusters == 1 else {
            throw PartitionError("--data \(data.path) is a partition into \(new.numClusters) clusters; the new expert's "
                + "data must be one cluster (`paris partition --data D --out OUT --k 1 --held-out N`)")
        }
        for (what, a, b) in [("image size", "\(old.imageSize)", "\(new.imageSize)"),
                             ("channels", "\(old.channels)", "\(new.channels)"),
                             ("caption encoder", old.captionEncoder, new.captionEncoder),
                             ("text length", "\(old.textLength)", "\(new.textLength)"),
                             ("text width", "\(old.textDim)", "\(new.textDim)")] where a != b {
            throw PartitionError("--data \(data.path): its \(what) is \(b), the run's partition's is \(a); partition the "
                + "new data with the run's settings")
        }
        let heldOut = old.heldOut != nil
        if heldOut && HeldOut.folder(in: data) == nil {
            throw PartitionError("--data \(data.path) has no held-out images, but the run's partition holds some out for "
                + "every cluster; partition the new data with --held-out N")
        }
        guard !fm.fileExists(atPath: staging.path) else { throw PartitionError("\(staging.path) already exists") }
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)

        var manifest = old
        manifest.numClusters = k + 1
        manifest.metrics = nil  // purity and NMI were of the K-cluster split
        manifest.numImages += new.numImages
        for sub in heldOut ? ["", HeldOut.folderName] : [""] {
            let from = sub.isEmpty ? partition : partition.appendingPathComponent(sub)
            let to = sub.isEmpty ? staging : staging.appendingPathComponent(sub)
            for c in 0..<k { try link(shard: from.appendingPathComponent(Shard.folderName(cluster: c)),
                                      to: to.appendingPathComponent(Shard.folderName(cluster: c)), clusters: k + 1) }
            let source = (sub.isEmpty ? data : data.appendingPathComponent(sub)).appendingPathComponent(Shard.folderName(cluster: 0))
            let reader: ShardReader
            do { reader = try ShardReader(folder: source, expectedCluster: 0) } catch { throw PartitionError("--data: \(error)") }
            var info = reader.info
            (info.cluster, info.numClusters) = (k, k + 1)
            let target = to.appendingPathComponent(Shard.folderName(cluster: k))
            let writer = try ShardWriter(folder: target, info: info, partSize: reader.parts.map(\.count).max() ?? 1)
            var labels: [String: Int] = [:]
            for i in reader.parts.indices {  // part by part, each verified as it is read
                let part: ShardPart
                do { part = try reader.part(i) } catch { throw PartitionError("--data: \(error)") }
                for item in part.items { if let l = item.label { labels[l, default: 0] += 1 } }
                try writer.append(part)
            }
            let written = try writer.finish()
            let cluster = PartitionManifest.Cluster(index: k, size: written.count, shard: Shard.folderName(cluster: k),
                                                    labels: labels, checksums: written.checksums)
            if sub.isEmpty { manifest.clusters.append(cluster) } else { manifest.heldOut?.append(cluster) }
        }
        try mergeCentroids(old: old, partition: partition, new: new, data: data, into: staging, cluster: k, notes: &notes)
        manifest.additions = (old.additions ?? []) + [Addition(cluster: k, from: data.path, note: note,
                                                               date: ISO8601DateFormatter().string(from: Date()))]
        try AtomicFile.write(try manifest.encoded(), to: staging.appendingPathComponent(PartitionManifest.fileName))
        return manifest
    }

    /// `shard` at `target`: its data files as symbolic links, its shard.json a copy that says `clusters` clusters.
    static func link(shard: URL, to target: URL, clusters: Int) throws {
        var info = try Shard.info(at: shard)
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for name in info.dataFiles {
            try FileManager.default.createSymbolicLink(at: target.appendingPathComponent(name),
                                                       withDestinationURL: shard.appendingPathComponent(name).resolvingSymlinksInPath())
        }
        info.numClusters = clusters
        try AtomicFile.write(try Shard.encode(info), to: target.appendingPathComponent(Shard.infoName))
    }

    /// Appends the new partition's caption centroids (its fine centroids, or its one coarse centroid) as cluster k.
    static func mergeCentroids(old: PartitionManifest, partition: URL, new: PartitionManifest, data: URL, into staging: URL,
                               cluster k: Int, notes: inout [String]) throws {
        let oldURL = partition.appendingPathComponent(Partitioner.centroidsName)
        let target = staging.appendingPathComponent(Partitioner.centroidsName)
        guard FileManager.default.fileExists(atPath: oldURL.path) else { return }
        let newURL = data.appendingPathComponent(Partitioner.centroidsName)
        let same = old.method == .kmeans && new.method == .kmeans && old.features == new.features
            && old.textModel == new.textModel && old.config.metric == new.config.metric
        guard same, FileManager.default.fileExists(atPath: newURL.path) else {
            try FileManager.default.copyItem(at: oldURL, to: target)
            notes.append("the new data was not clustered on the same caption features as the run's partition, so "
                + "`--strategy prompt` cannot choose cluster \(k); the router can")
            return
        }
        var saved = try SafeTensors.load(oldURL).tensors
        let added = try SafeTensors.load(newURL).tensors
        guard let addedCoarse = added["coarse_centroids"], let coarse = saved["coarse_centroids"],
              addedCoarse.size(1) == coarse.size(1) else {
            throw PartitionError("\(newURL.path): its centroids do not match the width of \(oldURL.path)")
        }
        saved["coarse_centroids"] = try Tensor.cat([coarse, addedCoarse.to(dtype: coarse.dtype)])
        if let fine = saved["fine_centroids"], let map = saved["fine_to_coarse"] {
            let addedFine = try (added["fine_centroids"] ?? addedCoarse).to(dtype: fine.dtype)
            saved["fine_centroids"] = try Tensor.cat([fine, addedFine])
            let mapped = try Tensor([Int64](repeating: Int64(k), count: addedFine.size(0))).to(dtype: map.dtype)
            saved["fine_to_coarse"] = try Tensor.cat([map, mapped])
        }
        try SafeTensors.save(saved, to: target)
    }

    /// Moves a staged K + 1 partition into `partition`: `shard_K` and `held_out/shard_K` renamed in, each existing
    /// shard.json replaced by the staged one (K + 1 clusters; same checksums), the centroids, then `manifest.json`
    /// last, so the partition says K + 1 only once everything is there. Safe to repeat after a crash.
    public static func commit(staged: URL, into partition: URL) throws {
        let fm = FileManager.default
        let manifest = try PartitionManifest.load(from: staged)
        let k = manifest.numClusters - 1
        for sub in manifest.heldOut != nil ? ["", HeldOut.folderName] : [""] {
            let from = sub.isEmpty ? staged : staged.appendingPathComponent(sub)
            let to = sub.isEmpty ? partition : partition.appendingPathComponent(sub)
            let newShard = Shard.folderName(cluster: k)
            if fm.fileExists(atPath: from.appendingPathComponent(newShard).path) {
                if fm.fileExists(atPath: to.appendingPathComponent(newShard).path) {
                    try fm.removeItem(at: to.appendingPathComponent(newShard))  // a copy from an earlier, interrupted commit
                }
                try fm.moveItem(at: from.appendingPathComponent(newShard), to: to.appendingPathComponent(newShard))
            }
            for c in 0..<k {
                let info = try Data(contentsOf: from.appendingPathComponent(Shard.folderName(cluster: c))
                    .appendingPathComponent(Shard.infoName))
                try AtomicFile.write([UInt8](info), to: to.appendingPathComponent(Shard.folderName(cluster: c))
                    .appendingPathComponent(Shard.infoName))
            }
        }
        let centroids = staged.appendingPathComponent(Partitioner.centroidsName)
        if fm.fileExists(atPath: centroids.path) {
            try AtomicFile.write([UInt8](try Data(contentsOf: centroids)),
                                 to: partition.appendingPathComponent(Partitioner.centroidsName))
        }
        try AtomicFile.write(try manifest.encoded(), to: partition.appendingPathComponent(PartitionManifest.fileName))
    }
}
