import Foundation
import ParisRun
import ParisRunTestSupport
import ParisData
import ParisDiffusion
import ParisModels
import ParisTestSupport
import ParisTraining
import Torch
import XCTest

/// The toy problem of issue #12: K clusters whose images differ only in a faint pattern, which the noise of x_t
/// drowns at high t, while each caption names its cluster. The text-free router cannot beat chance there; the
/// text-conditioned one can.
enum FaintRun {
    static let k = 3, perShard = 96, captionsPerCluster = 2

    /// Image i of cluster c: pixels uniform in [100, 156], plus 6 grey levels on the rows y ≡ c (mod 3). In [−1, 1]
    /// that is a 0.05 offset on a third of the pixels, under noise of std ≈ t at flow time t.
    static func images(cluster c: Int, count n: Int, seed: UInt64) throws -> Tensor {
        let s = TinyRun.size, ch = TinyRun.channels
        var rng = SplitMix64(seed: seed &+ UInt64(c) &* 7919)
        var pixels = [Float]()
        for _ in 0..<n { for _ in 0..<ch { for y in 0..<s { for _ in 0..<s {
            pixels.append(Float(100 + Int(rng.next() % 57) + (y % 3 == c ? 6 : 0)))
        } } } }
        return try Tensor(pixels, shape: [n, ch, s, s]).to(dtype: .uint8)
    }

    /// Caption v of cluster c as token states [captionsPerCluster, L, D]: dimension c is large, plus a little of a
    /// variant pattern, so the pooled embedding names the cluster.
    static func captionTokens(cluster c: Int) throws -> Tensor {
        var emb = [Float]()
        for v in 0..<captionsPerCluster { for t in 0..<TinyRun.textLength { for d in 0..<TinyRun.textDim {
            emb.append((d == c ? 2 : 0) + 0.3 * Float(sin(Double(v * 13 + t * 5 + d))))
        } } }
        return try Tensor(emb, shape: [captionsPerCluster, TinyRun.textLength, TinyRun.textDim])
    }

    /// A run of K faint-pattern shards with the router job `model` (`router-T/4` or `router-T/4-text`).
    static func make(_ root: URL, model: String, steps: Int, captionDropout: Double = 0.1) throws -> URL {
        try TinyRun.make(root, k: k) { config in
            config.router = TrainJobConfig(model: model, batchSize: 32, steps: steps, learningRate: 2e-3,
                                           warmupSteps: 10, weightDecay: 0, emaDecay: 0, gradClip: 1,
                                           captionDropout: captionDropout, checkpointEvery: 50, logEvery: 50, seed: 5)
        }
        for c in 0..<k {
            let items = (0..<perShard).map {
                Shard.Item(fileName: "img_\(c)_\($0).png", text: "pattern \(c), caption \($0 % captionsPerCluster)",
                           label: "\(c)")
            }
            let info = ShardInfo(cluster: c, numClusters: k, count: perShard, channels: TinyRun.channels,
                                 imageSize: TinyRun.size, captionCount: captionsPerCluster, textEncoder: "test-encoder",
                                 textLength: TinyRun.textLength, textDim: TinyRun.textDim, dataset: "faint",
                                 partitionMethod: "test")
            let shard = try Shard(info: info, images: try images(cluster: c, count: perShard, seed: 1),
                                  captionIndex: try Tensor((0..<perShard).map { Int64($0 % captionsPerCluster) }),
                                  textEmbeddings: try captionTokens(cluster: c).to(dtype: .float16),
                                  textMask: try Tensor.ones([captionsPerCluster, TinyRun.textLength], dtype: .bool),
                                  items: items)
            try shard.write(to: root.appendingPathComponent("partition/shard_\(c)"), overwrite: true)
        }
        return root
    }

    /// Fresh images of every cluster (another seed than the shards'), in [−1, 1], their clusters and pooled captions.
    static func testSet(perCluster n: Int) throws -> (images: Tensor, clusters: [Int], text: Tensor) {
        var x: [Tensor] = [], clusters: [Int] = [], text: [Tensor] = []
        for c in 0..<k {
            x.append(try images(cluster: c, count: n, seed: 99).to(dtype: .float32) / 127.5 - 1)
            clusters += Array(repeating: c, count: n)
            let pooled = try TextCondition(tokens: captionTokens(cluster: c), mask: nil).pooled()  // [V, D]
            text.append(try pooled.indexSelect(dim: 0, index: Tensor((0..<n).map { Int64($0 % captionsPerCluster) })))
        }
        return (try Tensor.cat(x), clusters, try Tensor.cat(text))
    }
}

final class TextRouterTrainerTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func testTextConditionedRouterBeatsTheTextFreeOneWhereXtCarriesNoClusterInformation() throws {
        let test = try FaintRun.testSet(perCluster: 60)
        var high: [RouterKind: Double] = [:], unconditional: Double? = nil
        // One run, two routers on the same shards: run.json's text-free one in router/, and the text-conditioned
        // preset beside it (`paris train router --model router-T/4-text --out <run>/router-text`).
        let run = try FaintRun.make(try TinyRun.temporaryFolder(self), model: "router-T/4", steps: 150)
        let textFolder = run.appendingPathComponent("router-text")
        XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions()).outcome, .finished)
        let freeWeights = try Data(contentsOf: run.appendingPathComponent("router/model.safetensors"))
        let second = RouterTrainOptions(model: "router-T/4-text", folder: textFolder)
        XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions(), router: second).outcome, .finished)
        XCTAssertEqual(try Data(contentsOf: run.appendingPathComponent("router/model.safetensors")), freeWeights,
                       "the second router must leave router/ alone")
        assertThrows({ try RouterTrainer(run: run, options: RouterTrainOptions(model: "router-Z/9", folder: textFolder)) },
                     contains: "router --model")
        for folder in [run.appendingPathComponent("router"), textFolder] {
            let router = try RouterCheckpoint.load(from: folder)
            let written = try RouterEvaluation.read(from: folder)
            XCTAssertEqual(written.routerKind, router.config.kind)
            let e = try RouterEvaluation.evaluate(router: router, images: test.images, clusters: test.clusters,
                                                  text: test.text, times: [0.95, 0.05], seed: 3)
            high[router.config.kind] = e.points[0].accuracy
            if router.config.kind == .textConditioned {
                XCTAssertEqual(e.withCaptions, true)
                unconditional = e.unconditionalPoints?[0].accuracy
                XCTAssertTrue(try String(contentsOf: folder.appendingPathComponent("eval.md"), encoding: .utf8)
                    .contains("accuracy without the prompt"))
            } else {
                XCTAssertNil(e.unconditionalPoints)
            }
        }
        let free = try XCTUnwrap(high[.textFree]), text = try XCTUnwrap(high[.textConditioned])
        let chance = 1 / Double(FaintRun.k)
        // At t = 0.95 the faint pattern is gone: the text-free router is near chance, the caption names the cluster.
        XCTAssertLessThan(free, chance + 0.2, "text-free accuracy at t = 0.95: \(free)")
        XCTAssertGreaterThan(text, free + 0.3, "text-conditioned \(text) vs text-free \(free) at t = 0.95")
        // Without the prompt (the null caption it learned through caption dropout) it is back to the x_t evidence.
        let u = try XCTUnwrap(unconditional)
        XCTAssertLessThan(u, text - 0.3, "text-conditioned router without the prompt at t = 0.95: \(u)")
    }

    func testCaptionDropoutTrainsTheNullCaption() throws {
        // Published after 2 steps and after 8: the null caption moves only when captions are dropped.
        var moved: [Double: Double] = [:]
        for p in [0.0, 1.0] {
            let run = try FaintRun.make(try TinyRun.temporaryFolder(self, "dropout\(Int(p))"), model: "router-T/4-text",
                                        steps: 8, captionDropout: p)
            let weights = run.appendingPathComponent("router/model.safetensors")
            XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions(stopAfterSteps: 2)).outcome, .stopped)
            let before = try XCTUnwrap(TinyRun.tensors(weights)["null_text_embedding"])
            XCTAssertEqual(try RouterTrainer.train(run: run, options: TrainOptions()).outcome, .finished)
            let after = try XCTUnwrap(TinyRun.tensors(weights)["null_text_embedding"])
            let change: Double = try (after - before).abs().amax().item()
            moved[p] = change
        }
        XCTAssertEqual(moved[0.0], 0, "never dropped: the null caption gets no gradient")
        XCTAssertGreaterThan(try XCTUnwrap(moved[1.0]), 0, "always dropped: the null caption is trained")
    }

    func testTextRouterResumeEqualsUninterrupted() throws {
        // Caption dropout draws from the session's generator, which a checkpoint saves and a resume restores.
        let a = try FaintRun.make(try TinyRun.temporaryFolder(self, "resumeA"), model: "router-T/4-text", steps: 9,
                                  captionDropout: 0.5)
        let b = try FaintRun.make(try TinyRun.temporaryFolder(self, "resumeB"), model: "router-T/4-text", steps: 9,
                                  captionDropout: 0.5)
        XCTAssertEqual(try RouterTrainer.train(run: a, options: TrainOptions()).outcome, .finished)
        XCTAssertEqual(try RouterTrainer.train(run: b, options: TrainOptions(stopAfterSteps: 4)).outcome, .stopped)
        XCTAssertEqual(try RouterTrainer.train(run: b, options: TrainOptions()).outcome, .finished)
        try TinyRun.assertIdentical(a.appendingPathComponent("router/model.safetensors"),
                                    b.appendingPathComponent("router/model.safetensors"))
    }

    func testCheckpointSaysItsKindAndIsRefusedForAnotherKindOrK() throws {
        let root = try TinyRun.temporaryFolder(self)
        let config = RouterConfig(inputSize: 8, inChannels: 3, patchSize: 4, hiddenSize: 16, depth: 1, numHeads: 2,
                                  numExperts: 3, textDim: 8)
        let folder = root.appendingPathComponent("router")
        try RouterCheckpoint.write(config: config, weights: try Router(config).stateDict(), steps: 0, to: folder)
        let configURL = folder.appendingPathComponent("config.json")
        var dict = try RouterTestRun.json(configURL)
        XCTAssertEqual(dict["router_kind"] as? String, "text-conditioned")
        XCTAssertEqual(dict["text_dim"] as? Int, 8)
        XCTAssertEqual(try RouterCheckpoint.load(from: folder, kind: .textConditioned, numExperts: 3).config, config)
        XCTAssertThrowsError(try RouterCheckpoint.load(from: folder, kind: .textFree)) {
            XCTAssertTrue("\($0)".contains("the router is text-conditioned") && "\($0)".contains("a text-free router"),
                          "\($0)")
            XCTAssertTrue("\($0)".contains(configURL.path), "\($0)")
        }
        XCTAssertThrowsError(try RouterCheckpoint.load(from: folder, numExperts: 4)) {
            XCTAssertTrue("\($0)".contains("scores 3 experts") && "\($0)".contains("has 4"), "\($0)")
        }
        // router_kind that contradicts text_dim.
        dict["router_kind"] = "text-free"
        try JSONObject.write(dict, to: configURL)
        XCTAssertThrowsError(try RouterCheckpoint.load(from: folder)) {
            XCTAssertTrue("\($0)".contains("router_kind says text-free"), "\($0)")
        }
        dict["router_kind"] = "psychic"
        try JSONObject.write(dict, to: configURL)
        XCTAssertThrowsError(try RouterCheckpoint.load(from: folder)) { XCTAssertTrue("\($0)".contains("psychic"), "\($0)") }
        // A text-free config over text-conditioned weights: the header check names the extra weights.
        dict["router_kind"] = nil
        dict["text_dim"] = nil
        try JSONObject.write(dict, to: configURL)
        XCTAssertThrowsError(try RouterCheckpoint.load(from: folder)) {
            XCTAssertTrue("\($0)".contains("text_embed") || "\($0)".contains("null_text_embedding"), "\($0)")
        }

        // A router written before router_kind existed (no router_kind, no text_dim) loads as text-free.
        let old = root.appendingPathComponent("old")
        var free = config
        free.textDim = nil
        try RouterCheckpoint.write(config: free, weights: try Router(free).stateDict(), steps: 0, to: old)
        var oldDict = try RouterTestRun.json(old.appendingPathComponent("config.json"))
        XCTAssertEqual(oldDict["router_kind"] as? String, "text-free")
        XCTAssertNil(oldDict["text_dim"])
        oldDict["router_kind"] = nil
        try JSONObject.write(oldDict, to: old.appendingPathComponent("config.json"))
        XCTAssertEqual(try RouterCheckpoint.load(from: old, kind: .textFree).config.kind, .textFree)
    }
}
