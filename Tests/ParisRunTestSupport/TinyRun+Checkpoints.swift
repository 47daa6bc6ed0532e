import Foundation
import ParisData
import ParisDiffusion
import ParisModels
import ParisRun
import Torch

extension TinyRun {
    public static let experts = 2

    /// A run folder with tiny, untrained (random) experts and router, written through the real checkpoint writers
    /// (for sampling and evaluation): writes run.json, expert_0/, expert_1/ (expert 1 a DDPM ε expert) and router/ into `root`.
    public static func withCheckpoints(_ root: URL, experts: Int = TinyRun.experts, shards: [[String]]? = nil) throws -> RunLayout {
        let run = RunLayout(root)
        var config = RunPreset.cpuTiny.config(name: "tiny", dataset: "data/none", numExperts: experts)
        config.experts[1].objective = .ddpmEpsilon(.cosine, numTimesteps: 1000)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try config.write(to: run.runJSON)
        Runtime.manualSeed(42)
        for i in 0..<experts {
            let model = try ParisExpert(.cpuTiny)
            // The zero-initialised output layer would predict 0: give it random weights so outputs differ.
            try withNoGrad { try Init.normal_(model.finalLayer.linear.weight, std: 0.05) }
            try ExpertCheckpoint(model: .cpuTiny, objective: config.experts[i].objective, cluster: i,
                                 textEncoder: "stub", steps: 0)
                .write(weights: try model.stateDict(), to: run.expert(i))
        }
        var rc = RouterConfig.cpuTiny
        rc.numExperts = experts
        let router = try Router(rc)
        try RouterCheckpoint.write(config: rc, weights: try router.stateDict(), steps: 0, to: run.router)
        if let shards {
            for (c, captions) in shards.enumerated() {
                let folder = run.shard(c, config)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let lines = captions.map { "{\"file_name\":\"x.png\",\"label\":null,\"text\":\"\($0)\"}\n" }.joined()
                try Data(lines.utf8).write(to: folder.appendingPathComponent(Shard.itemsName))
                // A v1 shard.json naming the items (the only file the oracle reads).
                var info = ShardInfo(cluster: c, numClusters: shards.count, count: captions.count, channels: 3,
                                     imageSize: 8, captionCount: captions.count, textEncoder: "stub", textLength: 4,
                                     textDim: 8, dataset: "stub", partitionMethod: "stub")
                info.format = ShardInfo.singleFileFormat
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                try encoder.encode(info).write(to: folder.appendingPathComponent(Shard.infoName))
            }
        }
        return run
    }

    /// Shard k: 10 images of 32×32 RGB, bright for cluster 0 and dark for cluster 1; labels "a"/"b" by cluster,
    /// plus "c" on a few (so the classifier sees three classes); random images and caption embeddings from `seed`.
    public static func writeShards(_ run: RunLayout, heldOut: Bool = false, labels: [String] = ["a", "b", "c"],
                            seed: UInt64 = 3) throws {
        let config = try run.config()
        Runtime.manualSeed(seed)
        for c in 0..<2 {
            let n = 10
            let base = try Tensor.randint(0, 100, [n, 3, 32, 32]) + (c == 0 ? 150 : 0)
            let items = (0..<n).map { i in
                Shard.Item(fileName: "\(heldOut ? "h" : "")\(c)_\(i).png", text: "caption \(c) \(i % 3)",
                           label: i < 2 ? labels[2] : labels[c])
            }
            let info = ShardInfo(cluster: c, numClusters: 2, count: n, channels: 3, imageSize: 32, captionCount: 3,
                                 textEncoder: "stub", textLength: 32, textDim: 384, dataset: "test",
                                 partitionMethod: "label")
            let shard = try Shard(info: info, images: base.to(dtype: .uint8),
                                  captionIndex: Tensor((0..<n).map { Int64($0 % 3) }),
                                  textEmbeddings: Tensor.randn([3, 32, 384]).to(dtype: .float16),
                                  textMask: Tensor.ones([3, 32], dtype: .bool), items: items)
            let folder = run.shard(c, config)
            try shard.write(to: heldOut ? folder.deletingLastPathComponent().appendingPathComponent(HeldOut.folderName)
                .appendingPathComponent(folder.lastPathComponent) : folder)
        }
    }

    /// A stub prompt encoder: a deterministic function of the prompt's characters, [B, L, 384], all tokens real.
    public static func encoder(_ prompts: [String], _ length: Int) throws -> TextCondition {
        let rows = prompts.map { p -> [Float] in
            let h = Float(p.unicodeScalars.reduce(0) { ($0 &* 31 &+ Int($1.value)) % 1000 }) / 1000
            return (0..<(length * 384)).map { Float(sin(Double($0) * 0.01 + Double(h) * 7)) }
        }
        return try TextCondition(tokens: try Tensor(rows.flatMap { $0 }, shape: [prompts.count, length, 384]),
                                 mask: try Tensor.ones([prompts.count, length], dtype: .bool))
    }

    /// Makes `router` answer `cluster` with probability ≈ 1 for every input: its last head layer's weights are zeroed and
    /// its bias is +20 for `cluster`, −20 elsewhere.
    public static func makeConstant(_ router: Router, cluster: Int) throws {
        let last = router.head[4] as! Linear  // head.4: Linear(h, K)
        let k = router.config.numExperts
        try withNoGrad {
            try Init.zeros_(last.weight)
            if let b = last.bias { try b.copy_(Tensor((0..<k).map { $0 == cluster ? Float(20) : -20 })) }
        }
    }
}
