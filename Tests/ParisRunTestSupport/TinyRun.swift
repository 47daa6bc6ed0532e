import Foundation
import ParisData
import ParisDiffusion
import ParisRun
import Torch
import XCTest

/// Tiny runs for the tests of every stage above ParisRun, written through the real writers. One place, so the
/// trainers', the sampler's and the evaluator's tests share one notion of a "tiny run".
///
/// `make`: K shards of 8×8 images (a bright square whose place depends on the caption), 4 captions per shard as 4
/// tokens of width 8, and `paris-T/4` experts (4 tokens of width 64, 2 layers), so a training step takes
/// milliseconds. `withCheckpoints` (TinyRun+Checkpoints.swift): untrained `cpuTiny` experts and router, to sample from.
public enum TinyRun {
    public static let size = 8, channels = 3, textLength = 4, textDim = 8, perShard = 24, captions = 4

    /// Expert settings for tests: 6 steps of batch 4, checkpoints every 2 steps.
    public static func job(seed: UInt64, steps: Int = 6, checkpointEvery: Int = 2,
                    objective: Objective = .flowMatchingUniform) -> TrainJobConfig {
        TrainJobConfig(model: "paris-T/4", objective: objective, batchSize: 4, steps: steps, learningRate: 1e-3,
                       warmupSteps: 2, weightDecay: 0.01, emaDecay: 0.9, gradClip: 1, captionDropout: 0.25,
                       checkpointEvery: checkpointEvery, sampleEvery: 0, logEvery: 2, seed: seed)
    }

    /// Shard k of K, written to `<partition>/shard_<k>/`.
    public static func shard(_ k: Int, of K: Int) throws -> Shard {
        var pixels = [UInt8](), rows = [Int64](), items = [Shard.Item]()
        for i in 0..<perShard {
            let c = (i + k) % captions
            rows.append(Int64(c))
            for ch in 0..<channels {
                for y in 0..<size {
                    for x in 0..<size {
                        let inside = (y / 4) == c / 2 && (x / 4) == c % 2
                        pixels.append(inside ? UInt8(200 + 15 * ch) : UInt8((i * 7 + x * 3 + y + k * 11) % 60))
                    }
                }
            }
            items.append(Shard.Item(fileName: "img_\(k)_\(i).png", text: "square \(c) of cluster \(k)", label: "\(c)"))
        }
        var emb = [Float]()
        for c in 0..<captions { for t in 0..<textLength { for d in 0..<textDim {
            emb.append(Float(sin(Double(c * 31 + t * 7 + d + k * 5))))
        } } }
        var mask = [Bool]()
        for c in 0..<captions { for t in 0..<textLength { mask.append(t <= c % textLength) } }
        let info = ShardInfo(cluster: k, numClusters: K, count: perShard, channels: channels, imageSize: size,
                             captionCount: captions, textEncoder: "test-encoder", textLength: textLength,
                             textDim: textDim, dataset: "tiny", partitionMethod: "test")
        return try Shard(info: info,
                         images: try Tensor(pixels.map { Float($0) }, shape: [perShard, channels, size, size]).to(dtype: .uint8),
                         captionIndex: try Tensor(rows),
                         textEmbeddings: try Tensor(emb, shape: [captions, textLength, textDim]).to(dtype: .float16),
                         textMask: try Tensor(mask.map { $0 ? Float(1) : 0 }, shape: [captions, textLength]).ne(0),
                         items: items)
    }

    /// A run folder with run.json and K shards; returns its URL.
    @discardableResult
    public static func make(_ root: URL, k K: Int = 2, steps: Int = 6, checkpointEvery: Int = 2,
                     configure: (inout RunConfig) -> Void = { _ in }) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        var config = RunConfig(name: root.lastPathComponent, dataset: "/nonexistent/tiny", numExperts: K,
                               experts: (0..<K).map { job(seed: UInt64(10 + $0), steps: steps, checkpointEvery: checkpointEvery) },
                               router: TrainJobConfig(model: "router-T/4"),
                               monolith: {
                                   var m = job(seed: 1000, steps: steps, checkpointEvery: checkpointEvery)
                                   m.batchSize = 4 * K
                                   return m
                               }())
        configure(&config)
        try config.write(to: root.appendingPathComponent("run.json"))
        for k in 0..<K {
            try shard(k, of: K).write(to: root.appendingPathComponent("partition/shard_\(k)"))
        }
        return root
    }

    /// A fresh temporary folder, removed at the end of the test.
    public static func temporaryFolder(_ test: XCTestCase, _ name: String = #function) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("paris-train-\(name.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Every tensor of a safetensors file.
    public static func tensors(_ url: URL) throws -> [String: Tensor] { try SafeTensors.load(url).tensors }

    /// Asserts two safetensors files hold bit-identical tensors.
    public static func assertIdentical(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let ta = try tensors(a), tb = try tensors(b)
        XCTAssertEqual(Set(ta.keys), Set(tb.keys), "\(a.lastPathComponent): different names", file: file, line: line)
        for (name, x) in ta {
            guard let y = tb[name] else { continue }
            XCTAssertTrue(try x.equal(y), "\(a.path) vs \(b.path): '\(name)' differs", file: file, line: line)
        }
    }

    /// Every file under `folder` with its SHA-256 (folders as "dir"): what "the run is unchanged" means.
    public static func fileHashes(_ folder: URL) throws -> [String: String] {
        var out: [String: String] = [:]
        for path in listing(folder) {
            let url = folder.appendingPathComponent(path)
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
            out[path] = isDir.boolValue ? "dir" : try Checksum.sha256(file: url)
        }
        return out
    }

    /// The files and folders under `folder`, relative, sorted.
    public static func listing(_ folder: URL) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: folder.path) else { return [] }
        return (e.allObjects as? [String] ?? []).sorted()
    }
}
