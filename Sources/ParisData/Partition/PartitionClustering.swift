import Foundation
import Torch

/// The cluster of every image of a partition, by its method, with what `centroids.safetensors` stores.
///
/// k-means fits `HierarchicalKMeans` on the features of at most `kmeans_sample` training images. When the training
/// images are no more than that, the sample is all of them, in order, and the result is exactly Lloyd's over the
/// full data. Otherwise the sample is a seeded draw of that many training images (`sampleSeed`), and every image
/// is then assigned chunk by chunk as a training image is: its nearest fine centroid, mapped to its coarse cluster
/// (or the nearest coarse centroid when one stage ran). So memory holds the sample's features and one chunk, never
/// all N × D features. Held-out images are assigned the same way in both cases.
struct PartitionClustering {
    /// The cluster of each image (row), training and held-out.
    var assignments: [Int]
    /// The centroids file's tensors (assignments, held_out_rows, and the k-means' centroids).
    var saved: [String: Tensor]
    var clustering: PartitionManifest.Clustering?

    /// The draw of the k-means sample ("SAMP"), offset by the partition's seed.
    static let sampleSeed: UInt64 = 0x5341_4D50

    /// The features k-means sees for images `rows`: image and/or sentence features, each L2-normalised, joined.
    typealias Features = ([Int]) throws -> Tensor

    static func run(config: PartitionConfig, rows n: Int, held: [Int], train: [Int], labels: (Int) -> String?,
                    features: Features, chunks: OpenedChunks, device: Device,
                    log: (String) -> Void) throws -> PartitionClustering {
        let k = config.numClusters
        var assignments = [Int](repeating: -1, count: n)
        var saved: [String: Tensor] = [:], clustering: PartitionManifest.Clustering? = nil
        func place(_ rows: [Int], _ clusters: [Int]) { for (r, c) in zip(rows, clusters) { assignments[r] = c } }
        switch config.method {
        case .random:
            place(train, try RandomSplit.balanced(count: train.count, clusters: k, seed: config.seed))
            place(held, HeldOut.randomClusters(count: held.count, clusters: k, seed: config.seed))
        case .label:
            let split = try LabelSplit.split(labels: train.map(labels), clusters: k)
            place(train, split.assignments)
            place(held, try HeldOut.labelClusters(labels: held.map(labels), groups: split.groups))
        case .kmeans:
            let full = train.count <= config.kmeansSample
            let sample = full ? train : ShardLoader.permutation(count: train.count, seed: sampleSeed &+ config.seed,
                                                                 epoch: 0).prefix(config.kmeansSample).sorted().map { train[$0] }
            let x = try features(sample).to(device: device)  // [S, D]
            log("features: \(x.shape) on \(device)" + (full ? "" : " (a sample of \(sample.count) of the "
                + "\(train.count) training images; the rest are assigned chunk by chunk)"))
            let result = try HierarchicalKMeans.fit(x, config: HierarchicalKMeans.Config(
                clusters: k, fineClusters: config.fineClusters, metric: config.metric,
                maxIterations: config.maxIterations, seed: config.seed), log: log)
            var fineOf = [Int](repeating: -1, count: n)
            if full {
                place(train, try ints(result.assignments))
                if let fine = result.fine { for (r, f) in zip(train, try ints(fine.assignments)) { fineOf[r] = f } }
                let (_, coarse) = try nearest(try features(held).to(device: device), result, metric: config.metric)
                place(held, coarse)
            } else {
                for i in 0..<chunks.count where !chunks.range(i).isEmpty {
                    let rows = Array(chunks.range(i))
                    let (fine, coarse) = try nearest(try features(rows).to(device: device), result, metric: config.metric)
                    place(rows, coarse)
                    if let fine { for (r, f) in zip(rows, fine) { fineOf[r] = f } }
                }
                log("assigned all \(n) images to the nearest centroids")
            }
            saved["coarse_centroids"] = try result.coarse.centroids.to(device: .cpu)
            if let fine = result.fine, let map = result.fineToCoarse {
                saved["fine_centroids"] = try fine.centroids.to(device: .cpu)
                saved["fine_assignments"] = try Tensor(train.map { Int64(fineOf[$0]) })
                saved["fine_to_coarse"] = try map.to(device: .cpu)
            }
            clustering = .init(fineClusters: result.fine?.centroids.size(0), fineIterations: result.fine?.iterations,
                               coarseIterations: result.coarse.iterations,
                               converged: result.coarse.converged && (result.fine?.converged ?? true),
                               reseeded: result.coarse.reseeded + (result.fine?.reseeded ?? 0),
                               inertia: result.fine?.inertia ?? result.coarse.inertia,
                               sample: full ? nil : sample.count)
        }
        saved["assignments"] = try Tensor(assignments.map { Int64($0) })
        if !held.isEmpty { saved["held_out_rows"] = try Tensor(held.map { Int64($0) }) }
        return PartitionClustering(assignments: assignments, saved: saved, clustering: clustering)
    }

    /// The nearest fine centroid of each row (nil for a single stage) and its coarse cluster, as a training image
    /// is assigned. x: [R, D] features prepared like the training ones.
    static func nearest(_ x: Tensor, _ result: HierarchicalKMeans.Result,
                        metric: KMeans.Metric) throws -> (fine: [Int]?, coarse: [Int]) {
        guard x.size(0) > 0 else { return (nil, []) }
        if let fine = result.fine, let map = result.fineToCoarse {
            let nearest = try KMeans.assign(x, centroids: fine.centroids, metric: metric).labels  // [R]
            return (try ints(nearest), try ints(try map.indexSelect(dim: 0, index: nearest)))
        }
        return (nil, try ints(try KMeans.assign(x, centroids: result.coarse.centroids, metric: metric).labels))
    }

    static func ints(_ t: Tensor) throws -> [Int] {
        try t.to(device: .cpu, dtype: .int64).toArray(as: Int64.self).map { Int($0) }
    }

    // MARK: the centroids file, which is also the clustering's resume point

    /// Writes `centroids.safetensors` (the clustering in its metadata, so a resumed partition need not redo it).
    func save(to url: URL, config: PartitionConfig) throws {
        var metadata = ["method": config.method.rawValue, "num_clusters": String(config.numClusters)]
        if let clustering {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            metadata["clustering"] = String(decoding: try encoder.encode(clustering), as: UTF8.self)
        }
        try SafeTensors.save(saved, to: url, metadata: metadata)
    }

    /// The clustering a killed partition had finished, or nil when `url` holds none (or one for `rows` ≠ its own).
    static func load(_ url: URL, config: PartitionConfig, rows n: Int) -> PartitionClustering? {
        guard let file = try? SafeTensors.load(url), let a = file.tensors["assignments"], a.count == n,
              file.metadata["method"] == config.method.rawValue,
              let assignments = try? ints(a) else { return nil }
        let clustering = file.metadata["clustering"].flatMap {
            try? JSONDecoder().decode(PartitionManifest.Clustering.self, from: Data($0.utf8))
        }
        if config.method == .kmeans && clustering == nil { return nil }
        var saved: [String: Tensor] = [:]
        for (name, t) in file.tensors { saved[name] = try? t.contiguous() }
        return PartitionClustering(assignments: assignments, saved: saved, clustering: clustering)
    }
}
