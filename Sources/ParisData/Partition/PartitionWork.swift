import Foundation
import Torch

/// The work folder of a partition, `<parent>/.<name>.partial/` beside the output: a partition computes everything
/// there first, stage by stage, and a run that stops (killed, out of disk, a bad image with skip_bad_images off)
/// resumes from what it had finished when the same command is run again.
///
/// ```
/// .<name>.partial/
///   work.json          what the work is for (`Identity`); work made for anything else is discarded, not reused
///   partition.lock     flock, held while a process works here (a second one is refused at once)
///   chunks/            chunk-<i>.safetensors: decoded images, their entries and image features (`PartitionImages`)
///   captions/          tokens-<i> and sentences-<i>.safetensors, per distinct caption (`CaptionTable`)
///   result/            the partition as it will be: centroids.safetensors (the clustering, written when it is
///                      done), shard_<k>/ (finished when its shard.json is there), held_out/, grids, manifest.json
/// ```
///
/// At the end `result/` is renamed to the output (so a reader never sees a partial partition) and the rest is removed.
struct PartitionWork {
    /// Everything the chunks, the clustering and the shards depend on.
    struct Identity: Codable, Equatable {
        var format = 1
        var dataset: String
        var metadataBytes: Int
        var metadataModified: Double
        var config: PartitionConfig
        var imageModel: String?
        var textModel: String?
        var captionEncoder: String

        enum CodingKeys: String, CodingKey {
            case format, dataset, metadataBytes = "metadata_bytes", metadataModified = "metadata_modified", config
            case imageModel = "image_model", textModel = "text_model", captionEncoder = "caption_encoder"
        }

        init(dataset: URL, config: PartitionConfig, imageModel: String?, textModel: String?,
             captionEncoder: String) throws {
            let metadata = dataset.appendingPathComponent(ImageFolder.metadataName)
            let attributes = try FileManager.default.attributesOfItem(atPath: metadata.path)
            self.dataset = dataset.standardizedFileURL.resolvingSymlinksInPath().path
            metadataBytes = (attributes[.size] as? NSNumber)?.intValue ?? -1
            metadataModified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            (self.config, self.imageModel, self.textModel, self.captionEncoder) = (config, imageModel, textModel,
                                                                                   captionEncoder)
        }
    }

    static let identityName = "work.json"
    static let lockName = "partition.lock"

    let folder: URL
    let lock: FileLock

    var chunks: RowChunks { RowChunks(folder: folder.appendingPathComponent("chunks"), prefix: "chunk") }
    var captions: URL { folder.appendingPathComponent("captions") }
    var result: URL { folder.appendingPathComponent("result") }

    /// The work folder of `output`.
    static func folder(for output: URL) -> URL {
        output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).partial")
    }

    /// Takes the work folder of `output` for `identity`: its finished work is kept when it was made for the same
    /// identity, and discarded otherwise.
    static func open(output: URL, identity: Identity, log: (String) -> Void) throws -> PartitionWork {
        let fm = FileManager.default
        let folder = folder(for: output)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let lock = try FileLock(folder.appendingPathComponent(lockName), busy: "\(output.path) is being partitioned")
        let url = folder.appendingPathComponent(identityName)
        let previous = fm.contents(atPath: url.path).flatMap { try? JSONDecoder().decode(Identity.self, from: $0) }
        if previous == identity {
            log("resuming the partition's work in \(folder.path)")
        } else {
            let stale = try fm.contentsOfDirectory(atPath: folder.path).filter { $0 != lockName }
            if !stale.isEmpty {
                log("\(folder.path) holds work for other settings or data; starting over")
                for name in stale { try fm.removeItem(at: folder.appendingPathComponent(name)) }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(Array(try encoder.encode(identity)), to: url)
        }
        let work = PartitionWork(folder: folder, lock: lock)
        try fm.createDirectory(at: work.result, withIntermediateDirectories: true)
        return work
    }

    /// Moves `result/` into place as `output` (replacing what is there) and removes the work folder.
    func finish(into output: URL) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: output.path) { try fm.removeItem(at: output) }
        try fm.moveItem(at: result, to: output)
        try fm.removeItem(at: folder)
        lock.release()
    }
}
