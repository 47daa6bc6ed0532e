import Foundation
import ParisData
import ParisImage
@_exported import ParisTestSupport
import Torch

/// This target's fixture `Fixtures/<name>.safetensors`.
func fixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Tensor] {
    try loadFixture(name, bundle: .module, file: file, line: line)
}

/// The URL of the raw fixture file `Fixtures/<name>`.
func fixtureURL(_ name: String) -> URL {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(name)
}

extension PartitionEncoders {
    /// The partition tests' fakes: mean colour features, character-count sentence embeddings and hashed caption
    /// tokens (5 tokens of 8 dims).
    static var fakes: PartitionEncoders {
        PartitionEncoders(
            image: .init(name: "mean-colour") { images in
                try Tensor.stack(images.map { try $0.tensor(range: .zeroToOne).mean(dims: [1, 2]) })
            },
            sentences: .init(name: "letter-counts") { captions in
                let rows = captions.map { c -> [Float] in
                    (0..<26).map { i in Float(c.utf8.filter { $0 == UInt8(97 + i) }.count) }
                }
                return try Tensor(rows.flatMap { $0 }, shape: [captions.count, 26])
            },
            captions: .init(name: "fake-tokens") { captions, _ in
                let values = captions.flatMap { c in (0..<40).map { Float((c.utf8.count * 31 + $0) % 17) / 17 } }
                let mask = try Tensor.arange(0, 5).lt(3.0).unsqueeze(0).expand([captions.count, 5]).contiguous()
                return (try Tensor(values, shape: [captions.count, 5, 8]), mask)
            })
    }
}
