import Foundation

/// One named model configuration, as `paris models` lists it.
public struct ModelCatalogEntry: Sendable, Equatable {
    /// The architecture, e.g. "DiT (adaLN-Zero)".
    public let family: String
    /// The preset's name, e.g. "DiT-XL/2".
    public let name: String
    public let description: String
    /// Parameters, as `sum(p.numel() for p in model.parameters())`, computed from the configuration.
    public let parameterCount: Int

    public init(family: String, name: String, description: String, parameterCount: Int) {
        self.family = family
        self.name = name
        self.description = description
        self.parameterCount = parameterCount
    }
}

/// Every named model preset of the project, with its parameter count (computed analytically from the config, so
/// listing DiT-XL/2's 675M parameters builds nothing). Each family contributes its presets below.
public enum ModelCatalog {
    public static let entries: [ModelCatalogEntry] =
        DiTConfig.presets.map {
            ModelCatalogEntry(family: "DiT (adaLN-Zero)", name: $0.name, description: $0.description,
                              parameterCount: $0.config.parameterCount)
        }
        // Paris experts and routers keep their fixed pos_embed as a buffer; the reference port (and DiT) count it
        // as a parameter, so these entries use the state-dict size to compare like with like.
        + ParisExpertConfig.presets.map {
            ModelCatalogEntry(family: "Paris expert (adaLN-Single, cross-attention)", name: $0.name,
                              description: $0.description, parameterCount: $0.config.stateDictCount)
        }
        + RouterConfig.presets.map {
            ModelCatalogEntry(family: "Paris router (adaLN-Zero, CLS)", name: $0.name, description: $0.description,
                              parameterCount: $0.config.stateDictCount)
        }
        + AutoencoderKLConfig.presets.map {
            ModelCatalogEntry(family: "AutoencoderKL (SD VAE)", name: $0.name, description: $0.description,
                              parameterCount: $0.config.parameterCount)
        }

    /// The catalogue as a text table: family, name, parameters (exact and in millions), description.
    public static func render(_ entries: [ModelCatalogEntry] = entries) -> String {
        func grouped(_ n: Int) -> String {
            let s = String(n)
            return s.enumerated().map { i, c in (i > 0 && (s.count - i) % 3 == 0 ? "," : "") + String(c) }.joined()
        }
        let rows = [["family", "name", "parameters", "", "description"]] + entries.map {
            [$0.family, $0.name, grouped($0.parameterCount), String(format: "%.1fM", Double($0.parameterCount) / 1e6),
             $0.description]
        }
        let widths = (0..<4).map { col in rows.map { $0[col].count }.max() ?? 0 }
        return rows.map { row in
            (0..<4).map { col in
                let cell = row[col], pad = String(repeating: " ", count: widths[col] - cell.count)
                return col == 2 || col == 3 ? pad + cell : cell + pad  // numbers right-aligned
            }.joined(separator: "  ") + "  " + row[4]
        }.joined(separator: "\n")
    }
}
