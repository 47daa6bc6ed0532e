import Foundation
import ParisImage
import Torch

/// Procedurally drawn captioned images for the scale benchmark: one shape (circle, square, triangle, diamond, star or
/// cross) in one colour of an 8-colour palette, on a background of another palette colour, small or large, with its
/// centre jittered. Caption: "a <size> <colour> <shape> on a <background> background"; 6 × 2 × 8 × 7 = 672 distinct
/// captions. Image `index` of `seed` is a pure function of the two (`spec`), so an import is deterministic.
public enum SyntheticShapes {
    public enum Shape: String, CaseIterable, Sendable {
        case circle, square, triangle, diamond, star, cross
    }

    public enum Size: String, CaseIterable, Sendable {
        case small, large
        /// The radius of the shape's bounding circle as a fraction of the image side.
        var radius: Double { self == .small ? 0.18 : 0.34 }
        /// The largest offset of the shape's centre from the image centre, as a fraction of the side: a shape never
        /// touches the border (6 % of the side stays clear), so the corners always show the background.
        var jitter: Double { self == .small ? 0.26 : 0.08 }
    }

    /// A named palette colour.
    public struct Colour: Equatable, Sendable {
        public let name: String
        public let rgb: Image.RGB
    }

    /// Eight colours that stay apart at 32 px (and in gray: white, yellow, orange, green, red, blue, purple, black).
    public static let palette: [Colour] = [
        Colour(name: "red", rgb: .init(215, 40, 40)), Colour(name: "orange", rgb: .init(245, 145, 30)),
        Colour(name: "yellow", rgb: .init(245, 220, 50)), Colour(name: "green", rgb: .init(45, 160, 70)),
        Colour(name: "blue", rgb: .init(40, 90, 215)), Colour(name: "purple", rgb: .init(135, 65, 185)),
        Colour(name: "white", rgb: .init(245, 245, 245)), Colour(name: "black", rgb: .init(25, 25, 25)),
    ]

    /// The number of distinct captions: shapes × sizes × colours × other colours.
    public static var distinctCaptions: Int {
        Shape.allCases.count * Size.allCases.count * palette.count * (palette.count - 1)
    }

    /// What image `index` shows; `centre` and `radius` in pixels of a `side`-pixel image.
    public struct Spec: Equatable, Sendable {
        public let shape: Shape
        public let size: Size
        public let colour: Colour
        public let background: Colour
        public let centre: Canvas.Point
        public let radius: Double

        public var caption: String {
            "a \(size.rawValue) \(colour.name) \(shape.rawValue) on a \(background.name) background"
        }
    }

    /// The draws of image `index` of `seed`: a SplitMix64 stream seeded from both, so no image depends on another.
    public static func spec(seed: UInt64, index: Int, side: Int) -> Spec {
        var base = SplitMix64(seed: seed)
        var rng = SplitMix64(seed: base.next() ^ (UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03))
        let shape = Shape.allCases[Int(rng.next() % UInt64(Shape.allCases.count))]
        let size = Size.allCases[Int(rng.next() % UInt64(Size.allCases.count))]
        let fg = Int(rng.next() % UInt64(palette.count))
        let bg = (fg + 1 + Int(rng.next() % UInt64(palette.count - 1))) % palette.count
        let s = Double(side)
        let dx = (2 * rng.nextUnit() - 1) * size.jitter * s, dy = (2 * rng.nextUnit() - 1) * size.jitter * s
        return Spec(shape: shape, size: size, colour: palette[fg], background: palette[bg],
                    centre: Canvas.Point(s / 2 + dx, s / 2 + dy), radius: size.radius * s)
    }

    /// Draws `spec` on a `side`-pixel RGB image, antialiased.
    public static func render(_ spec: Spec, side: Int) throws -> Image {
        var canvas = try Canvas(width: side, height: side, background: spec.background.rgb)
        let c = spec.centre, r = spec.radius, fg = spec.colour.rgb
        func at(_ ux: Double, _ uy: Double) -> Canvas.Point { Canvas.Point(c.x + ux * r, c.y + uy * r) }
        switch spec.shape {
        case .circle:
            canvas.fillCircle(centre: c, radius: r, fg)
        case .square:
            let h = 0.82
            canvas.fillPolygon([at(-h, -h), at(h, -h), at(h, h), at(-h, h)], fg)
        case .diamond:
            canvas.fillPolygon([at(0, -1), at(1, 0), at(0, 1), at(-1, 0)], fg)
        case .triangle:
            // Equilateral, pointing up, its centroid at the centre.
            canvas.fillPolygon([-90.0, 30, 150].map { at(cos($0 * .pi / 180), sin($0 * .pi / 180)) }, fg)
        case .star:
            // Five points; the inner vertices at 0.45 of the outer radius.
            let points = (0..<10).map { k -> Canvas.Point in
                let angle = (-90 + 36 * Double(k)) * .pi / 180, rr = k % 2 == 0 ? 1 : 0.45
                return at(rr * cos(angle), rr * sin(angle))
            }
            canvas.fillPolygon(points, fg)
        case .cross:
            // A plus sign: arms 0.9 long and 0.3 wide (half-widths, in radii).
            let l = 0.9, w = 0.3
            canvas.fillPolygon([at(-w, -l), at(w, -l), at(w, -w), at(l, -w), at(l, w), at(w, w), at(w, l),
                                at(-w, l), at(-w, w), at(-l, w), at(-l, -w), at(-w, -w)], fg)
        }
        return canvas.image
    }

    /// Image `index` of `seed` at `side` pixels and what it shows.
    public static func image(seed: UInt64, index: Int, side: Int) throws -> (spec: Spec, image: Image) {
        let s = spec(seed: seed, index: index, side: side)
        return (s, try render(s, side: side))
    }

    /// A contact sheet of images `0..<count` of `seed` (`columns` wide, a 2-pixel white gap), for looking at them.
    public static func contactSheet(seed: UInt64, count: Int, side: Int, columns: Int = 8) throws -> Image {
        let rows = (count + columns - 1) / columns, cell = side + 2
        var sheet = try Canvas(width: columns * cell, height: max(1, rows) * cell)
        for i in 0..<count {
            let img = try image(seed: seed, index: i, side: side).image
            let ox = (i % columns) * cell, oy = (i / columns) * cell
            for y in 0..<side {
                for x in 0..<side {
                    let p = 3 * (y * side + x)
                    sheet.set(ox + x, oy + y, .init(img.pixels[p], img.pixels[p + 1], img.pixels[p + 2]))
                }
            }
        }
        return sheet.image
    }
}
