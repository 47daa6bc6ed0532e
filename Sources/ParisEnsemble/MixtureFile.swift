import Foundation
import ParisRun
import Torch

/// `<run>/mixture.json`: how the run's mixture differs from its `expert_<k>/` folders. Both lists are optional:
///
///     {"remote": [{"expert": 2, "url": "http://10.0.0.7:8090", "token_file": "…"}],
///      "loras":  [{"expert": 1, "path": "contributions/lora-1-3f2a…/files"}]}
///
/// A remote entry serves slot k from `paris serve expert` (`RemoteExpertConfig`); a LoRA entry samples slot k with
/// `expert_<k>/` plus the adapters in `path` (relative to the run), checked against that expert's weights hash
/// (`LoRAMerge.adapted`). `paris admit --use` adds the LoRA entry of what it admitted.
public struct MixtureFile: Codable, Equatable {
    public var remote: [RemoteExpertConfig] = []
    public var loras: [LoRAEntry] = []

    /// Slot k sampled as its base expert with the adapters of `path`.
    public struct LoRAEntry: Codable, Equatable {
        public var expert: Int
        /// The LoRA folder (adapter_config.json + adapter_model.safetensors), relative to the run folder.
        public var path: String
        public init(expert: Int, path: String) {
            self.expert = expert
            self.path = path
        }
    }

    public init(remote: [RemoteExpertConfig] = [], loras: [LoRAEntry] = []) {
        self.remote = remote
        self.loras = loras
    }

    enum CodingKeys: String, CodingKey { case remote, loras }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        remote = try c.decodeIfPresent([RemoteExpertConfig].self, forKey: .remote) ?? []
        loras = try c.decodeIfPresent([LoRAEntry].self, forKey: .loras) ?? []
    }

    /// The run's mixture.json, or an empty one when there is none.
    public static func read(_ url: URL) throws -> MixtureFile {
        guard let data = FileManager.default.contents(atPath: url.path) else { return MixtureFile() }
        do { return try JSONDecoder().decode(MixtureFile.self, from: data) } catch {
            throw EnsembleError("\(url.path): not a mixture file ({\"remote\": [{\"expert\": K, \"url\": …}], "
                + "\"loras\": [{\"expert\": K, \"path\": …}]}): \(error)")
        }
    }

    /// Writes it atomically.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write([UInt8](try encoder.encode(self)) + [10], to: url)
    }

    /// The LoRA folders by slot, resolved against `run`; a slot given twice is an error.
    public func loraFolders(run: RunLayout) throws -> [Int: URL] {
        var out: [Int: URL] = [:]
        for entry in loras {
            guard out[entry.expert] == nil else { throw EnsembleError("mixture.json gives expert \(entry.expert) two LoRAs") }
            guard !entry.path.hasPrefix("/"), !entry.path.split(separator: "/").contains("..") else {
                throw EnsembleError("mixture.json: a LoRA path must lie inside the run folder, not \(entry.path)")
            }
            out[entry.expert] = run.root.appendingPathComponent(entry.path)
        }
        return out
    }
}
