import Foundation
import ParisImage
import ParisData
import ParisRunTestSupport
import ParisTraining
import XCTest

/// The chart renderer (LinePlot, Heatmap, the 5×7 font) and the run plots drawn from metrics.jsonl.
final class PlotTests: XCTestCase {
    func testLinePlotWritesAPNGOfTheRequestedSize() throws {
        var plot = LinePlot(title: "expert 0 loss", xLabel: "step", yLabel: "loss", width: 320, height: 200)
        plot.add(.init(name: "loss", points: (1...50).map { (Double($0), 1 / Double($0) + 0.1) }))
        plot.add(.init(name: "other", points: [(1, 0.5), (25, .nan), (50, 0.2)]))
        let url = try TinyRun.temporaryFolder(self).appendingPathComponent("loss.png")
        try plot.writePNG(to: url)
        let image = try Image(contentsOf: url)
        XCTAssertEqual(image.width, 320)
        XCTAssertEqual(image.height, 200)
        XCTAssertEqual(image.channels, 3)
        // Something was drawn in both series' colours.
        var colours = Set<Int>()
        for i in stride(from: 0, to: image.pixels.count, by: 3) {
            let r: Int = Int(image.pixels[i]), g: Int = Int(image.pixels[i + 1]), b: Int = Int(image.pixels[i + 2])
            colours.insert((r << 16) | (g << 8) | b)
        }
        let blue: Int = (31 << 16) | (119 << 8) | 180
        let orange: Int = (255 << 16) | (127 << 8) | 14
        XCTAssertTrue(colours.contains(blue))
        XCTAssertTrue(colours.contains(orange))
    }

    func testEmptyPlotAndTooSmallPlot() throws {
        let empty = try LinePlot(title: "nothing", xLabel: "x", yLabel: "y").render()
        XCTAssertEqual(empty.width, 640)
        XCTAssertThrowsError(try LinePlot(title: "t", xLabel: "x", yLabel: "y", width: 10, height: 10).render())
    }

    func testTicksAndLabels() {
        let t = LinePlot.ticks(0, 1, target: 5)
        XCTAssertEqual(t.count, 6)
        for (a, b) in zip(t, [0, 0.2, 0.4, 0.6, 0.8, 1]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        XCTAssertEqual(LinePlot.ticks(0, 1000, target: 5), [0, 200, 400, 600, 800, 1000])
        XCTAssertEqual(LinePlot.label(20000, step: 5000), "20k")
        XCTAssertEqual(LinePlot.label(0.25, step: 0.05), "0.25")
        XCTAssertEqual(LinePlot.label(300, step: 100), "300")
        XCTAssertEqual(LinePlot.smoothed([1, 1, 1], alpha: 0.9), [1, 1, 1])
        XCTAssertEqual(LinePlot.smoothed([1, 3], alpha: 0), [1, 3])
    }

    func testHeatmapSizeAndFont() throws {
        let map = Heatmap(title: "CONFUSION", rowLabel: "TRUE", columnLabel: "PRED",
                          values: [[3, 0, 1], [0, 4, 0], [1, 0, 2]], cellSize: 30)
        let image = try map.render()
        XCTAssertEqual(image.width, map.size.width)
        XCTAssertEqual(image.height, map.size.height)
        XCTAssertEqual(image.height, 44 + 3 * 30 + 10)
        XCTAssertThrowsError(try Heatmap(title: "", rowLabel: "", columnLabel: "", values: [[1, 2], [3]]).render())
        // Every glyph is 7 rows of 5 bits; lower case draws as capitals.
        for ch in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.-+%" {
            let g = BitmapFont.glyph(ch)
            XCTAssertEqual(g.count, 7)
            XCTAssertTrue(g.allSatisfy { $0 < 32 })
        }
        XCTAssertEqual(BitmapFont.glyph("a"), BitmapFont.glyph("A"))
    }

    func testRunPlotsFromMetrics() throws {
        let folder = try TinyRun.temporaryFolder(self)
        XCTAssertNil(try RunPlots.writeLossPlot(folder: folder, title: "expert 0 loss"))
        let lines = (1...20).map { #"{"step": \#($0 * 10), "loss": \#(2.0 / Double($0)), "accuracy": \#(Double($0) / 20)}"# }
        try (lines.joined(separator: "\n") + "\n{\"step\": 2").write(to: folder.appendingPathComponent("metrics.jsonl"),
                                                                      atomically: true, encoding: .utf8)
        let written = try RunPlots.writeRouterPlots(folder: folder)
        XCTAssertEqual(written.map(\.lastPathComponent), ["loss.png", "accuracy.png"])
        let image = try Image(contentsOf: folder.appendingPathComponent("accuracy.png"))
        XCTAssertEqual(image.width, 640)
        XCTAssertEqual(image.height, 400)
    }
}
