import Torch

/// A named model configuration, as DiT's `DiT_models` table names its sizes (`DiT-XL/2`).
public struct ModelPreset<Config: Sendable>: Sendable {
    public let name: String
    public let config: Config
    public let description: String

    public init(name: String, config: Config, description: String) {
        self.name = name
        self.config = config
        self.description = description
    }
}

/// A configuration type with a table of named presets, looked up by name.
public protocol PresetConfig: Sendable {
    /// The family's name in error messages ("DiT", "Paris expert", "router").
    static var presetFamily: String { get }
    static var presets: [ModelPreset<Self>] { get }
}

extension PresetConfig {
    /// The preset called `name` (e.g. "DiT-XL/2"), or an error listing the known names.
    public static func preset(named name: String) throws -> Self {
        guard let p = presets.first(where: { $0.name == name }) else {
            throw TorchError("unknown \(presetFamily) preset '\(name)'; known: "
                                 + presets.map(\.name).joined(separator: ", "))
        }
        return p.config
    }
}
