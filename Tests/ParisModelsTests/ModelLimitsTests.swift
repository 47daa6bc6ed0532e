import Foundation
import ParisModels
import Torch
import XCTest

/// Model configs are bounded (`ModelLimits`) and describe their state dict without building the model
/// (`stateDictEntries`), so a config read from disk can be checked before anything is allocated for it.
final class ModelLimitsTests: XCTestCase {
    override func setUp() { Runtime.threads = 1 }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testEveryPresetAndTheReleasedModelsPass() throws {
        for p in ParisExpertConfig.presets { XCTAssertNoThrow(try p.config.validate(), p.name) }
        for p in RouterConfig.presets { XCTAssertNoThrow(try p.config.validate(), p.name) }
        for p in DiTConfig.presets { XCTAssertNoThrow(try p.config.validate(), p.name) }
        // The released Paris expert (DiT-XL/2 scale) and router (DiT-B/2): their entries hold exactly the
        // parameters and pos_embed the independent parameter counts give.
        let count = { (entries: [StateDictEntry]) in entries.reduce(0) { $0 + $1.shape.reduce(1, *) } }
        XCTAssertEqual(count(ParisExpertConfig.paris.stateDictEntries), 605_970_448)
        XCTAssertEqual(count(ParisExpertConfig.paris.stateDictEntries), ParisExpertConfig.paris.stateDictCount)
        XCTAssertEqual(count(RouterConfig.paris.stateDictEntries), 129_136_904)
        XCTAssertEqual(count(RouterConfig.paris.stateDictEntries), RouterConfig.paris.stateDictCount)
    }

    /// Issue #18: `depth: 100000000` in an expert's config.json built layers until the machine ran out of memory.
    func testAbsurdSizesFailFastNamingTheKey() {
        func expert(_ change: (inout ParisExpertConfig) -> Void) -> String {
            var c = ParisExpertConfig.cpuTiny
            change(&c)
            return message { try c.validate() }
        }
        XCTAssertTrue(expert { $0.depth = 100_000_000 }
            .contains("ParisExpertConfig: depth 100000000 is more than 256 (ModelLimits.maxDepth)"))
        XCTAssertTrue(expert { $0.hiddenSize = 1 << 40 }.contains("hidden_size 1099511627776 is more than 16384"))
        XCTAssertTrue(expert { $0.numHeads = 512; $0.hiddenSize = 1024 }.contains("num_heads 512 is more than 256"))
        XCTAssertTrue(expert { $0.mlpRatio = 1e300 }.contains("mlp_ratio"))  // Int(hidden · 1e300) would trap
        XCTAssertTrue(expert { $0.mlpRatio = .infinity }.contains("ModelLimits.maxMLPRatio"))
        XCTAssertTrue(expert { $0.textDim = 100_000 }.contains("text_dim 100000 is more than 16384"))
        XCTAssertTrue(expert { $0.textLength = 1_000_000 }.contains("text_length 1000000 is more than 4096"))
        XCTAssertTrue(expert { $0.frequencyEmbeddingSize = 1 << 20 }.contains("frequency_embedding_size"))
        XCTAssertTrue(expert { $0.inputSize = 4096 }.contains("input_size 4096 is more than 1024"))
        XCTAssertTrue(expert { $0.inChannels = 1000 }.contains("in_channels 1000 is more than 64"))
        XCTAssertTrue(expert { $0.inputSize = 1024; $0.patchSize = 128 }.contains("patch_size 128 is more than 64"))
        XCTAssertTrue(expert { $0.inputSize = 1024; $0.patchSize = 2 }
            .contains("(input_size / patch_size)² tokens 262144 is more than 65536 (ModelLimits.maxTokens)"))
        var router = RouterConfig.cpuTiny
        router.depth = 100_000_000
        XCTAssertTrue(message { try router.validate() }.contains("RouterConfig: depth 100000000 is more than 256"))
        var dit = DiTConfig()
        dit.numClasses = 10_000_000
        XCTAssertTrue(message { try dit.validate() }.contains("num_classes 10000000 is more than 100000"))
        dit = DiTConfig()
        dit.mlpRatio = .nan
        XCTAssertTrue(message { try dit.validate() }.contains("mlp_ratio nan"))
    }

    /// `stateDictEntries` are exactly the names and shapes of the built models' state dicts.
    func testStateDictEntriesAreWhatTheModelsHold() throws {
        var zeroNull = ParisExpertConfig.cpuTiny
        zeroNull.nullText = .zero
        zeroNull.mlpRatio = 2.5
        var empty = ParisExpertConfig.cpuSmall
        empty.nullText = .emptyPrompt
        empty.inChannels = 4
        for config in [ParisExpertConfig.cpuTiny, .cpuSmall, zeroNull, empty] {
            let built = try ParisExpert(config).stateDict().mapValues(\.shape)
            let described = Dictionary(uniqueKeysWithValues: config.stateDictEntries.map { ($0.name, $0.shape) })
            XCTAssertEqual(described, built, "\(config)")
            XCTAssertNoThrow(try StateDictEntry.check(config.stateDictEntries, against: built, depth: config.depth,
                                                      values: [:]))
        }
        var three = RouterConfig.cpuTiny
        three.numExperts = 3
        for config in [RouterConfig.cpuTiny, .cpuSmall, three] {
            let built = try Router(config).stateDict().mapValues(\.shape)
            let described = Dictionary(uniqueKeysWithValues: config.stateDictEntries.map { ($0.name, $0.shape) })
            XCTAssertEqual(described, built, "\(config)")
        }
    }
}
