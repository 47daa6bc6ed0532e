import CImageCodecs
import Foundation
import Torch

/// The image file formats, told apart by their first bytes.
public enum ImageFormat: String, Sendable {
    case png, jpeg

    /// The format of `data` from its magic bytes; other known formats (GIF, WebP, BMP, TIFF, …) are named in the error.
    public static func detect(_ data: [UInt8], name: String = "<memory>") throws -> ImageFormat {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            data.count >= offset + magic.count && Array(data[offset..<(offset + magic.count)]) == magic
        }
        if data.isEmpty { throw ImageError("\(name): empty file") }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        let others: [(String, [UInt8], Int)] = [
            ("GIF", Array("GIF8".utf8), 0), ("WebP", Array("WEBP".utf8), 8), ("BMP", Array("BM".utf8), 0),
            ("TIFF", [0x49, 0x49, 0x2A, 0x00], 0), ("TIFF", [0x4D, 0x4D, 0x00, 0x2A], 0),
            ("JPEG 2000", [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50], 0), ("AVIF/HEIF", Array("ftyp".utf8), 4),
            ("QOI", Array("qoif".utf8), 0),
        ]
        for (format, magic, offset) in others where starts(magic, at: offset) {
            if format == "WebP" && !starts(Array("RIFF".utf8)) { continue }
            throw ImageError("\(name): \(format) images are not supported (only PNG and JPEG)")
        }
        throw ImageError("\(name): not a PNG or JPEG file (unrecognised first bytes)")
    }
}

extension Image {
    /// The most pixels (width × height) a decoded image may have: 2²⁶ = 67,108,864, an 8192 × 8192 image. It is
    /// checked from the file's header (PNG IHDR, JPEG SOF) before any pixel memory is allocated, because a few
    /// megabytes of compressed PNG can declare 32000 × 32000 RGBA (4 GB). 64 megapixels holds an 8K frame
    /// (7680 × 4320, 33 MP) and the photos of ordinary cameras; Paris trains on 32–256-pixel images, so anything
    /// larger is only ever downscaled. Decoding the largest legal image takes 256 MiB for RGBA bytes, about
    /// 1.3 GB with the copies and float tensors the importers make. (PNG also keeps libpng's 32768-pixel side
    /// limit, JPEG its own 65500.)
    public static let maxPixels = 1 << 26

    /// Decodes PNG or JPEG bytes (format from the magic bytes). `name` is used in error messages. An image whose
    /// header declares more than `maxPixels` pixels is refused before its pixels are allocated.
    public init(decoding data: [UInt8], name: String = "<memory>", alpha: Alpha = .keep) throws {
        let format = try ImageFormat.detect(data, name: name)
        var img = ic_image()
        var err = [CChar](repeating: 0, count: 512)
        let limit = UInt64(Self.maxPixels)
        let status = data.withUnsafeBufferPointer { buf in
            err.withUnsafeMutableBufferPointer { e in
                format == .png
                    ? ic_png_decode(buf.baseAddress, buf.count, limit, &img, e.baseAddress, e.count)
                    : ic_jpeg_decode(buf.baseAddress, buf.count, limit, &img, e.baseAddress, e.count)
            }
        }
        defer { ic_free(img.pixels) }
        if status == IC_TOO_MANY_PIXELS {
            let w = Int(img.width), h = Int(img.height)
            throw ImageError("\(name): the \(format == .png ? "PNG" : "JPEG") header declares \(w)×\(h) pixels "
                + String(format: "(%.1f megapixels)", Double(w * h) / 1e6)
                + ", more than the limit of \(Self.maxPixels) pixels (8192×8192, Image.maxPixels); downscale it first")
        }
        guard status == 0, let p = img.pixels else {
            let msg = cMessage(err)
            throw ImageError("\(name): cannot decode \(format == .png ? "PNG" : "JPEG"): \(msg.isEmpty ? "unknown error" : msg)")
        }
        let w = Int(img.width), h = Int(img.height), c = Int(img.channels)
        guard w > 0, h > 0 else { throw ImageError("\(name): zero-size image (\(w)×\(h))") }
        let decoded = try Image(width: w, height: h, channels: c,
                                pixels: Array(UnsafeBufferPointer(start: p, count: w * h * c)))
        switch alpha {
        case .keep: self = decoded
        case .composite(let bg): self = decoded.compositingAlpha(over: bg)
        }
    }

    /// Reads and decodes a PNG or JPEG file.
    public init(contentsOf url: URL, alpha: Alpha = .keep) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            let exists = FileManager.default.fileExists(atPath: url.path)
            throw ImageError("\(url.path): \(exists ? "cannot read the file" : "no such file")")
        }
        try self.init(decoding: [UInt8](data), name: url.path, alpha: alpha)
    }

    /// The image as PNG bytes (lossless, 8-bit gray/RGB/RGBA).
    public func pngData() throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var err = [CChar](repeating: 0, count: 512)
        let status = pixels.withUnsafeBufferPointer { p in
            err.withUnsafeMutableBufferPointer { e in
                ic_png_encode(p.baseAddress, Int32(width), Int32(height), Int32(channels), &out, &size,
                              e.baseAddress, e.count)
            }
        }
        defer { ic_free(out) }
        guard status == 0, let out else { throw ImageError("cannot encode PNG: \(cMessage(err))") }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// Writes the image as a PNG file atomically (a reader sees the old file or the whole new one).
    public func writePNG(to url: URL) throws {
        let bytes = try pngData()
        try AtomicFile.write(bytes, to: url)
    }
}

/// The text of a NUL-terminated C buffer.
private func cMessage(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
