import CFontRender
import Foundation
import ParisImage

/// A colour emoji font opened with FreeType: Noto Color Emoji (CBDT bitmaps) or OpenMoji (COLRv0 layers).
/// Maps a code point sequence to one glyph (cmap, then the font's GSUB ligatures) and renders it as an RGBA image.
public final class EmojiFont {
    public let url: URL
    let handle: OpaquePointer
    let ligatures: OpenTypeLigatures

    /// Opens the font at `url` and reads its ligature table.
    public init(url: URL) throws {
        self.url = url
        var err = [CChar](repeating: 0, count: 256)
        guard let h = err.withUnsafeMutableBufferPointer({ fr_open(url.path, $0.baseAddress, $0.count) }) else {
            throw DatasetImportError("\(url.path): \(cString(err))")
        }
        handle = h
        var table: UnsafeMutablePointer<UInt8>? = nil
        let tag: UInt32 = 0x4753_5542  // 'GSUB'
        let n = fr_load_table(h, tag, &table)
        defer { fr_free(table) }
        do {
            ligatures = n > 0 && table != nil
                ? try OpenTypeLigatures(gsub: Array(UnsafeBufferPointer(start: table, count: n)), name: url.path)
                : OpenTypeLigatures()
        } catch {
            fr_close(h)
            throw error
        }
    }

    deinit { fr_close(handle) }

    /// Whether the font holds bitmap strikes only (CBDT), which render at their own size.
    public var isBitmapFont: Bool { fr_fixed_sizes(handle) > 0 }

    /// The glyph of a code point sequence, or nil when the font has no single glyph for it. The sequence is tried as
    /// given, then without U+FE0F (variation selector 16), since fonts differ in which form they ligate.
    public func glyph(for scalars: [UInt32]) -> UInt32? {
        var variants = [scalars]
        let stripped = scalars.filter { $0 != 0xFE0F }
        if stripped != scalars && !stripped.isEmpty { variants.append(stripped) }
        for v in variants {
            let ids = v.map { fr_glyph_index(handle, $0) }
            if ids.contains(0) || ids.contains(where: { $0 > UInt32(UInt16.max) }) { continue }
            let run = ligatures.apply(ids.map { UInt16($0) })
            if run.count == 1 { return UInt32(run[0]) }
        }
        return nil
    }

    /// A rendered glyph: RGBA with straight alpha, and whether the font drew it in colour.
    public struct Rendering {
        public let image: Image
        public let colored: Bool
    }

    /// Renders `glyph` at `pixelSize` (bitmap fonts use their nearest strike).
    public func render(glyph: UInt32, pixelSize: Int) throws -> Rendering {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0, colored: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        let status = err.withUnsafeMutableBufferPointer {
            fr_render(handle, glyph, Int32(pixelSize), &out, &w, &h, &colored, $0.baseAddress, $0.count)
        }
        defer { fr_free(out) }
        guard status == 0, let out else { throw DatasetImportError("\(url.lastPathComponent) glyph \(glyph): \(cString(err))") }
        let image = try Image(width: Int(w), height: Int(h), channels: 4,
                              pixels: Array(UnsafeBufferPointer(start: out, count: Int(w) * Int(h) * 4)))
        return Rendering(image: image, colored: colored != 0)
    }
}

/// The text of a NUL-terminated C buffer.
func cString(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
