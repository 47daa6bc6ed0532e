import Foundation
import Torch

/// An error reading, writing or converting an image; the message names the file (or "<memory>") and the problem.
public struct ImageError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An 8-bit image: `height` rows of `width` pixels of `channels` samples (1 gray, 3 RGB, 4 RGBA), row-major HWC.
public struct Image: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public let pixels: [UInt8]

    /// Checks the size and that `pixels` holds exactly width × height × channels bytes.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0 else { throw ImageError("zero-size image (\(width)×\(height))") }
        guard [1, 3, 4].contains(channels) else {
            throw ImageError("an image has 1, 3 or 4 channels, not \(channels)")
        }
        guard pixels.count == width * height * channels else {
            throw ImageError("\(pixels.count) bytes cannot hold a \(width)×\(height)×\(channels) image")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    public var hasAlpha: Bool { channels == 4 }

    /// An RGB colour, as the background that alpha is composited over.
    public struct RGB: Equatable, Sendable {
        public var r: UInt8, g: UInt8, b: UInt8
        public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { (self.r, self.g, self.b) = (r, g, b) }
        public static let white = RGB(255, 255, 255)
        public static let black = RGB(0, 0, 0)
    }

    /// What loading does with an alpha channel.
    public enum Alpha: Equatable, Sendable {
        /// Keep RGBA.
        case keep
        /// Blend over a solid colour, giving RGB.
        case composite(over: RGB)
    }

    /// RGB: RGBA is blended over `background` (c·a + bg·(255 − a)) / 255 rounded; others are returned as they are.
    public func compositingAlpha(over background: RGB = .white) -> Image {
        guard channels == 4 else { return self }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let bg = [Int(background.r), Int(background.g), Int(background.b)]
        for i in 0..<(width * height) {
            let a = Int(pixels[4 * i + 3])
            for c in 0..<3 {
                out[3 * i + c] = UInt8((Int(pixels[4 * i + c]) * a + bg[c] * (255 - a) + 127) / 255)
            }
        }
        return try! Image(width: width, height: height, channels: 3, pixels: out)
    }

    /// Three channels: gray is repeated, alpha is composited over `background`.
    public func rgb(background: RGB = .white) -> Image {
        switch channels {
        case 3: return self
        case 4: return compositingAlpha(over: background)
        default:
            var out = [UInt8](repeating: 0, count: width * height * 3)
            for i in 0..<(width * height) { out[3 * i] = pixels[i]; out[3 * i + 1] = pixels[i]; out[3 * i + 2] = pixels[i] }
            return try! Image(width: width, height: height, channels: 3, pixels: out)
        }
    }

    /// The centre `width`×`height` region; offsets round half to even, like torchvision's `CenterCrop`.
    public func centerCropped(width cw: Int, height ch: Int) throws -> Image {
        guard cw > 0, ch > 0, cw <= width, ch <= height else {
            throw ImageError("cannot centre-crop a \(width)×\(height) image to \(cw)×\(ch)")
        }
        let top = Int((Double(height - ch) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(width - cw) / 2).rounded(.toNearestOrEven))
        var out = [UInt8]()
        out.reserveCapacity(cw * ch * channels)
        for y in top..<(top + ch) {
            let start = (y * width + left) * channels
            out.append(contentsOf: pixels[start..<(start + cw * channels)])
        }
        return try Image(width: cw, height: ch, channels: channels, pixels: out)
    }
}
