import Foundation
import Torch

/// Splits an image folder into K shards, one per expert: `paris partition`.
///
/// Steps, each streamed in bounded chunks so that memory stays flat from thousands to millions of images: read and
/// check metadata.jsonl → decode the images chunk by chunk (RGB over white), keeping each at the training resolution
/// with its image features, on disk (`PartitionImages`) → the distinct captions' sentence embeddings and caption
/// token embeddings, chunk by chunk (`CaptionTable`) → hierarchical k-means on the features (image, text, or both
/// L2-normalised and joined) of at most `kmeans_sample` training images, then every image assigned to the nearest
/// centroids chunk by chunk (`PartitionClustering`; or a random or label split) → the shards, cluster by cluster and
/// part by part (`PartitionWriter`) → the partition folder:
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
/// All of it is built in a work folder beside the output (`PartitionWork`) and renamed into place at the end, so a
/// reader never sees a partial partition, and a partition that stops resumes from its finished chunks, clustering
/// and shards; an existing output is replaced only with `overwrite`. Each stage logs its time and peak memory. An
/// empty cluster is an error (k-means re-seeds empty clusters while it iterates, so one that stays empty means the
/// data has too few distinct points for K): lower K.
public enum Partitioner {
    public static let centroidsName = "centroids.safetensors"
    public static let gridsName = "grids.png"
    public static func gridName(cluster k: Int) -> String { "grid_\(k).png" }

    /// Makes the partition of `dataset` into `output` and returns its manifest. `device`: where the k-means runs.
    @discardableResult
    public static func run(dataset: URL, output: URL, config: PartitionConfig, encoders: PartitionEncoders,
                           overwrite: Bool = false, device: Device = .cpu,
                           log: (String) -> Void = { _ in }) throws -> PartitionManifest {
        try run(dataset: dataset, output: output, config: config, encoders: encoders, overwrite: overwrite,
                device: device, log: log, after: { _ in })
    }

    /// `run`, calling `after(stage)` when each stage is done ("images", "captions", "clustering", "shard <k>",
    /// "held-out shards", "grids"): tests throw from it to stop a partition there and resume it.
    static func run(dataset: URL, output: URL, config: PartitionConfig, encoders: PartitionEncoders,
                    overwrite: Bool, device: Device, log: (String) -> Void,
                    after: (String) throws -> Void) throws -> PartitionManifest {
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

        var clock = StageClock()
        let folder = try ImageFolder.read(dataset, split: config.split, limit: config.limit)
        guard folder.count > 0 else {
            throw PartitionError("\(dataset.appendingPathComponent(ImageFolder.metadataName).path) lists no images"
                + (config.split.map { " of split '\($0)'" } ?? "") + "; nothing to partition")
        }
        let k = config.numClusters
        try checkK(k, images: folder.count, dataset: dataset)
        try HeldOut.check(count: config.heldOut, of: folder.count, clusters: k)
        let textModel = wantsText ? encoders.sentences?.name : nil
        let work = try PartitionWork.open(output: output, identity: try .init(
            dataset: dataset, config: config, imageModel: wantsImage ? encoders.image?.name : nil,
            textModel: textModel, captionEncoder: encoders.captions.name), log: log)
        clock.done("metadata", "\(folder.count) images", log: log)

        let decoded = try PartitionImages.decode(folder, config: config, features: wantsImage ? encoders.image : nil,
                                                 into: work.chunks, log: log)
        let kept = decoded.kept, n = kept.count
        guard n > 0 else {
            throw PartitionError("\(dataset.path): none of the \(folder.count) images could be read "
                + "(first problem: \(decoded.skipped.first ?? "?"))")
        }
        try checkK(k, images: n, dataset: dataset)
        clock.done("images", "\(n) decoded\(wantsImage ? ", with image features" : "")", log: log)
        try after("images")

        let captions = try CaptionTable.build(images: folder, rows: kept, config: config, encoders: encoders,
                                              sentences: wantsText, folder: work.captions, log: log)
        clock.done("captions", "\(captions.count) distinct", log: log)
        try after("captions")

        // Held-out rows (the same for every method and seed), then the clustering of the rest.
        try HeldOut.check(count: config.heldOut, of: n, clusters: k)
        let heldRows = try HeldOut.rows(count: config.heldOut, of: n)
        let trainRows = HeldOut.complement(heldRows, of: n)
        try checkK(k, images: trainRows.count, dataset: dataset)
        if !heldRows.isEmpty { log("holding out \(heldRows.count) images; clustering the other \(trainRows.count)") }
        let centroidsURL = work.result.appendingPathComponent(centroidsName)
        let clustered: PartitionClustering
        if let done = PartitionClustering.load(centroidsURL, config: config, rows: n) {
            clustered = done
            log("clustering: already done")
        } else {
            let features: PartitionClustering.Features = { rows in
                var parts: [Tensor] = []
                if wantsImage {
                    parts.append(try KMeans.l2Normalized(try decoded.chunks.gather("features", rows: rows)))  // [R, F]
                }
                if wantsText { parts.append(try captions.sentenceFeatures(rows: rows)) }  // [R, E]
                return parts.count == 1 ? parts[0] : try Tensor.cat(parts, dim: 1)  // [R, D]
            }
            clustered = try PartitionClustering.run(config: config, rows: n, held: heldRows, train: trainRows,
                                                    labels: { folder.label(ofRow: kept[$0]) }, features: features,
                                                    chunks: decoded.chunks, device: device, log: log)
            try clustered.save(to: centroidsURL, config: config)
        }
        var trainView = [Int](repeating: -1, count: n), heldView = trainView
        for r in trainRows { trainView[r] = clustered.assignments[r] }
        for r in heldRows { heldView[r] = clustered.assignments[r] }
        var sizes = [Int](repeating: 0, count: k)
        for r in trainRows { sizes[clustered.assignments[r]] += 1 }
        if let empty = sizes.firstIndex(of: 0) {
            throw PartitionError("cluster \(empty) of \(k) is empty (sizes \(sizes)); the data has too few distinct "
                + "points for K = \(k): use a smaller K")
        }
        log("cluster sizes: \(sizes)")
        let metrics = try scores(labels: trainRows.map { folder.label(ofRow: kept[$0]) },
                                 assignments: trainRows.map { clustered.assignments[$0] }, sizes: sizes, seed: config.seed)
        clock.done("clustering", clustered.clustering?.sample.map { "fitted on a sample of \($0)" } ?? "", log: log)
        try after("clustering")

        let textDim = try captions.textDim()
        let writer = PartitionWriter(folder: work.result, config: config, dataset: dataset, images: folder, kept: kept,
                                     chunks: decoded.chunks, captions: captions, captionEncoder: encoders.captions.name,
                                     textDim: textDim)
        let clusters = try writer.writeShards(assignments: trainView, log: log, written: { try after("shard \($0)") })
        var heldOut: [PartitionManifest.Cluster]? = nil
        if !heldRows.isEmpty {
            var heldWriter = writer
            heldWriter.folder = work.result.appendingPathComponent(HeldOut.folderName)
            heldOut = try heldWriter.writeShards(assignments: heldView, log: { log("held out: " + $0) }, written: { _ in })
            try after("held-out shards")
        }
        clock.done("shards", "\(k) shards", log: log)
        try writer.writeGrids(assignments: trainView)
        try after("grids")
        let manifest = PartitionManifest(
            format: PartitionManifest.currentFormat, numClusters: k, method: config.method,
            features: needsFeatures ? config.features : nil, seed: config.seed, dataset: dataset.path,
            numImages: n, numSkipped: decoded.skipped.count, skipped: Array(decoded.skipped.prefix(20)),
            imageSize: config.imageSize, channels: config.channels, textLength: config.textLength,
            textDim: textDim, imageModel: wantsImage ? encoders.image?.name : nil, textModel: textModel,
            captionEncoder: encoders.captions.name, config: config, clustering: clustered.clustering,
            clusters: clusters, heldOut: heldOut, metrics: metrics)
        try AtomicFile.write(try manifest.encoded(), to: work.result.appendingPathComponent(PartitionManifest.fileName))
        try work.finish(into: output)
        clock.done("grids and manifest", "", log: log)
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
    static func scores(labels: [String?], assignments: [Int], sizes: [Int],
                       seed: UInt64) throws -> PartitionManifest.Metrics? {
        let labels = labels.compactMap { $0 }
        guard labels.count == assignments.count else { return nil }
        let real = try ClusterMetrics.scores(assignments: assignments, labels: labels)
        let random = try ClusterMetrics.scores(
            assignments: try RandomSplit.withSizes(sizes, seed: seed &+ 0x5EED), labels: labels)
        return .init(purity: real.purity, nmi: real.nmi, randomPurity: random.purity, randomNMI: random.nmi)
    }
}

/// Logs each stage's wall time and the peak resident memory during it: "stage images: 12.3 s, peak memory 412 MiB
/// (1000000 decoded)", the lines `bench/scale.sh` reads.
struct StageClock {
    var start = Date()

    init() { ProcessMemory.resetPeak() }

    mutating func done(_ stage: String, _ detail: String, log: (String) -> Void) {
        let seconds = String(format: "%.1f", Date().timeIntervalSince(start))
        log("stage \(stage): \(seconds) s, peak memory \(ProcessMemory.describe(ProcessMemory.peakResident()))"
            + (detail.isEmpty ? "" : " (\(detail))"))
        ProcessMemory.resetPeak()
        start = Date()
    }
}
