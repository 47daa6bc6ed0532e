import CZlib

/// Whole-buffer gzip through the system zlib (Debian `zlib1g-dev`; SwiftPM target `CZlib`).
public enum Gzip {
    /// Inflates a gzip (or zlib) stream; a truncated or corrupt stream is an error naming `name`.
    public static func decompress(_ input: [UInt8], name: String = "<memory>") throws -> [UInt8] {
        guard !input.isEmpty else { throw DatasetImportError("\(name): empty file, not gzip data") }
        var stream = z_stream()
        guard czlib_inflate_init_gzip(&stream) == Z_OK else { throw DatasetImportError("\(name): zlib init failed") }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 2)
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        var input = input
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { inp in
            stream.next_in = inp.baseAddress
            stream.avail_in = UInt32(inp.count)
            repeat {
                let produced: Int = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(chunk)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return chunk - Int(stream.avail_out)
                }
                output.append(contentsOf: buffer[0..<produced])
                if status == Z_STREAM_END { break }
                if status == Z_BUF_ERROR || (status == Z_OK && stream.avail_in == 0 && produced == 0) {
                    throw DatasetImportError("\(name): truncated gzip data (the stream ends early)")
                }
                guard status == Z_OK else {
                    let msg = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw DatasetImportError("\(name): corrupt gzip data (\(msg))")
                }
            } while true
        }
        return output
    }

    /// Deflates `input` into a gzip stream.
    public static func compress(_ input: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        var stream = z_stream()
        guard czlib_deflate_init_gzip(&stream, level) == Z_OK else { throw DatasetImportError("zlib deflate init failed") }
        defer { deflateEnd(&stream) }
        var input = input
        let bound = Int(deflateBound(&stream, UInt(input.count))) + 64
        var output = [UInt8](repeating: 0, count: bound)
        let status: Int32 = input.withUnsafeMutableBufferPointer { inp in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = inp.baseAddress
                stream.avail_in = UInt32(inp.count)
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw DatasetImportError("gzip compression failed (zlib \(status))") }
        return Array(output[0..<Int(stream.total_out)])
    }
}
