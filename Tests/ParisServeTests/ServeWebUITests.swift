import Foundation
import ParisImage
import ParisRun
import ParisRunTestSupport
import ParisServe
import Torch
import XCTest

/// The web page at `/` in a real headless Chromium: type a prompt, press generate, wait for the image and its
/// routing view, take a screenshot, and check that the console has no errors. The screenshot is written to
/// `PARIS_UI_SCREENSHOT` when set (docs/serving.md shows one), else into the test's temporary folder.
final class ServeWebUITests: XCTestCase {
    func testThePageGeneratesAnImageWithItsRoutingViewInHeadlessChromium() async throws {
        Runtime.threads = 1
        let root = try TinyRun.temporaryFolder(self)
        let run = try TinyRun.withCheckpoints(root)
        // Contact sheets for the two clusters, where `paris partition` writes them.
        let partition = run.partition(try run.config())
        try FileManager.default.createDirectory(at: partition, withIntermediateDirectories: true)
        for k in 0..<2 {
            Runtime.manualSeed(UInt64(k))
            let images = try (Tensor.randint(0, 120, [16, 3, 32, 32]) + (k == 0 ? 130 : 0)).to(dtype: .uint8)
            try ImageGrid.grid(images, columns: 4).writePNG(to: partition.appendingPathComponent("grid_\(k).png"))
        }
        let live = try await LiveServer.start(run)
        defer { live.stop() }
        let browser = try await WebDriver()
        do {
            try await browser.open("http://127.0.0.1:\(live.port)/")
            let sheets = try await browser.waitUntil(
                "return document.querySelectorAll('#experts figure img').length === 2", seconds: 30)
            XCTAssertTrue(sheets, "the experts' contact sheets did not appear")
            try await browser.type("#prompt", "a red apple on a table")
            try await browser.type("#steps", "12")
            try await browser.type("#seed", "3")
            try await browser.click("#generate")
            let shown = try await browser.waitUntil("""
                const item = document.querySelector('#gallery .item');
                return !!item && item.querySelector('img.sample').naturalWidth === 32
                    && item.querySelector('canvas.heat').width > 0
                    && item.querySelector('.summary').textContent.startsWith('Drawn mostly by expert');
                """)
            XCTAssertTrue(shown, "no image with its routing view after generate")
            let status = try await browser.script("return document.getElementById('status').textContent") as? String
            XCTAssertEqual(status, "done: 1 image(s), seeds 3")
            let prompt = try await browser.script("return document.querySelector('#gallery .prompt').textContent")
            XCTAssertEqual(prompt as? String, "“a red apple on a table”")
            let columns = try await browser.script("return document.querySelector('#gallery canvas.heat').height")
            XCTAssertEqual(columns as? Int, 2 * 14, "one heat-map row per expert")
            let png = try await browser.screenshot()
            let image = try Image(decoding: [UInt8](png))
            XCTAssertEqual(image.width, 1200)
            let target = ProcessInfo.processInfo.environment["PARIS_UI_SCREENSHOT"].map { URL(fileURLWithPath: $0) }
                ?? root.appendingPathComponent("serve-ui.png")
            try png.write(to: target, options: .atomic)
            let errors = try await browser.consoleLog().filter { $0.0 == "SEVERE" || $0.0 == "WARNING" }
            XCTAssertTrue(errors.isEmpty, "console: \(errors)")
        } catch {
            await browser.quit()
            throw error
        }
        await browser.quit()
    }
}
