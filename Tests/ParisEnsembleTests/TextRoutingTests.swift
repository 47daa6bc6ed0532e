import Foundation
import ParisRun
import ParisRunTestSupport
import ParisImage
import ParisData
import ParisDiffusion
@testable import ParisEnsemble
import ParisEval
import ParisModels
import ParisTestSupport
import Torch
import XCTest

/// Text-aware routing in the sampler: the `prompt` strategy (nearest caption centroid, no router call) and a
/// text-conditioned router that is given the prompt, or routes unconditionally without one.
final class TextRoutingTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        Runtime.threads = 1
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paris-textroute-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// Two velocity members: v0 = x, v1 = −x.
    func members() -> [MixtureMember?] {
        [MixtureMember.velocity(name: "a") { x, _, _ in x }, MixtureMember.velocity(name: "b") { x, _, _ in try 0.0 - x }]
    }

    func testPromptStrategyParsesAndWeighsTheGivenClusters() throws {
        XCTAssertEqual(try RoutingStrategy(parsing: "prompt"), .prompt)
        XCTAssertEqual(RoutingStrategy.prompt.description, "prompt")
        XCTAssertFalse(RoutingStrategy.prompt.needsRouter)
        XCTAssertTrue(RoutingStrategy.syntax.contains("prompt"))
        let routing = try RoutingWeights(strategy: .prompt, available: [true, true, true])
        var g = SplitMix64(seed: 0)
        XCTAssertEqual(try routing.weights(probabilities: nil, oracle: [2, 0], generator: &g), [[0, 0, 1], [1, 0, 0]])
        assertThrows({ try routing.weights(probabilities: nil, oracle: nil, generator: &g) }, contains: "unconditional")
        assertThrows({ try routing.weights(probabilities: nil, oracle: [3], generator: &g) }, contains: "prompt cluster 3")
    }

    func testPromptStrategyNeverCallsTheRouterAndRefusesUnconditionalSamples() throws {
        var calls = 0
        let mixture = try MixtureOfExperts(members: members(), router: { x, _, _ in
            calls += 1
            return try Tensor.full([x.size(0), 2], 0.5)
        })
        let sampler = try MixtureSampler(config: SamplerConfig(steps: 3), strategy: .prompt)
        let noise = try MixtureSampler.noise(seeds: [1, 2], channels: 1, size: 2)
        let text = try TinyRun.encoder(["a", "b"], 2)
        let (_, trace) = try sampler.sample(mixture, noise: noise, text: text, oracle: [1, 0])
        XCTAssertEqual(calls, 0, "the prompt strategy costs no router call")
        XCTAssertTrue(trace.steps.allSatisfy { $0.weights == [[0, 1], [1, 0]] && $0.experts == [0, 1] })
        XCTAssertTrue(trace.steps.allSatisfy { $0.probabilities == nil })
        XCTAssertNil(trace.routerKind)
        assertThrows({ try sampler.sample(mixture, noise: noise, text: nil, oracle: [1, 0]) },
                     contains: "unconditional (no prompt): route them with a router strategy")
    }

    func testTextConditionedRouterGetsThePooledPromptOrRoutesUnconditionally() throws {
        var seen: [Tensor?] = []
        let router: MixtureOfExperts.RouterFunction = { x, _, text in
            seen.append(text)
            return try Tensor.full([x.size(0), 2], 0.5)
        }
        let sampler = try MixtureSampler(config: SamplerConfig(steps: 2), strategy: .top1)
        let noise = try MixtureSampler.noise(seeds: [1, 2], channels: 1, size: 2)
        let text = try TinyRun.encoder(["a cat", "a car"], 3)

        let reads = try MixtureOfExperts(members: members(), router: router, routerReadsText: true)
        let (_, withPrompt) = try sampler.sample(reads, noise: noise, text: text)
        XCTAssertEqual(withPrompt.routerKind, .textConditioned)
        XCTAssertEqual(withPrompt.routerInput, "x_t, t, prompt")
        XCTAssertEqual(seen.count, 2)
        try assertClose(try XCTUnwrap(seen[0]), text.pooled(), atol: 1e-6, "the router reads the pooled prompt")

        seen = []
        let (_, unconditional) = try sampler.sample(reads, noise: noise, text: nil)
        XCTAssertEqual(seen.count, 2)
        XCTAssertTrue(seen.allSatisfy { $0 == nil }, "no prompt: the router's null caption")
        XCTAssertEqual(unconditional.routerInput, RoutingTrace.unconditionalInput)
        let json = try String(decoding: unconditional.jsonData(), as: UTF8.self)
        XCTAssertTrue(json.contains("routed unconditionally"), json)

        seen = []
        let free = try MixtureOfExperts(members: members(), router: router)
        let (_, textFree) = try sampler.sample(free, noise: noise, text: text)
        XCTAssertTrue(seen.allSatisfy { $0 == nil }, "a text-free router is not given the prompt")
        XCTAssertEqual(textFree.routerKind, .textFree)
        XCTAssertEqual(textFree.routerInput, "x_t, t")
    }

    /// Writes a text-conditioned router for `experts` clusters into `run/router/`.
    func writeTextRouter(_ run: RunLayout, experts: Int = TinyRun.experts) throws {
        var rc = RouterConfig.cpuTiny.withText(384)
        rc.numExperts = experts
        try FileManager.default.removeItem(at: run.router)
        try RouterCheckpoint.write(config: rc, weights: try Router(rc).stateDict(), steps: 0, to: run.router)
    }

    func testSampleWithATextConditionedRouterAndKindCheckAtLoad() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        try writeTextRouter(run)
        let job = SampleJob(run: run, name: "t", prompts: ["a cat"], strategy: .top1,
                            sampler: try SamplerConfig(steps: 2), seed: 1)
        // run.json's router is router-T/4 (text-free): a text-conditioned checkpoint is the wrong kind.
        assertThrows({ try job.run(encode: TinyRun.encoder) }, contains: "the router is text-conditioned")
        var config = try run.config()
        config.router.model = "router-T/4-text"
        try config.write(to: run.runJSON)
        var lines: [String] = []
        let result = try job.run(encode: TinyRun.encoder, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("router: text-conditioned") }, "\(lines)")
        let trace = try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: result.trace))
        XCTAssertEqual(trace.routerKind, .textConditioned)
        XCTAssertEqual(trace.routerInput, "x_t, t, prompt")
        // A router for another K.
        try writeTextRouter(run, experts: 3)
        var again = job
        again.name = "t2"
        assertThrows({ try again.run(encode: TinyRun.encoder) }, contains: "the router scores 3 experts")
    }

    /// A partition of 8 32-px images with 4 distinct captions into run's partition folder, clustered on `features`,
    /// with the stub prompt encoder's pooled tokens as sentence embeddings (as MiniLM's are its pooled tokens).
    func partition(_ run: RunLayout, features: PartitionConfig.Features) throws {
        let data = tmp.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let captions = ["a cat", "a kitten", "a car", "a truck"]
        var lines: [String] = []
        for i in 0..<8 {
            let px = [UInt8](repeating: UInt8(30 * i), count: 32 * 32 * 3)
            try Image(width: 32, height: 32, channels: 3, pixels: px).writePNG(to: data.appendingPathComponent("\(i).png"))
            lines.append(#"{"file_name": "\#(i).png", "text": "\#(captions[i % 4])"}"#)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data.appendingPathComponent("metadata.jsonl"))
        var c = PartitionConfig.tiny
        c.features = features
        c.imageSize = 32
        c.textLength = ParisExpertConfig.cpuTiny.textLength
        let length = c.textLength
        let encoders = PartitionEncoders(
            image: .init(name: "mean") { images in
                try Tensor.stack(images.map { try $0.tensor(range: .zeroToOne).mean(dims: [1, 2]) })
            },
            sentences: .init(name: "stub") { try TinyRun.encoder($0, length).pooled() },
            captions: .init(name: "stub") { captions, l in
                let t = try TinyRun.encoder(captions, l)
                return (t.tokens, try XCTUnwrap(t.mask))
            })
        try Partitioner.run(dataset: data, output: run.partition(try run.config()), config: c, encoders: encoders,
                            overwrite: true)
    }

    func testPromptStrategySendsEachTrainingCaptionToItsClusterAndNeedsCaptionCentroids() throws {
        let run = try TinyRun.withCheckpoints(tmp)
        try partition(run, features: .text)
        let prompts = ["a cat", "a kitten", "a car", "a truck"]
        func weights(_ strategy: RoutingStrategy) throws -> [[Double]] {
            let job = SampleJob(run: run, name: "\(strategy)", prompts: prompts, strategy: strategy,
                                sampler: try SamplerConfig(steps: 2), seed: 1)
            let trace = try JSONDecoder().decode(RoutingTrace.self, from: Data(contentsOf: job.run(encode: TinyRun.encoder).trace))
            XCTAssertTrue(trace.steps.allSatisfy { $0.weights == trace.steps[0].weights })
            return trace.steps[0].weights
        }
        // With caption features a training caption goes where the partition put it: the oracle's cluster.
        XCTAssertEqual(try weights(.prompt), try weights(.oracle))

        // paris eval scores the prompt strategy like any other and says how many captions go to their own cluster.
        let eval = EvalJob(run: run, samples: 4, fidSamples: 4, steps: 2, guidance: 2, strategies: [.prompt, .oracle],
                           classifierSteps: 0, alignmentPerCluster: 1, routerTimes: [0.5], alignmentTimes: [0.5])
        let report = try eval.run(inception: nil)
        XCTAssertEqual(report.strategies.map(\.strategy), [.prompt, .oracle])
        XCTAssertTrue(report.notes.contains { $0.hasPrefix("prompt: 4 of 4 held-out captions (1.000)") }, "\(report.notes)")

        try partition(run, features: .image)
        let job = SampleJob(run: run, name: "image", prompts: prompts, strategy: .prompt,
                            sampler: try SamplerConfig(steps: 2), seed: 1)
        assertThrows({ try job.run(encode: TinyRun.encoder) }, contains: "clustered on image features only")
        assertThrows({ try job.run(encode: TinyRun.encoder) }, contains: "--features text` or `--features both`")
    }
}
