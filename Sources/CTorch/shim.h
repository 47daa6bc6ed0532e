// Internal helpers shared by the shim's translation units: handle casts and the exception guard.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/version.h>
#include <string>
#include <vector>

#include "ctorch.h"

#if !(TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 11)
#error "Paris needs libtorch 2.11.x: run scripts/setup.sh, or point LIBTORCH at a libtorch 2.11 folder"
#endif

namespace ctorch {

void set_error(const char *message);

inline at::Tensor &T(ct_tensor t) { return *reinterpret_cast<at::Tensor *>(t); }
inline ct_tensor wrap(at::Tensor t) { return reinterpret_cast<ct_tensor>(new at::Tensor(std::move(t))); }
inline at::IntArrayRef dims(const int64_t *p, int64_t n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }
inline c10::optional<at::Tensor> opt(ct_tensor t) {
    return t ? c10::optional<at::Tensor>(T(t)) : c10::nullopt;
}
inline at::Device device(int d) { return d < 0 ? at::Device(at::kCPU) : at::Device(at::kCUDA, d); }
inline at::ScalarType dtype(int d) { return static_cast<at::ScalarType>(d); }
inline at::TensorOptions options(int dt, int dev) { return at::TensorOptions().dtype(dtype(dt)).device(device(dev)); }
inline std::vector<at::Tensor> list(const ct_tensor *ts, int64_t n) {
    std::vector<at::Tensor> v;
    v.reserve(n);
    for (int64_t i = 0; i < n; i++) v.push_back(T(ts[i]));
    return v;
}

}  // namespace ctorch

// Runs `body`; on a C++ exception, stores its message and returns `fail`. Use in every exported function.
#define CT_GUARD(fail, ...)                                    \
    try {                                                      \
        __VA_ARGS__                                            \
    } catch (const c10::Error &e) {                            \
        ctorch::set_error(e.what_without_backtrace());         \
        return fail;                                           \
    } catch (const std::exception &e) {                        \
        ctorch::set_error(e.what());                           \
        return fail;                                           \
    } catch (...) {                                            \
        ctorch::set_error("unknown C++ exception in libtorch"); \
        return fail;                                           \
    }

// A function returning a new tensor from an expression.
#define CT_TENSOR(...) CT_GUARD(nullptr, return ctorch::wrap(__VA_ARGS__);)
// A function returning 0 after a statement, -1 on failure.
#define CT_STATUS(...) CT_GUARD(-1, __VA_ARGS__; return 0;)
