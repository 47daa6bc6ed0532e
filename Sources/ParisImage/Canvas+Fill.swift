import Foundation

/// Filled shapes: polygons (any simple or self-intersecting outline, non-zero winding rule) and circles, blended
/// over what is there. With `antialias` each pixel gets the fraction of its area the shape covers (polygons: four
/// sub-scanlines per pixel row, exact coverage along each; circles: the distance of the pixel centre from the rim),
/// otherwise a pixel is filled when its centre is inside.
extension Canvas {
    /// A point in canvas coordinates: pixel (x, y) covers the square [x, x + 1) × [y, y + 1), so its centre is
    /// (x + 0.5, y + 0.5).
    public struct Point: Equatable, Sendable {
        public var x: Double, y: Double
        public init(_ x: Double, _ y: Double) { (self.x, self.y) = (x, y) }
    }

    /// Fills the polygon through `points` (closed: the last point joins the first).
    public mutating func fillPolygon(_ points: [Point], _ c: Image.RGB, antialias: Bool = true) {
        guard points.count >= 3 else { return }
        let minX = points.map(\.x).min()!, maxX = points.map(\.x).max()!
        let minY = points.map(\.y).min()!, maxY = points.map(\.y).max()!
        let x0 = max(0, Int(minX.rounded(.down))), x1 = min(width, Int(maxX.rounded(.up)) + 1)
        let y0 = max(0, Int(minY.rounded(.down))), y1 = min(height, Int(maxY.rounded(.up)) + 1)
        guard x0 < x1, y0 < y1 else { return }
        let bw = x1 - x0
        let sub = antialias ? 4 : 1
        let weight = 1 / Double(sub)
        var coverage = [Double](repeating: 0, count: bw)
        var crossings: [(x: Double, dir: Int)] = []
        crossings.reserveCapacity(points.count)
        for py in y0..<y1 {
            for i in 0..<bw { coverage[i] = 0 }
            for s in 0..<sub {
                let sy = Double(py) + (Double(s) + 0.5) * weight
                crossings.removeAll(keepingCapacity: true)
                var prev = points[points.count - 1]
                for p in points {
                    if (prev.y <= sy) != (p.y <= sy) {
                        let x = prev.x + (sy - prev.y) * (p.x - prev.x) / (p.y - prev.y)
                        crossings.append((x, p.y > prev.y ? 1 : -1))
                    }
                    prev = p
                }
                crossings.sort { $0.x < $1.x }
                var winding = 0
                for (k, cross) in crossings.enumerated() {
                    winding += cross.dir
                    guard winding != 0, k + 1 < crossings.count else { continue }
                    let xa = max(cross.x, Double(x0)), xb = min(crossings[k + 1].x, Double(x1))
                    guard xa < xb else { continue }
                    if antialias {
                        addSpan(&coverage, xa - Double(x0), xb - Double(x0), weight)
                    } else {
                        // Pixels whose centres lie in [xa, xb).
                        let first = Int((xa - 0.5).rounded(.up)), last = Int((xb - 0.5).rounded(.up)) - 1
                        if first <= last { for x in first...last where x >= x0 && x < x1 { coverage[x - x0] = 1 } }
                    }
                }
            }
            for i in 0..<bw where coverage[i] > 0 { blend(x0 + i, py, c, min(1, coverage[i])) }
        }
    }

    /// Fills the circle of `radius` around `centre`.
    public mutating func fillCircle(centre: Point, radius: Double, _ c: Image.RGB, antialias: Bool = true) {
        guard radius > 0 else { return }
        let x0 = max(0, Int((centre.x - radius - 1).rounded(.down))), x1 = min(width, Int((centre.x + radius + 1).rounded(.up)))
        let y0 = max(0, Int((centre.y - radius - 1).rounded(.down))), y1 = min(height, Int((centre.y + radius + 1).rounded(.up)))
        guard x0 < x1, y0 < y1 else { return }
        for y in y0..<y1 {
            let dy = Double(y) + 0.5 - centre.y
            for x in x0..<x1 {
                let dx = Double(x) + 0.5 - centre.x
                let d = (dx * dx + dy * dy).squareRoot()
                let a = antialias ? min(1, max(0, radius + 0.5 - d)) : (d <= radius ? 1 : 0)
                if a > 0 { blend(x, y, c, a) }
            }
        }
    }

    /// Blends `c` over pixel (x, y) with opacity `alpha` in [0, 1]; points outside the canvas are ignored.
    public mutating func blend(_ x: Int, _ y: Int, _ c: Image.RGB, _ alpha: Double) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        if alpha >= 1 { set(x, y, c); return }
        let i = 3 * (y * width + x)
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 {
            UInt8((Double(old) * (1 - alpha) + Double(new) * alpha).rounded())
        }
        pixels[i] = mix(pixels[i], c.r)
        pixels[i + 1] = mix(pixels[i + 1], c.g)
        pixels[i + 2] = mix(pixels[i + 2], c.b)
    }

    /// Adds `weight` × the overlap of [xa, xb) with each unit cell to `coverage` (cell i covers [i, i + 1)).
    private func addSpan(_ coverage: inout [Double], _ xa: Double, _ xb: Double, _ weight: Double) {
        let ia = Int(xa.rounded(.down)), ib = min(coverage.count - 1, Int(xb.rounded(.down)))
        if ia >= coverage.count { return }
        if ia >= ib {
            coverage[ia] += (xb - xa) * weight
            return
        }
        coverage[ia] += (Double(ia + 1) - xa) * weight
        if ia + 1 < ib { for i in (ia + 1)..<ib { coverage[i] += weight } }
        coverage[ib] += (xb - Double(ib)) * weight
    }
}
