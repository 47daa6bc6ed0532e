import Foundation
import Torch

/// What `paris doctor` prints: where libtorch is, how it was built, and which devices it can use.
public struct RuntimeReport: Codable, Sendable {
    public struct CUDADevice: Codable, Sendable {
        public let index: Int
        public let name: String
        public let memoryBytes: Int
    }

    public let torchVersion: String
    public let libraryPath: String
    public let cxx11ABI: Bool
    public let cpuCapability: String
    public let threads: Int
    public let cudaLibrary: String
    public let cudaAvailable: Bool
    public let cudaDevices: [CUDADevice]
    public let cudnnVersion: Int?

    /// Collects the report; loads CUDA support first if libtorch has it.
    public static func collect() -> RuntimeReport {
        Runtime.loadCUDA()
        let cudaLibrary: String =
            !Runtime.hasCUDALibrary ? "absent (CPU-only libtorch)"
            : Runtime.cudaLoadError.map { "present but not loadable: \($0)" } ?? "loaded"
        let available = Runtime.cudaIsAvailable
        let devices: [CUDADevice] = !available ? [] : (0..<Runtime.cudaDeviceCount).map { i in
            let info = Runtime.cudaDevice(i)
            return CUDADevice(index: i, name: info?.name ?? "unknown", memoryBytes: info?.memory ?? 0)
        }
        return RuntimeReport(
            torchVersion: Runtime.version, libraryPath: Runtime.libraryPath, cxx11ABI: Runtime.cxx11ABI,
            cpuCapability: Runtime.cpuCapability, threads: Runtime.threads, cudaLibrary: cudaLibrary,
            cudaAvailable: available, cudaDevices: devices, cudnnVersion: Runtime.cudnnVersion)
    }

    /// The report as JSON (snake_case keys, sorted).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Human-readable lines, one fact per line.
    public var lines: [String] {
        var out = [
            "libtorch        \(torchVersion)",
            "library path    \(libraryPath)",
            "C++11 ABI       \(cxx11ABI ? "yes" : "no")",
            "CPU capability  \(cpuCapability)",
            "CPU threads     \(threads)",
            "libtorch_cuda   \(cudaLibrary)",
            "CUDA available  \(cudaAvailable ? "yes" : "no")",
        ]
        for d in cudaDevices {
            let gib = String(format: "%.1f", Double(d.memoryBytes) / 1_073_741_824)
            out.append("  cuda:\(d.index)        \(d.name), \(gib) GiB")
        }
        out.append("cuDNN           \(cudnnVersion.map(String.init) ?? "none")")
        return out
    }
}
