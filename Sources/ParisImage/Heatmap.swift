import Foundation

/// A matrix drawn as coloured cells (white → dark blue by value) with row and column indices and, when the cells
/// are large enough, the values written in them: the router's confusion matrix.
public struct Heatmap: Sendable {
    public var title: String
    /// Rows label (e.g. "TRUE"), columns label (e.g. "PREDICTED").
    public var rowLabel: String
    public var columnLabel: String
    /// [rows][columns]; all rows the same length.
    public var values: [[Double]]
    /// Cells are normalised by this value (nil: the largest value).
    public var maxValue: Double?
    public var cellSize: Int
    /// Optional colour intensities in 0…1, same shape as `values` (e.g. each row's shares), so the colours can
    /// show proportions while the cells print counts. Nil colours by `values / maxValue`.
    public var shades: [[Double]]?

    public init(title: String, rowLabel: String, columnLabel: String, values: [[Double]], maxValue: Double? = nil,
                cellSize: Int = 40) {
        self.title = title
        self.rowLabel = rowLabel
        self.columnLabel = columnLabel
        self.values = values
        self.maxValue = maxValue
        self.cellSize = cellSize
    }

    /// The image size that `render` makes.
    public var size: (width: Int, height: Int) {
        let cols = values.first?.count ?? 0
        return (width: max(44 + cols * cellSize + 10, Canvas.textWidth(title) + 8), height: 44 + values.count * cellSize + 10)
    }

    /// Renders the heatmap.
    public func render() throws -> Image {
        let rows = values.count, cols = values.first?.count ?? 0
        guard rows > 0, cols > 0, values.allSatisfy({ $0.count == cols }) else {
            throw ImageError("a heatmap needs a non-empty rectangular matrix")
        }
        if let shades, shades.count != rows || !shades.allSatisfy({ $0.count == cols }) {
            throw ImageError("heatmap shades must have the shape of the values (\(rows)×\(cols))")
        }
        guard cellSize >= 4 else { throw ImageError("heatmap cells must be at least 4 pixels, not \(cellSize)") }
        let (w, h) = size
        var c = try Canvas(width: w, height: h)
        let ink = Image.RGB(40, 40, 40)
        let left = 44, top = 44
        let top0 = values.flatMap { $0 }.filter(\.isFinite).max() ?? 0
        let scale = max(maxValue ?? top0, 1e-12)
        c.text(title, x: 4, y: 4, ink)
        c.text(columnLabel, x: left, y: 18, ink)
        c.text(rowLabel, x: 2, y: top - 12, ink)
        for r in 0..<rows {
            for col in 0..<cols {
                let v = values[r][col]
                let raw = shades.map { $0[r][col] } ?? (v.isFinite ? v / scale : 0)
                let f = raw.isFinite ? min(1, max(0, raw)) : 0
                // white (255,255,255) → dark blue (8, 48, 107)
                let color = Image.RGB(UInt8(255 - f * 247), UInt8(255 - f * 207), UInt8(255 - f * 148))
                let x = left + col * cellSize, y = top + r * cellSize
                c.fill(x: x, y: y, width: cellSize - 1, height: cellSize - 1, color)
                let s = Self.cellText(v)
                if cellSize >= Canvas.textWidth(s) + 4 && cellSize >= 11 {
                    let textInk: Image.RGB = f > 0.5 ? .white : ink
                    c.text(s, x: x + (cellSize - 1 - Canvas.textWidth(s)) / 2, y: y + (cellSize - 1 - 7) / 2, textInk)
                }
            }
            let label = "\(r)"
            c.text(label, x: left - 4 - Canvas.textWidth(label), y: top + r * cellSize + (cellSize - 7) / 2, ink)
        }
        for col in 0..<cols {
            let label = "\(col)"
            c.text(label, x: left + col * cellSize + (cellSize - Canvas.textWidth(label)) / 2, y: top - 10, ink)
        }
        return c.image
    }

    /// Renders and writes the heatmap as a PNG, atomically.
    public func writePNG(to url: URL) throws { try render().writePNG(to: url) }

    static func cellText(_ v: Double) -> String {
        guard v.isFinite else { return "" }
        if v.rounded() == v && abs(v) < 1e6 { return "\(Int(v))" }
        return String(format: abs(v) < 1 ? "%.2f" : "%.1f", v)
    }
}
