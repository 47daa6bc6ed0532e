import Foundation
import Torch

/// Splits an image folder into K shards, one per expert: `paris partition`.
///
/// Steps: read and check metadata.jsonl → decode every image (RGB over white), computing image features batch by
/// batch and keeping a copy at the training resolution → sentence embeddings of the distinct captions → features
/// (image, text, or both L2-normalised and joined) → hierarchical k-means (or a random or label split) → the
/// caption token embeddings of the distinct captions → the partition folder:
///
/// ```
/// partition/
///   manifest.json            PartitionManifest (written last)
///   centroids.safetensors    coarse_centroids [K, D], fine_centroids [F, D], fine_assignments [N],
///                            fine_to_coarse [F], assignments [N] (int64; row order = the manifest's images;
///                            fine_assignments covers the rows not in held_out_rows [H], which is absent when
///                            nothing is held out)
///   shard_<k>/               Shard.write: parts of images, caption_index, text tokens + mask and items, shard.json last
///   held_out/shard_<k>/      the held-out images of cluster k (only with config.heldOut > 0; see `HeldOut`)
///   grid_<k>.png             up to 64 images of cluster k (8 per row)
///   grids.png                one row of up to 16 images per cluster
/// ```
///
/// The folder is built under a temporary sibling and renamed into place at the end, so a reader never sees a partial
/// partition; an existing one is replaced only with `overwrite`. An empty cluster is an error (k-means re-seeds empty
/// clusters while it iterates, so one that stays empty means the data has too few distinct points for K): lower K.
public enum Partitioner {
    public static let centroidsName = "centroids.safetensors"
    public static let gridsName = "grids.png"
    public static func gridName(cluster k: Int) -> String { "grid_\(k).png" }

    /// Makes the partition of `dataset` into `output` and returns its manifest. `device`: where the k-means runs.
    @discardableResult
    public static func run(dataset: URL, output: URL, config: PartitionConfig, encoders: PartitionEncoders,
                           overwrite: Bool = false, device: Device = .cpu,
                           log: (String) -> Void = { _ in }) throws -> PartitionManifest {
        try config.validate()
        let fm = FileManager.default
        if fm.fileExists(atPath: output.path) {
            let contents = (try? fm.contentsOfDirectory(atPath: output.path)) ?? ["?"]
            if !contents.isEmpty && !overwrite {
                throw PartitionError("\(output.path) already exists and is not empty; pass overwrite (--force) to "
                    + "replace the partition")
            }
        }
        let needsFeatures = config.method == .kmeans
        let wantsImage = needsFeatures && config.features != .text
        let wantsText = needsFeatures && config.features != .image
        if wantsImage && encoders.image == nil {
            throw PartitionError("features '\(config.features.rawValue)' need an image feature extractor, but none was given")
        }
        if wantsText && encoders.sentences == nil {
            throw PartitionError("features '\(config.features.rawValue)' need a sentence encoder, but none was given")
        }

        let folder = try ImageFolder.read(dataset, split: config.split, limit: config.limit)
        guard !folder.entries.isEmpty else {
            throw PartitionError("\(dataset.appendingPathComponent(ImageFolder.metadataName).path) lists no images"
                + (config.split.map { " of split '\($0)'" } ?? "") + "; nothing to partition")
        }
        try checkK(config.numClusters, images: folder.entries.count, dataset: dataset)
        try HeldOut.check(count: config.heldOut, of: folder.entries.count, clusters: config.numClusters)

        let loaded = try PartitionImages.load(folder, config: config,
                                              features: wantsImage ? encoders.image : nil, log: log)
        let entries = loaded.entries, n = entries.count
        guard n > 0 else {
            throw PartitionError("\(dataset.path): none of the \(folder.entries.count) images could be read "
                + "(first problem: \(loaded.skipped.first ?? "?"))")
        }
        try checkK(config.numClusters, images: n, dataset: dataset)

        // Distinct captions, in order of first appearance; captionOf: [N] rows of `captions`.
        var captions: [String] = [], captionRow: [String: Int] = [:], captionOf: [Int] = []
        for e in entries {
            if captionRow[e.text] == nil { captionRow[e.text] = captions.count; captions.append(e.text) }
            captionOf.append(captionRow[e.text]!)
        }
        let captionIndex = try Tensor(captionOf.map { Int64($0) })  // [N]

        // Held-out rows (the same for every method and seed), then features and clustering of the rest.
        let k = config.numClusters
        try HeldOut.check(count: config.heldOut, of: n, clusters: k)
        let heldRows = try HeldOut.rows(count: config.heldOut, of: n)
        let trainRows = HeldOut.complement(heldRows, of: n)
        try checkK(k, images: trainRows.count, dataset: dataset)
        if !heldRows.isEmpty { log("holding out \(heldRows.count) images; clustering the other \(trainRows.count)") }
        var trainClusters: [Int], heldClusters: [Int]
        var saved: [String: Tensor] = [:]
        var clustering: PartitionManifest.Clustering? = nil
        var textModel: String? = nil
        switch config.method {
        case .random:
            trainClusters = try RandomSplit.balanced(count: trainRows.count, clusters: k, seed: config.seed)
            heldClusters = HeldOut.randomClusters(count: heldRows.count, clusters: k, seed: config.seed)
        case .label:
            let split = try LabelSplit.split(labels: trainRows.map { entries[$0].label }, clusters: k)
            trainClusters = split.assignments
            heldClusters = try HeldOut.labelClusters(labels: heldRows.map { entries[$0].label }, groups: split.groups)
        case .kmeans:
            var parts: [Tensor] = []
            if let image = loaded.features { parts.append(try KMeans.l2Normalized(image)) }  // [N, F]
            if wantsText {
                let (perCaption, name) = try encoders.sentenceEmbeddings(captions, batchSize: config.batchSize, log: log)
                textModel = name
                parts.append(try KMeans.l2Normalized(perCaption).indexSelect(dim: 0, index: captionIndex))  // [N, E]
            }
            let x = try Tensor.cat(parts, dim: 1).to(device: device)  // [N, D]
            log("features: \(x.shape) on \(device)")
            let rowsOf = { (rows: [Int]) in try x.indexSelect(dim: 0, index: Tensor(rows.map { Int64($0) }).to(device: device)) }
            let result = try HierarchicalKMeans.fit(heldRows.isEmpty ? x : rowsOf(trainRows), config: HierarchicalKMeans.Config(
                clusters: k, fineClusters: config.fineClusters, metric: config.metric,
                maxIterations: config.maxIterations, seed: config.seed), log: log)
            trainClusters = try result.assignments.to(device: .cpu).toArray(as: Int64.self).map { Int($0) }
            heldClusters = heldRows.isEmpty ? [] : try HeldOut.nearestClusters(rowsOf(heldRows), result: result,
                                                                               metric: config.metric)
            saved["coarse_centroids"] = try result.coarse.centroids.to(device: .cpu)
            if let fine = result.fine, let map = result.fineToCoarse {
                saved["fine_centroids"] = try fine.centroids.to(device: .cpu)
                saved["fine_assignments"] = try fine.assignments.to(device: .cpu)
                saved["fine_to_coarse"] = try map.to(device: .cpu)
            }
            clustering = .init(fineClusters: result.fine?.centroids.size(0), fineIterations: result.fine?.iterations,
                               coarseIterations: result.coarse.iterations,
                               converged: result.coarse.converged && (result.fine?.converged ?? true),
                               reseeded: result.coarse.reseeded + (result.fine?.reseeded ?? 0),
                               inertia: result.fine?.inertia ?? result.coarse.inertia)
        }
        // The cluster of every row, and the training / held-out views (-1: not in that view).
        var assignments = [Int](repeating: -1, count: n)
        var trainView = assignments, heldView = assignments
        for (i, r) in trainRows.enumerated() { assignments[r] = trainClusters[i]; trainView[r] = trainClusters[i] }
        for (i, r) in heldRows.enumerated() { assignments[r] = heldClusters[i]; heldView[r] = heldClusters[i] }
        saved["assignments"] = try Tensor(assignments.map { Int64($0) })
        if !heldRows.isEmpty { saved["held_out_rows"] = try Tensor(heldRows.map { Int64($0) }) }

        var sizes = [Int](repeating: 0, count: k)
        for a in trainClusters { sizes[a] += 1 }
        if let empty = sizes.firstIndex(of: 0) {
            throw PartitionError("cluster \(empty) of \(k) is empty (sizes \(sizes)); the data has too few distinct "
                + "points for K = \(k): use a smaller K")
        }
        log("cluster sizes: \(sizes)")

        let (tokens, mask) = try encoders.encodeCaptions(captions, length: config.textLength,
                                                         batchSize: config.batchSize, log: log)
        let metrics = try scores(entries: trainRows.map { entries[$0] }, assignments: trainClusters, sizes: sizes,
                                 seed: config.seed)

        // Write everything under a temporary sibling, then move it into place.
        let parent = output.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let work = parent.appendingPathComponent(".\(output.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: work)
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }

        let writer = PartitionWriter(folder: work, config: config, dataset: dataset, entries: entries,
                                     images: loaded.images, captionOf: captionOf, tokens: tokens, mask: mask,
                                     captionEncoder: encoders.captions.name)
        let clusters = try writer.writeShards(assignments: trainView, log: log)
        try writer.writeGrids(assignments: trainView)
        var heldOut: [PartitionManifest.Cluster]? = nil
        if !heldRows.isEmpty {
            var heldWriter = writer
            heldWriter.folder = work.appendingPathComponent(HeldOut.folderName)
            heldOut = try heldWriter.writeShards(assignments: heldView, log: { log("held out: " + $0) })
        }
        try SafeTensors.save(saved, to: work.appendingPathComponent(centroidsName),
                             metadata: ["method": config.method.rawValue, "num_clusters": String(k)])
        let manifest = PartitionManifest(
            format: PartitionManifest.currentFormat, numClusters: k, method: config.method,
            features: needsFeatures ? config.features : nil, seed: config.seed, dataset: dataset.path,
            numImages: n, numSkipped: loaded.skipped.count, skipped: Array(loaded.skipped.prefix(20)),
            imageSize: config.imageSize, channels: config.channels, textLength: config.textLength,
            textDim: tokens.size(2), imageModel: wantsImage ? encoders.image?.name : nil, textModel: textModel,
            captionEncoder: encoders.captions.name, config: config, clustering: clustering, clusters: clusters,
            heldOut: heldOut, metrics: metrics)
        try AtomicFile.write(try manifest.encoded(), to: work.appendingPathComponent(PartitionManifest.fileName))

        if fm.fileExists(atPath: output.path) { try fm.removeItem(at: output) }
        try fm.moveItem(at: work, to: output)
        log("wrote \(output.path)")
        log(manifest.summary)
        return manifest
    }

    static func checkK(_ k: Int, images n: Int, dataset: URL) throws {
        guard k <= n else {
            throw PartitionError("K = \(k) clusters but \(dataset.path) has only \(n) usable images; "
                + "use K ≤ \(n)")
        }
    }

    /// Purity and NMI against the labels, and of a random split with the same sizes; nil when a label is missing.
    static func scores(entries: [ImageFolder.Entry], assignments: [Int], sizes: [Int],
                       seed: UInt64) throws -> PartitionManifest.Metrics? {
        let labels = entries.compactMap(\.label)
        guard labels.count == entries.count else { return nil }
        let real = try ClusterMetrics.scores(assignments: assignments, labels: labels)
        let random = try ClusterMetrics.scores(
            assignments: try RandomSplit.withSizes(sizes, seed: seed &+ 0x5EED), labels: labels)
        return .init(purity: real.purity, nmi: real.nmi, randomPurity: random.purity, randomNMI: random.nmi)
    }
}
