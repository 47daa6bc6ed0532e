import CTorch
import Foundation

/// The libtorch runtime: version, build, threads, seeding and CUDA. CUDA support is loaded on first use
/// (`loadCUDA`), by dlopen of `libtorch_cuda.so` beside `libtorch_cpu.so`, so one binary runs with or without a GPU.
public enum Runtime {
    private static let cudaLoadResult: (state: Int32, error: String?) = {
        let r = ct_cuda_load()
        return (r, r < 0 ? TorchError.last().message : nil)
    }()

    /// Loads CUDA support if libtorch has it; safe to call many times.
    @discardableResult
    public static func loadCUDA() -> Bool { cudaLoadResult.state == 1 }

    /// Why CUDA support could not be loaded (for example a missing cuDNN), or nil.
    public static var cudaLoadError: String? { cudaLoadResult.error }
    /// Whether this libtorch has `libtorch_cuda.so` at all.
    public static var hasCUDALibrary: Bool { cudaLoadResult.state != 0 }

    public static var cudaIsAvailable: Bool {
        loadCUDA()
        return ct_cuda_is_available()
    }

    public static var cudaDeviceCount: Int {
        loadCUDA()
        return Int(ct_cuda_device_count())
    }

    /// Name and total memory (bytes) of cuda:`index`, from the CUDA driver.
    public static func cudaDevice(_ index: Int) -> (name: String, memory: Int)? {
        var buf = [CChar](repeating: 0, count: 256)
        var mem: Int64 = 0
        guard ct_cuda_device_info(Int32(index), &buf, 256, &mem) == 0 else { return nil }
        let name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (name, Int(mem))
    }

    /// Free and total memory (bytes) of the CUDA device current on this thread (`index` names the device the
    /// caller works on), from the CUDA driver; nil without CUDA or before any CUDA work on this thread.
    public static func cudaMemoryInfo(_ index: Int) -> (free: Int, total: Int)? {
        var free: Int64 = 0, total: Int64 = 0
        guard ct_cuda_memory_info(Int32(index), &free, &total) == 0 else { return nil }
        return (Int(free), Int(total))
    }

    /// cuDNN's version number (e.g. 91002), or nil without CUDA.
    public static var cudnnVersion: Int? {
        let v = ct_cudnn_version()
        return v > 0 ? Int(v) : nil
    }

    /// Waits for all queued CUDA work (a no-op without CUDA); use before reading a clock.
    public static func synchronize() throws { try checkStatus(ct_cuda_synchronize()) }

    public static var version: String { String(cString: ct_torch_version()) }
    public static var libraryPath: String { String(cString: ct_libtorch_path()) }
    public static var cxx11ABI: Bool { ct_cxx11_abi() }
    /// The best vector instruction set libtorch's CPU kernels use here (DEFAULT, AVX2, AVX512...).
    public static var cpuCapability: String { String(cString: ct_cpu_capability()) }
    /// libtorch's build configuration (`torch.__config__.show()`).
    public static var buildConfig: String { String(cString: ct_build_config()) }

    /// Intra-op threads used by CPU kernels. Set it through `setThreads(_:)` to have the value checked.
    public static var threads: Int {
        get { Int(ct_get_num_threads()) }
        set { ct_set_num_threads(Int32(newValue)) }
    }

    /// The most intra-op threads per CPU core this process may use: 4. libtorch starts one OS thread per intra-op
    /// thread, and past the cores they only take turns on them (slower: more switching, colder caches); 4 per core
    /// leaves room to try oversubscription and refuses a typo like `--threads 1000` on a 2-core machine (and an
    /// Int32 overflow of the C API).
    public static let maxThreadsPerCore = 4

    /// `maxThreadsPerCore` × the cores this process may run on (`ProcessInfo.activeProcessorCount`).
    public static var maxThreads: Int { maxThreadsPerCore * max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Throws unless 1 ≤ `n` ≤ `maxThreads`.
    public static func checkThreads(_ n: Int) throws {
        guard n >= 1 else { throw TorchError("threads must be ≥ 1, not \(n)") }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        guard n <= maxThreads else {
            throw TorchError("threads must be ≤ \(maxThreads) (\(maxThreadsPerCore) per core, Runtime.maxThreadsPerCore, "
                + "on this machine's \(cores) core\(cores == 1 ? "" : "s")), not \(n)")
        }
    }

    /// Sets `threads` after `checkThreads(n)`.
    public static func setThreads(_ n: Int) throws {
        try checkThreads(n)
        threads = n
    }

    /// Seeds libtorch's generators (CPU and CUDA): the same numbers as `torch.manual_seed(seed)` in PyTorch.
    public static func manualSeed(_ seed: UInt64) {
        loadCUDA()
        ct_manual_seed(seed)
    }

    /// The state of `device`'s default random generator (libtorch's `get_rng_state()`; on CUDA,
    /// `torch.cuda.get_rng_state(n)`), as bytes to save with a training checkpoint.
    public static func rngState(device: Device = .cpu) throws -> [UInt8] {
        let code = device.code
        let n = ct_rng_get_state(code, nil, 0)
        guard n >= 0 else { throw TorchError.last() }
        var bytes = [UInt8](repeating: 0, count: Int(n))
        let m = bytes.withUnsafeMutableBufferPointer { ct_rng_get_state(code, $0.baseAddress, n) }
        guard m == n else { throw m < 0 ? TorchError.last() : TorchError("the generator state changed size while read") }
        return bytes
    }

    /// Restores a state that `rngState(device:)` returned, so the following draws repeat those that followed it.
    public static func setRNGState(_ state: [UInt8], device: Device = .cpu) throws {
        let code = device.code
        try checkStatus(state.withUnsafeBufferPointer { ct_rng_set_state(code, $0.baseAddress, Int64(state.count)) })
    }
}
