import Foundation
import ParisImage
import ParisData
import Torch
import XCTest

final class ImageTests: XCTestCase {
    /// The fixture's expected pixels (uint8 [H, W, C]) as an Image.
    private func expected(_ fx: [String: Tensor], _ key: String) throws -> Image {
        let t = try tensor(fx, key)
        let s = t.shape
        return try Image(width: s[1], height: s[0], channels: s[2], pixels: try t.bytes())
    }

    func testPNGColourTypesMatchPillow() throws {
        let fx = try fixture("images")
        let cases: [(String, String, Int)] = [
            ("gray8.png", "gray8", 1), ("gray1.png", "gray1", 1), ("gray16.png", "gray16", 1),
            ("gray_alpha.png", "gray_alpha", 4), ("rgb.png", "rgb", 3), ("rgba.png", "rgba", 4),
            ("rgb16.png", "rgb16", 3), ("rgba16.png", "rgba16", 4), ("palette.png", "palette", 3),
            ("palette_trns.png", "palette_trns", 4), ("interlaced.png", "interlaced", 3),
        ]
        for (file, key, channels) in cases {
            let img = try Image(contentsOf: fixtureURL(file))
            let want = try expected(fx, key)
            XCTAssertEqual(img.channels, channels, file)
            XCTAssertEqual(img, want, "\(file) decodes differently from Pillow")
        }
    }

    /// Pillow and we both decode with libjpeg-turbo's defaults (islow IDCT, fancy upsampling) and agree exactly here,
    /// but Pillow's wheel bundles its own libjpeg-turbo build (another version than Debian's, whose SIMD paths may
    /// round differently), so allow ±2 per sample.
    func testJPEGMatchesPillow() throws {
        let fx = try fixture("images")
        for (file, key, channels) in [("baseline.jpg", "baseline_jpg", 3), ("progressive.jpg", "progressive_jpg", 3),
                                      ("gray.jpg", "gray_jpg", 1)] {
            let img = try Image(contentsOf: fixtureURL(file))
            let want = try expected(fx, key)
            XCTAssertEqual(img.channels, channels, file)
            XCTAssertEqual([img.width, img.height], [want.width, want.height], file)
            let maxDiff = zip(img.pixels, want.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(maxDiff, 2, "\(file): max |diff| \(maxDiff)")
        }
    }

    func testFormatFromMagicBytesNotExtension() throws {
        let data = try [UInt8](Data(contentsOf: fixtureURL("rgb.png")))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("actually-a-png.jpg")
        try Data(data).write(to: url)
        XCTAssertEqual(try ImageFormat.detect(data), .png)
        XCTAssertEqual(try Image(contentsOf: url), try Image(contentsOf: fixtureURL("rgb.png")))
    }

    func testBadInputsThrowClearErrors() throws {
        assertThrows({ try Image(decoding: []) }, contains: "empty")
        assertThrows({ try Image(contentsOf: fixtureURL("truncated.png")) }, contains: "truncated.png")
        assertThrows({ try Image(contentsOf: fixtureURL("corrupt_header.png")) }, contains: "corrupt_header.png")
        assertThrows({ try Image(contentsOf: fixtureURL("corrupt.jpg")) }, contains: "corrupt.jpg")
        assertThrows({ try Image(contentsOf: fixtureURL("truncated.jpg")) }, contains: "truncated")
        assertThrows({ try Image(contentsOf: fixtureURL("image.gif")) }, contains: "GIF images are not supported")
        assertThrows({ try Image(contentsOf: fixtureURL("image.webp")) }, contains: "WebP images are not supported")
        assertThrows({ try Image(contentsOf: fixtureURL("no-such-file.png")) }, contains: "no such file")
        assertThrows({ try Image(decoding: Array("hello world".utf8)) }, contains: "not a PNG or JPEG")
        assertThrows({ try Image(decoding: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) }, contains: "PNG")
        assertThrows({ try Image(decoding: [0xFF, 0xD8, 0xFF]) }, contains: "JPEG")
        assertThrows({ try Image(width: 0, height: 3, channels: 3, pixels: []) }, contains: "zero-size")
        assertThrows({ try Image(contentsOf: fixtureURL("zero_size.png")) }, contains: "zero")
        assertThrows({ try Image(contentsOf: fixtureURL("bad_marker.jpg")) }, contains: "bad_marker.jpg: cannot decode JPEG")
        // Every prefix of a valid PNG and JPEG fails cleanly (no crash, no longjmp through Swift).
        for file in ["rgba.png", "progressive.jpg"] {
            let data = try [UInt8](Data(contentsOf: fixtureURL(file)))
            for n in stride(from: 0, to: data.count, by: 7) {
                XCTAssertThrowsError(try Image(decoding: Array(data[0..<n])), "\(file) prefix \(n)")
            }
            // Flipped bytes decode or throw, never crash (a seeded LCG picks the positions).
            var state: UInt64 = 12345
            for _ in 0..<300 {
                var bad = data
                for _ in 0..<3 {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let i = 2 + Int(state >> 33) % (data.count - 2)
                    bad[i] ^= UInt8(truncatingIfNeeded: state >> 17) | 1
                }
                _ = try? Image(decoding: bad)
            }
        }
    }

    /// A PNG of signature, IHDR (declaring width × height, 8-bit, `colorType`), one IDAT chunk and IEND, each with a
    /// correct CRC, so libpng reads the header and reaches the pixel data.
    private func craftedPNG(width: UInt32, height: UInt32, colorType: UInt8 = 6) -> [UInt8] {
        func crc32(_ bytes: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
            }
            return ~c
        }
        func be(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            return be(UInt32(body.count)) + typed + be(crc32(typed))
        }
        let ihdr = be(width) + be(height) + [8, colorType, 0, 0, 0]
        // An empty zlib stream (stored, final, zero length): enough for libpng to start reading rows.
        let idat: [UInt8] = [0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", idat)
            + chunk("IEND", [])
    }

    /// A small file may declare gigabytes of pixels; the header is checked before anything is allocated (issue #18:
    /// a 4 MB PNG declaring 32000×32000 RGBA aborted the importer with "failed to allocate 4096000032 bytes").
    func testHeaderDeclaringTooManyPixelsIsRefusedBeforeAllocating() throws {
        XCTAssertEqual(Image.maxPixels, 8192 * 8192)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bomb = dir.appendingPathComponent("bomb.png")
        try Data(craftedPNG(width: 32000, height: 32000)).write(to: bomb)
        assertThrows({ try Image(contentsOf: bomb) }, contains: "bomb.png: the PNG header declares 32000×32000 pixels")
        assertThrows({ try Image(contentsOf: bomb) }, contains: "more than the limit of 67108864 pixels")
        // One pixel over the limit (each side within libpng's 32768), and the same for gray.
        assertThrows({ try Image(decoding: self.craftedPNG(width: 8193, height: 8192)) }, contains: "8193×8192")
        assertThrows({ try Image(decoding: self.craftedPNG(width: 32768, height: 2049, colorType: 0)) },
                     contains: "32768×2049")
        // At the limit, the crafted header is accepted and decoding goes on to fail on the missing rows.
        assertThrows({ try Image(decoding: self.craftedPNG(width: 8192, height: 8192, colorType: 0)) },
                     contains: "cannot decode PNG")

        // A JPEG whose SOF0 says 32000×32000 (a real baseline file with its frame size rewritten).
        var jpeg = try [UInt8](Data(contentsOf: fixtureURL("baseline.jpg")))
        let sof = try XCTUnwrap((2..<(jpeg.count - 9)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        for (offset, v) in [(5, 32000), (7, 32000)] {  // height, then width, big-endian
            jpeg[sof + offset] = UInt8(v >> 8)
            jpeg[sof + offset + 1] = UInt8(v & 0xFF)
        }
        let jpegBomb = dir.appendingPathComponent("bomb.jpg")
        try Data(jpeg).write(to: jpegBomb)
        assertThrows({ try Image(contentsOf: jpegBomb) }, contains: "bomb.jpg: the JPEG header declares 32000×32000")

        // A big but legal image (exactly the limit, 16384×4096 gray) still round-trips.
        let wide = try Image(width: 16384, height: 4096, channels: 1,
                             pixels: [UInt8](repeating: 0x5A, count: 16384 * 4096))
        XCTAssertEqual(try Image(decoding: try wide.pngData()), wide)
    }

    func testPNGRoundTripExactAndAtomicWrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paris-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var written: [(URL, Image)] = []
        for file in ["gray8.png", "rgb.png", "rgba.png"] {
            let img = try Image(contentsOf: fixtureURL(file))
            XCTAssertEqual(try Image(decoding: try img.pngData()), img, file)
            let url = dir.appendingPathComponent("out-\(file)")
            try img.writePNG(to: url)
            XCTAssertEqual(try Image(contentsOf: url), img, file)
            written.append((url, img))
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
        XCTAssertThrowsError(try written[0].1.writePNG(to: dir.appendingPathComponent("missing/x.png")))

        // Pillow decodes our PNGs to the same pixels (the interop venv's Pillow, scripts/interop-venv.sh).
        guard let python = try interopPython("Pillow's decoding of our PNGs") else { return }
        for (url, img) in written {
            let p = Process()
            p.executableURL = python
            p.arguments = ["-c", "import sys; from PIL import Image; sys.stdout.buffer.write(Image.open(sys.argv[1]).tobytes())",
                           url.path]
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let out = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
            XCTAssertEqual([UInt8](out), img.pixels, "Pillow decodes \(url.lastPathComponent) differently")
        }
    }

    func testAlphaComposite() throws {
        let img = try Image(width: 2, height: 1, channels: 4, pixels: [200, 100, 0, 255, 200, 100, 0, 0])
        XCTAssertEqual(img.compositingAlpha().pixels, [200, 100, 0, 255, 255, 255])
        XCTAssertEqual(img.compositingAlpha(over: .black).pixels, [200, 100, 0, 0, 0, 0])
        let half = try Image(width: 1, height: 1, channels: 4, pixels: [0, 0, 0, 128])
        XCTAssertEqual(half.compositingAlpha().pixels, [127, 127, 127])  // (255·127 + 127) / 255 = 127
        let loaded = try Image(contentsOf: fixtureURL("rgba.png"), alpha: .composite(over: .white))
        XCTAssertEqual(loaded.channels, 3)
        XCTAssertEqual(loaded, try Image(contentsOf: fixtureURL("rgba.png")).compositingAlpha())
        XCTAssertEqual(try Image(contentsOf: fixtureURL("gray8.png")).rgb().channels, 3)
    }

    func testTensorConversionRoundTripAndBatch() throws {
        let img = try Image(contentsOf: fixtureURL("rgb.png"))
        let t = try img.tensor()
        XCTAssertEqual(t.shape, [3, 24, 32])
        XCTAssertEqual(t.dtype, .float32)
        XCTAssertEqual(try Image(tensor: t), img)
        XCTAssertEqual(try Image(tensor: try img.tensor(range: .zeroToOne), range: .zeroToOne), img)
        // The value of pixel (0, 0) channel 1.
        let v = try t.slice(0, 1, 2).slice(1, 0, 1).slice(2, 0, 1).item()
        XCTAssertEqual(v, Double(img.pixels[1]) / 255 * 2 - 1, accuracy: 1e-6)
        // Out-of-range values are clamped.
        let clamped = try Image(tensor: try Tensor.full([1, 1, 2], 3.0).cat2(try Tensor.full([1, 1, 2], -3.0)))
        XCTAssertEqual(clamped.pixels, [255, 255, 0, 0])
        let batch = try Image.batch([img, img])
        XCTAssertEqual(batch.shape, [2, 3, 24, 32])
        XCTAssertThrowsError(try Image.batch([img, try Image(contentsOf: fixtureURL("gray8.png"))]))
        XCTAssertThrowsError(try Image.batch([]))
        XCTAssertThrowsError(try Image(tensor: try Tensor.zeros([2, 4, 4])))
    }

    func testAntialiasedResizeMatchesTorch() throws {
        let fx = try fixture("images")
        let img = try Image(contentsOf: fixtureURL("rgb.png"))
        for (name, h, w) in [("down", 10, 13), ("up", 40, 50)] {
            let f = try ImageTransforms.resize(try img.tensor(range: .zeroToOne), height: h, width: w)
            try assertClose(f, try tensor(fx, "resize_\(name)_float"), rtol: 0, atol: 1e-5, name)
            let r = try img.resized(width: w, height: h)
            let want = try tensor(fx, "resize_\(name)_u8").permute([1, 2, 0]).contiguous().bytes()
            let maxDiff = zip(r.pixels, want).map { abs(Int($0) - Int($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(maxDiff, 1, "\(name): a float rounding tie may differ by 1, no more")
        }
    }

    func testCenterCrop() throws {
        let img = try Image(width: 5, height: 4, channels: 1, pixels: Array(0..<20))
        let c = try img.centerCropped(width: 2, height: 3)
        // top = round(0.5) = 0 (half to even, as torchvision), left = round(1.5) = 2.
        XCTAssertEqual(c.pixels, [2, 3, 7, 8, 12, 13])
        let t = try ImageTransforms.centerCrop(try img.tensor(), height: 3, width: 2)
        XCTAssertEqual(try Image(tensor: t), c)
        XCTAssertThrowsError(try img.centerCropped(width: 6, height: 1))
    }

    /// Filled polygons and circles: without antialiasing exactly the pixels whose centres are inside; with it, the
    /// total coverage is the shape's area.
    func testCanvasFillsPolygonsAndCircles() throws {
        let red = Image.RGB(255, 0, 0)
        func redness(_ c: Canvas) -> Double {
            stride(from: 0, to: c.pixels.count, by: 3).reduce(0.0) { $0 + Double(c.pixels[$1]) / 255 }
        }
        var c = try Canvas(width: 10, height: 10, background: .black)
        c.fillPolygon([.init(2, 3), .init(6, 3), .init(6, 8), .init(2, 8)], red, antialias: false)
        for y in 0..<10 {
            for x in 0..<10 {
                XCTAssertEqual(c.pixels[3 * (10 * y + x)], (2..<6).contains(x) && (3..<8).contains(y) ? 255 : 0, "(\(x), \(y))")
            }
        }
        // A half-pixel offset square: edge pixels half covered.
        c = try Canvas(width: 10, height: 10, background: .black)
        c.fillPolygon([.init(2.5, 2.5), .init(6.5, 2.5), .init(6.5, 6.5), .init(2.5, 6.5)], red)
        XCTAssertEqual(redness(c), 16, accuracy: 0.05)
        XCTAssertEqual(c.pixels[3 * (10 * 4 + 4)], 255)
        XCTAssertEqual(c.pixels[3 * (10 * 4 + 2)], 128)  // half of 255, rounded
        // A triangle (area 12) and a star-shaped (self-crossing) pentagram: the non-zero rule fills its centre.
        c = try Canvas(width: 10, height: 10, background: .black)
        c.fillPolygon([.init(1, 1), .init(7, 1), .init(1, 5)], red)
        XCTAssertEqual(redness(c), 12, accuracy: 0.1)
        c = try Canvas(width: 20, height: 20, background: .black)
        let pentagram = (0..<5).map { k -> Canvas.Point in
            let a = (-90 + 144 * Double(k)) * .pi / 180
            return .init(10 + 8 * cos(a), 10 + 8 * sin(a))
        }
        c.fillPolygon(pentagram, red, antialias: false)
        XCTAssertEqual(c.pixels[3 * (20 * 10 + 10)], 255)
        // A circle of radius 6: area 36π; clipping at the border is silent.
        c = try Canvas(width: 20, height: 20, background: .black)
        c.fillCircle(centre: .init(10, 10), radius: 6, red)
        XCTAssertEqual(redness(c), 36 * .pi, accuracy: 0.5)
        c.fillCircle(centre: .init(0, 0), radius: 30, red, antialias: false)
        XCTAssertEqual(redness(c), 400, accuracy: 1e-9)
        c.fillPolygon([.init(-5, -5), .init(-1, -5), .init(-1, -1)], .white)  // entirely outside: nothing
        XCTAssertEqual(c.pixels[1], 0)
    }
}

private extension Tensor {
    func cat2(_ other: Tensor) throws -> Tensor { try Tensor.cat([self, other], dim: 2) }
}
