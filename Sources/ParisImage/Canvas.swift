import Foundation

/// An RGB drawing surface for the project's small charts (loss curves, confusion matrices): pixels, lines,
/// rectangles and text in a built-in 5×7 bitmap font, with no anti-aliasing (integer pixel work); filled polygons and
/// circles, antialiased or not, are in Canvas+Fill.swift.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    /// Row-major RGB bytes, width × height × 3.
    public internal(set) var pixels: [UInt8]

    public init(width: Int, height: Int, background: Image.RGB = .white) throws {
        guard width > 0, height > 0, width <= 16384, height <= 16384 else {
            throw ImageError("a canvas must be 1…16384 pixels on each side, not \(width)×\(height)")
        }
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = background.r
            pixels[3 * i + 1] = background.g
            pixels[3 * i + 2] = background.b
        }
    }

    /// Sets one pixel; points outside the canvas are ignored.
    public mutating func set(_ x: Int, _ y: Int, _ c: Image.RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = 3 * (y * width + x)
        pixels[i] = c.r
        pixels[i + 1] = c.g
        pixels[i + 2] = c.b
    }

    /// Fills the rectangle [x, x + w) × [y, y + h), clipped to the canvas.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ c: Image.RGB) {
        let x0 = max(0, x), x1 = min(width, x + w), y0 = max(0, y), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 {
            for xx in x0..<x1 { set(xx, yy, c) }
        }
    }

    /// A straight line (Bresenham) `thickness` pixels wide.
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: Image.RGB, thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        let lo = -(thickness - 1) / 2, hi = thickness / 2
        while true {
            for oy in lo...hi { for ox in lo...hi { set(x + ox, y + oy, c) } }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// Text in the 5×7 font at `scale` (each font pixel a scale×scale block); (x, y) is the top-left corner.
    /// Lower-case letters are drawn as capitals; characters the font lacks are drawn as a hollow box.
    public mutating func text(_ s: String, x: Int, y: Int, _ c: Image.RGB, scale: Int = 1) {
        var cx = x
        for ch in s {
            let rows = BitmapFont.glyph(ch)
            for (ry, row) in rows.enumerated() {
                for rx in 0..<BitmapFont.glyphWidth where row & (1 << (BitmapFont.glyphWidth - 1 - rx)) != 0 {
                    fill(x: cx + rx * scale, y: y + ry * scale, width: scale, height: scale, c)
                }
            }
            cx += BitmapFont.advance * scale
        }
    }

    /// The width in pixels of `s` drawn at `scale`.
    public static func textWidth(_ s: String, scale: Int = 1) -> Int {
        max(0, s.count * BitmapFont.advance - 1) * scale
    }

    /// The canvas as an RGB image.
    public var image: Image { try! Image(width: width, height: height, channels: 3, pixels: pixels) }
}

/// A 5×7 bitmap font: digits, capitals and the punctuation that chart labels need. Each glyph is 7 rows of
/// 5 bits (most significant bit on the left).
public enum BitmapFont {
    public static let glyphWidth = 5
    public static let glyphHeight = 7
    /// Horizontal distance between glyph origins (one pixel of spacing).
    public static let advance = 6

    /// The rows of `ch` (an unknown character gives a hollow box).
    public static func glyph(_ ch: Character) -> [UInt8] {
        let up = ch.uppercased()
        let key = up.count == 1 ? Character(up) : ch
        return glyphs[key] ?? [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F]
    }

    static func rows(_ s: [String]) -> [UInt8] {
        s.map { row in row.reduce(UInt8(0)) { ($0 << 1) | ($1 == "#" ? 1 : 0) } }
    }

    static let glyphs: [Character: [UInt8]] = {
        let table: [Character: [String]] = [
            " ": [".....", ".....", ".....", ".....", ".....", ".....", "....."],
            "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
            "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
            "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
            "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
            "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
            "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
            "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
            "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
            "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
            "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
            "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
            "B": ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."],
            "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
            "D": ["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."],
            "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
            "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
            "G": [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"],
            "H": ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
            "I": [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
            "J": ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
            "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
            "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
            "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
            "N": ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"],
            "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
            "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
            "Q": [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"],
            "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
            "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
            "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
            "U": ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
            "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
            "W": ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],
            "X": ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
            "Y": ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
            "Z": ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"],
            ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
            ",": [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."],
            "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
            "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
            "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
            "/": [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."],
            ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
            "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
            ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
            "=": [".....", ".....", "#####", ".....", "#####", ".....", "....."],
            "_": [".....", ".....", ".....", ".....", ".....", ".....", "#####"],
            "×": [".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."],
        ]
        return table.mapValues(rows)
    }()
}
