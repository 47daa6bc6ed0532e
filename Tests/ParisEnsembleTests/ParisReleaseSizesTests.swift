import Foundation
import ParisEnsemble
import ParisModels
import ParisTestSupport
import Torch
import XCTest

/// The released sizes: the 605M expert (DiT-XL/2 config) and the 129M router (DiT-B/2, K = 8) under the key names
/// and shapes of scripts/fixtures/paris.py's reference definitions (the public port's names), recorded without
/// values by scripts/fixtures/paris_release.py in paris_release_keys.json (a random release would be 20 GB).
final class ParisReleaseSizesTests: XCTestCase {
    struct Keys: Decodable {
        struct Model: Decodable {
            let keys: [[Key]]
            let stateDictCount: Int
            let parameterCount: Int
            enum CodingKeys: String, CodingKey {
                case keys, stateDictCount = "state_dict_count", parameterCount = "parameter_count"
            }
        }
        enum Key: Decodable {
            case name(String), shape([Int])
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self) { self = .name(s) } else { self = .shape(try c.decode([Int].self)) }
            }
        }
        let expert: Model
        let router: Model
    }

    static func keys() throws -> Keys {
        try JSONDecoder().decode(Keys.self, from: Data(contentsOf: try ParisReleaseTests.fixtureURL("paris_release_keys.json")))
    }

    /// name → shape, in the reference's order.
    static func entries(_ m: Keys.Model) -> [(String, [Int])] {
        m.keys.map { pair in
            guard case .name(let n) = pair[0], case .shape(let s) = pair[1] else { fatalError("bad key entry") }
            return (n, s)
        }
    }

    /// The configs' state-dict entries (what the loader checks the weights' header against) are the reference's,
    /// and the counts agree: expert 605,675,536 trainable (605,970,448 with pos_embed), router 128,940,296
    /// (129,136,904).
    func testConfigsHaveTheReleasedKeysAndCounts() throws {
        let keys = try Self.keys()
        for (name, entries, model, params, total) in [
            ("expert", ParisExpertConfig.paris.stateDictEntries, keys.expert, ParisExpertConfig.paris.parameterCount,
             ParisExpertConfig.paris.stateDictCount),
            ("router", RouterConfig.paris.stateDictEntries, keys.router, RouterConfig.paris.parameterCount,
             RouterConfig.paris.stateDictCount),
        ] {
            let ref = Self.entries(model)
            XCTAssertEqual(Set(entries.map(\.name)), Set(ref.map(\.0)), name)
            let shapes = Dictionary(uniqueKeysWithValues: ref)
            for e in entries { XCTAssertEqual(e.shape, shapes[e.name], "\(name) \(e.name)") }
            XCTAssertEqual(params, model.parameterCount, name)
            XCTAssertEqual(total, model.stateDictCount, name)
            XCTAssertEqual(ref.reduce(0) { $0 + $1.1.reduce(1, *) }, model.stateDictCount, name)
        }
        XCTAssertEqual(keys.expert.parameterCount, 605_675_536)
        XCTAssertEqual(keys.router.parameterCount, 128_940_296)
    }

    /// Built at the released sizes (random weights, bf16 to halve the memory), each model's state dict has exactly
    /// the reference's names and shapes, and a state dict under those names loads strictly.
    func testReleasedSizesLoadStrictly() throws {
        let keys = try Self.keys()
        try withNoGrad {
            for (name, model, ref) in [
                ("router", try Router(.paris, dtype: .bfloat16) as any Module, keys.router),
                ("expert", try ParisExpert(.paris, dtype: .bfloat16) as any Module, keys.expert),
            ] {
                let sd = try model.stateDict()
                let want = Self.entries(ref)
                XCTAssertEqual(Set(sd.keys), Set(want.map(\.0)), name)
                for (k, shape) in want { XCTAssertEqual(sd[k]?.shape, shape, "\(name) \(k)") }
                XCTAssertEqual(sd.values.reduce(0) { $0 + $1.shape.reduce(1, *) }, ref.stateDictCount, name)
                // A released file's tensors, by the released names: strict, every key used.
                let released = Dictionary(uniqueKeysWithValues: want.map { ($0.0, sd[$0.0]!) })
                let report = try model.loadStateDict(released)
                XCTAssertTrue(report.isClean, "\(name): \(report.description)")
            }
        }
    }
}
