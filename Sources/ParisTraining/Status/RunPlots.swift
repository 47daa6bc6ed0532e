import Foundation
import ParisImage
import ParisRun
import ParisData

/// The charts of a run, drawn from the jobs' `metrics.jsonl` files alone: `expert_<k>/loss.png` (and the
/// monolith's), `router/loss.png` and `router/accuracy.png`. Trainers call these at the end; `paris status --plots`
/// redraws them at any time.
public enum RunPlots {
    public static let lossName = "loss.png"
    public static let accuracyName = "accuracy.png"

    /// Smoothing of the plotted curves (exponential moving average with bias correction).
    public static let smoothing = 0.9

    /// Writes `folder/loss.png` from `folder/metrics.jsonl`: the raw loss (light) and its smoothed curve against
    /// the step. Returns the file written, or nil when the log has no loss yet.
    @discardableResult
    public static func writeLossPlot(folder: URL, title: String) throws -> URL? {
        let records = MetricsFile.read(folder.appendingPathComponent(MetricsFile.fileName))
        let points = MetricsFile.series(records, "loss")
        guard !points.isEmpty else { return nil }
        var plot = LinePlot(title: title, xLabel: "step", yLabel: "loss")
        plot.add(.init(name: "loss", points: points, color: .init(174, 199, 232)), autoColor: false)
        let smooth = LinePlot.smoothed(points.map(\.y), alpha: smoothing)
        plot.add(.init(name: "smoothed", points: zip(points, smooth).map { ($0.0.x, $0.1) },
                       color: .init(31, 119, 180)), autoColor: false)
        let url = folder.appendingPathComponent(lossName)
        try plot.writePNG(to: url)
        return url
    }

    /// Writes `router/accuracy.png` (training accuracy, smoothed, in 0…1) and `router/loss.png`.
    @discardableResult
    public static func writeRouterPlots(folder: URL) throws -> [URL] {
        var out: [URL] = []
        if let u = try writeLossPlot(folder: folder, title: "router loss") { out.append(u) }
        let records = MetricsFile.read(folder.appendingPathComponent(MetricsFile.fileName))
        let points = MetricsFile.series(records, "accuracy")
        guard !points.isEmpty else { return out }
        var plot = LinePlot(title: "router accuracy", xLabel: "step", yLabel: "train accuracy", yRange: 0...1)
        plot.add(.init(name: "accuracy", points: points, color: .init(174, 199, 232)), autoColor: false)
        let smooth = LinePlot.smoothed(points.map(\.y), alpha: smoothing)
        plot.add(.init(name: "smoothed", points: zip(points, smooth).map { ($0.0.x, $0.1) },
                       color: .init(44, 160, 44)), autoColor: false)
        let url = folder.appendingPathComponent(accuracyName)
        try plot.writePNG(to: url)
        out.append(url)
        return out
    }

    /// (Re)writes every chart of the run whose job has a metrics log; returns the files written.
    @discardableResult
    public static func writeAll(run layout: RunLayout, numExperts: Int) throws -> [URL] {
        var out: [URL] = []
        for k in 0..<numExperts {
            if let u = try writeLossPlot(folder: layout.expert(k), title: "expert \(k) loss") { out.append(u) }
        }
        if let u = try writeLossPlot(folder: layout.monolith, title: "monolith loss") { out.append(u) }
        out += try writeRouterPlots(folder: layout.router)
        return out
    }
}
