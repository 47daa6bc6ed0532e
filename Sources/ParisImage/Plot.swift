import Foundation

/// A line chart drawn with `Canvas`: a frame with ticks and tick labels on both axes, a title, axis labels,
/// one polyline per series and a legend. Enough to watch a loss curve without Python.
///
/// ```swift
/// var plot = LinePlot(title: "expert 0 loss", xLabel: "step", yLabel: "loss")
/// plot.add(LinePlot.Series(name: "loss", points: points))
/// try plot.writePNG(to: url)   // width × height RGB PNG
/// ```
public struct LinePlot: Sendable {
    /// One named line: (x, y) points, drawn in the given order; non-finite points are skipped.
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: Image.RGB
        public init(name: String, points: [(x: Double, y: Double)], color: Image.RGB? = nil) {
            self.name = name
            self.points = points
            self.color = color ?? Image.RGB(31, 119, 180)
        }
    }

    /// Colours given to series added without one (matplotlib's tab10 order).
    public static let palette: [Image.RGB] = [
        .init(31, 119, 180), .init(255, 127, 14), .init(44, 160, 44), .init(214, 39, 40), .init(148, 103, 189),
        .init(140, 86, 75), .init(227, 119, 194), .init(127, 127, 127), .init(188, 189, 34), .init(23, 190, 207),
    ]

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var width: Int
    public var height: Int
    /// A fixed y range (e.g. 0…1 for an accuracy); nil fits the data.
    public var yRange: ClosedRange<Double>?
    public private(set) var series: [Series] = []

    public init(title: String, xLabel: String, yLabel: String, width: Int = 640, height: Int = 400,
                yRange: ClosedRange<Double>? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.width = width
        self.height = height
        self.yRange = yRange
    }

    /// Adds a series; one without an explicit colour takes the next palette colour.
    public mutating func add(_ s: Series, autoColor: Bool = true) {
        var s = s
        if autoColor { s.color = Self.palette[series.count % Self.palette.count] }
        series.append(s)
    }

    /// Renders the chart (an empty chart, with a "no data" note, when no series has a finite point).
    public func render() throws -> Image {
        guard width >= 120, height >= 80 else { throw ImageError("a plot needs at least 120×80 pixels, not \(width)×\(height)") }
        var c = try Canvas(width: width, height: height)
        let ink = Image.RGB(40, 40, 40), grid = Image.RGB(228, 228, 228)
        let left = 62, right = width - 16, top = 26, bottom = height - 34
        c.text(title, x: max(2, (width - Canvas.textWidth(title, scale: 2)) / 2), y: 4, ink, scale: 2)
        c.text(xLabel, x: (left + right - Canvas.textWidth(xLabel)) / 2, y: height - 10, ink)
        c.text(yLabel, x: 2, y: top - 12, ink)

        let finite = series.flatMap { $0.points.filter { $0.x.isFinite && $0.y.isFinite } }
        guard let first = finite.first else {
            c.line(left, bottom, right, bottom, ink)
            c.line(left, top, left, bottom, ink)
            c.text("NO DATA", x: (left + right) / 2 - 20, y: (top + bottom) / 2, ink)
            return c.image
        }
        var (x0, x1, y0, y1) = (first.x, first.x, first.y, first.y)
        for p in finite { x0 = min(x0, p.x); x1 = max(x1, p.x); y0 = min(y0, p.y); y1 = max(y1, p.y) }
        if let r = yRange { (y0, y1) = (r.lowerBound, r.upperBound) }
        if x1 <= x0 { x1 = x0 + 1 }
        if y1 <= y0 { let pad = max(abs(y0) * 0.1, 1e-3); (y0, y1) = (y0 - pad, y1 + pad) }
        let xTicks = Self.ticks(x0, x1, target: 6), yTicks = Self.ticks(y0, y1, target: 5)
        if yRange == nil { y0 = min(y0, yTicks.first ?? y0); y1 = max(y1, yTicks.last ?? y1) }
        func px(_ x: Double) -> Int { left + Int(((x - x0) / (x1 - x0) * Double(right - left)).rounded()) }
        func py(_ y: Double) -> Int { bottom - Int(((y - y0) / (y1 - y0) * Double(bottom - top)).rounded()) }

        for t in yTicks where t >= y0 && t <= y1 {
            let y = py(t)
            c.line(left + 1, y, right, y, grid)
            c.line(left - 4, y, left, y, ink)
            let s = Self.label(t, step: yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1)
            c.text(s, x: left - 6 - Canvas.textWidth(s), y: y - 3, ink)
        }
        for t in xTicks where t >= x0 && t <= x1 {
            let x = px(t)
            c.line(x, top, x, bottom - 1, grid)
            c.line(x, bottom, x, bottom + 4, ink)
            let s = Self.label(t, step: xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1)
            c.text(s, x: x - Canvas.textWidth(s) / 2, y: bottom + 7, ink)
        }
        c.line(left, bottom, right, bottom, ink)
        c.line(left, top, left, bottom, ink)

        for s in series {
            var last: (Int, Int)?
            for p in s.points {
                guard p.x.isFinite, p.y.isFinite else { last = nil; continue }
                let q = (px(p.x), py(min(max(p.y, y0), y1)))
                if let l = last { c.line(l.0, l.1, q.0, q.1, s.color, thickness: 2) } else { c.set(q.0, q.1, s.color) }
                last = q
            }
        }
        if series.count > 1 {
            for (i, s) in series.enumerated() {
                let y = top + 6 + 11 * i, x = right - 8 - Canvas.textWidth(s.name) - 16
                c.fill(x: x, y: y + 2, width: 12, height: 3, s.color)
                c.text(s.name, x: x + 16, y: y, ink)
            }
        }
        return c.image
    }

    /// Renders and writes the chart as a PNG, atomically.
    public func writePNG(to url: URL) throws { try render().writePNG(to: url) }

    /// "Nice" tick values (1, 2 or 5 × 10ⁿ apart) covering [lo, hi], about `target` of them.
    public static func ticks(_ lo: Double, _ hi: Double, target: Int) -> [Double] {
        guard hi > lo, target > 0, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(target)
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var out: [Double] = []
        let first = (lo / step).rounded(.down)
        var i = 0.0
        while (first + i) * step <= hi + step * 0.5 && out.count < 100 {
            let v = (first + i) * step
            out.append(abs(v) < step * 1e-9 ? 0 : v)
            i += 1
        }
        return out
    }

    /// A short label for tick value `v` on a grid of `step`: integers plainly, "12k" for thousands, otherwise
    /// as many decimals as the step needs, scientific for very small or large values.
    public static func label(_ v: Double, step: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e6 || a < 1e-3 { return String(format: "%.0e", v) }
        if a >= 10_000, (v / 1000).rounded() == v / 1000 { return "\(Int((v / 1000).rounded()))k" }
        if step >= 1, v.rounded() == v { return "\(Int(v))" }
        let decimals = max(0, min(4, Int(ceil(-log10(step)))))
        return String(format: "%.\(decimals)f", v)
    }

    /// Exponential moving average with bias correction (TensorBoard's smoothing): s_i = α·s_{i−1} + (1 − α)·y_i,
    /// divided by 1 − αⁱ. `alpha` 0 returns the values unchanged.
    public static func smoothed(_ values: [Double], alpha: Double) -> [Double] {
        var s = 0.0, w = 0.0
        return values.map { y in
            guard y.isFinite else { return y }
            s = alpha * s + (1 - alpha) * y
            w = alpha * w + (1 - alpha)
            return s / w
        }
    }
}
