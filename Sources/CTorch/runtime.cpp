// The runtime: where libtorch lives, its build, and CUDA loaded at start-up with dlopen so that one binary runs
// on machines with and without a GPU.
#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/cpu/Utils.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/native/DispatchStub.h>
#include <dlfcn.h>

#include <cstring>

#include <mutex>

#include "shim.h"

using namespace ctorch;

namespace {

std::string dir_of_libtorch() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&at::get_num_threads), &info) && info.dli_fname) {
        std::string p = info.dli_fname;
        auto slash = p.rfind('/');
        return slash == std::string::npos ? "." : p.substr(0, slash);
    }
    return "";
}

int cuda_state = 2;  // 2 not tried, 1 loaded, 0 absent, -1 failed
std::string cuda_error;

// The CUDA driver API (libcuda.so.1), looked up by name: no CUDA headers or link-time dependency needed.
template <typename F> F driver(const char *name) {
    static void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    return lib ? reinterpret_cast<F>(dlsym(lib, name)) : nullptr;
}

}  // namespace

int ct_cuda_load(void) {
    static std::once_flag once;
    std::call_once(once, [] {
        std::string path = dir_of_libtorch() + "/libtorch_cuda.so";
        if (FILE *f = fopen(path.c_str(), "rb")) {
            fclose(f);
        } else {
            cuda_state = 0;
            return;
        }
        if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
            cuda_state = 1;
        } else {
            const char *e = dlerror();
            cuda_error = e ? e : "dlopen failed";
            cuda_state = -1;
        }
    });
    if (cuda_state == -1) set_error(cuda_error.c_str());
    return cuda_state;
}

bool ct_cuda_is_available(void) { CT_GUARD(false, return at::detail::getCUDAHooks().hasCUDA();) }
int ct_cuda_device_count(void) {
    CT_GUARD(0, return ct_cuda_is_available() ? static_cast<int>(at::detail::getCUDAHooks().deviceCount()) : 0;)
}

int ct_cuda_device_info(int dev, char *buf, int64_t cap, int64_t *memory) {
    using Init = int (*)(unsigned);
    using Get = int (*)(int *, int);
    using Name = int (*)(char *, int, int);
    using Mem = int (*)(size_t *, int);
    auto init = driver<Init>("cuInit");
    auto get = driver<Get>("cuDeviceGet");
    auto name = driver<Name>("cuDeviceGetName");
    auto mem = driver<Mem>("cuDeviceTotalMem_v2");
    int handle = 0;
    size_t bytes = 0;
    if (!init || !get || !name || !mem || init(0) != 0 || get(&handle, dev) != 0 ||
        name(buf, static_cast<int>(cap), handle) != 0 || mem(&bytes, handle) != 0) {
        set_error("CUDA driver (libcuda.so.1) unavailable or device not found");
        return -1;
    }
    *memory = static_cast<int64_t>(bytes);
    return 0;
}

int ct_cuda_memory_info(int dev, int64_t *free_bytes, int64_t *total_bytes) {
    using MemInfo = int (*)(size_t *, size_t *);
    auto info = driver<MemInfo>("cuMemGetInfo_v2");
    size_t f = 0, t = 0;
    if (!ct_cuda_is_available() || !info) {
        set_error("CUDA unavailable");
        return -1;
    }
    (void)dev;  // the driver reports on the context current on this thread: the job's device
    if (info(&f, &t) != 0) {
        set_error("cuMemGetInfo failed (no current CUDA context on this thread?)");
        return -1;
    }
    *free_bytes = static_cast<int64_t>(f);
    *total_bytes = static_cast<int64_t>(t);
    return 0;
}

int64_t ct_cudnn_version(void) {
    CT_GUARD(-1, {
        auto &hooks = at::detail::getCUDAHooks();
        return hooks.hasCUDA() && hooks.hasCuDNN() ? hooks.versionCuDNN() : 0;
    })
}

int ct_cuda_synchronize(void) {
    using Sync = int (*)();
    if (!ct_cuda_is_available()) return 0;
    static Sync sync = reinterpret_cast<Sync>(dlsym(RTLD_DEFAULT, "cudaDeviceSynchronize"));
    if (!sync) return 0;
    if (sync() != 0) {
        set_error("cudaDeviceSynchronize failed");
        return -1;
    }
    return 0;
}

const char *ct_torch_version(void) { return TORCH_VERSION; }
const char *ct_libtorch_path(void) {
    static std::string dir = dir_of_libtorch();
    return dir.c_str();
}
bool ct_cxx11_abi(void) { return _GLIBCXX_USE_CXX11_ABI != 0; }
const char *ct_cpu_capability(void) {
    static std::string cap = at::get_cpu_capability();
    return cap.c_str();
}
const char *ct_build_config(void) {
    static std::string config = at::show_config();
    return config.c_str();
}

// ---- random generator state (resumable training) ----

namespace {
at::Generator default_generator(int device) {
    if (device < 0) return at::detail::getDefaultCPUGenerator();
    return at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device)));
}
}  // namespace

int64_t ct_rng_get_state(int device, uint8_t *buf, int64_t cap) {
    CT_GUARD(-1, {
        auto gen = default_generator(device);
        at::Tensor state;
        {
            std::lock_guard<std::mutex> lock(gen.mutex());
            state = gen.get_state();
        }
        state = state.contiguous();
        int64_t n = state.numel();
        if (buf && cap >= n) std::memcpy(buf, state.data_ptr(), static_cast<size_t>(n));
        return n;
    })
}

int ct_rng_set_state(int device, const uint8_t *buf, int64_t n) {
    CT_STATUS({
        auto gen = default_generator(device);
        auto state = at::empty({n}, at::TensorOptions().dtype(at::kByte));
        if (n > 0) std::memcpy(state.data_ptr(), buf, static_cast<size_t>(n));
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(state);
    })
}
