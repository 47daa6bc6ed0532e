// Errors, lifetime, properties, creation, copies, random numbers, autograd and autocast.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
#include <torch/csrc/autograd/utils/error_messages.h>
#include <torch/utils.h>

#include <cstring>

#include "shim.h"

using namespace ctorch;

namespace {
thread_local std::string last_error;

// Without libtorch_cuda (or without a driver or GPU) the dispatcher's own error for a CUDA tensor is a 60-line
// table of backends; this says what is wrong instead.
void require_device(int dev) {
    if (dev >= 0 && !at::globalContext().hasCUDA())
        throw std::runtime_error("cuda:" + std::to_string(dev) +
                                 " was requested, but CUDA is not available here (libtorch_cuda.so not loaded, or "
                                 "no NVIDIA driver or GPU): see `paris doctor`");
}

at::TensorOptions checked_options(int dt, int dev) {
    require_device(dev);
    return options(dt, dev);
}
}  // namespace

void ctorch::set_error(const char *message) { last_error = message ? message : "unknown error"; }

const char *ct_last_error(void) { return last_error.empty() ? nullptr : last_error.c_str(); }
void ct_free(ct_tensor t) { delete reinterpret_cast<at::Tensor *>(t); }
ct_tensor ct_shallow_clone(ct_tensor t) { return wrap(T(t)); }

// ---- properties ----
int64_t ct_ndim(ct_tensor t) { return T(t).dim(); }
void ct_shape(ct_tensor t, int64_t *out) {
    auto s = T(t).sizes();
    std::copy(s.begin(), s.end(), out);
}
void ct_strides(ct_tensor t, int64_t *out) {
    auto s = T(t).strides();
    std::copy(s.begin(), s.end(), out);
}
int ct_dtype(ct_tensor t) { return static_cast<int>(T(t).scalar_type()); }
int ct_device(ct_tensor t) { return T(t).is_cuda() ? T(t).get_device() : -1; }
int64_t ct_numel(ct_tensor t) { return T(t).numel(); }
bool ct_is_contiguous(ct_tensor t) { return T(t).is_contiguous(); }
int ct_parse_device(const char *s, int *out) {
    CT_GUARD(-1, {
        c10::Device d{std::string(s ? s : "")};
        if (d.is_cpu()) {
            *out = -1;
        } else if (d.is_cuda()) {
            *out = d.has_index() ? d.index() : 0;
        } else {
            throw std::invalid_argument("device type '" + c10::DeviceTypeName(d.type(), true) +
                                        "' is not supported: use cpu, cuda or cuda:N");
        }
        return 0;
    })
}
void *ct_data_ptr(ct_tensor t) { return T(t).data_ptr(); }

// ---- creation (through torch:: factories so requires_grad works on the results) ----
ct_tensor ct_empty(const int64_t *s, int64_t n, int dt, int dev) { CT_TENSOR(torch::empty(dims(s, n), checked_options(dt, dev))) }
ct_tensor ct_zeros(const int64_t *s, int64_t n, int dt, int dev) { CT_TENSOR(torch::zeros(dims(s, n), checked_options(dt, dev))) }
ct_tensor ct_ones(const int64_t *s, int64_t n, int dt, int dev) { CT_TENSOR(torch::ones(dims(s, n), checked_options(dt, dev))) }
ct_tensor ct_full(const int64_t *s, int64_t n, double v, int dt, int dev) {
    CT_TENSOR(torch::full(dims(s, n), v, checked_options(dt, dev)))
}
ct_tensor ct_arange(double start, double end, double step, int dt, int dev) {
    CT_TENSOR(torch::arange(start, end, step, checked_options(dt, dev)))
}
ct_tensor ct_linspace(double start, double end, int64_t steps, int dt, int dev) {
    CT_TENSOR(torch::linspace(start, end, steps, checked_options(dt, dev)))
}
ct_tensor ct_randn(const int64_t *s, int64_t n, int dt, int dev) { CT_TENSOR(torch::randn(dims(s, n), checked_options(dt, dev))) }
ct_tensor ct_randn_seeded(const int64_t *s, int64_t n, int dt, uint64_t seed) {
    CT_TENSOR(torch::randn(dims(s, n), at::detail::createCPUGenerator(seed), checked_options(dt, -1)))
}
ct_tensor ct_rand(const int64_t *s, int64_t n, int dt, int dev) { CT_TENSOR(torch::rand(dims(s, n), checked_options(dt, dev))) }
ct_tensor ct_randint(int64_t low, int64_t high, const int64_t *s, int64_t n, int dt, int dev) {
    CT_TENSOR(torch::randint(low, high, dims(s, n), checked_options(dt, dev)))
}
ct_tensor ct_randperm(int64_t n, int dev) { CT_TENSOR(torch::randperm(n, checked_options(4, dev))) }
ct_tensor ct_multinomial(ct_tensor probs, int64_t samples, bool replacement) {
    CT_TENSOR(at::multinomial(T(probs), samples, replacement))
}
ct_tensor ct_from_data(const void *data, const int64_t *s, int64_t n, int dt) {
    CT_TENSOR(torch::from_blob(const_cast<void *>(data), dims(s, n), options(dt, -1)).clone())
}
ct_tensor ct_from_blob(void *data, const int64_t *s, int64_t n, int dt, void (*deleter)(void *), void *ctx) {
    CT_TENSOR(torch::from_blob(data, dims(s, n), [deleter, ctx](void *) { deleter(ctx); }, options(dt, -1)))
}
int ct_copy_to_host(ct_tensor t, void *dst, size_t nbytes) {
    CT_GUARD(-1, {
        at::Tensor c = T(t).detach().to(at::kCPU).contiguous();
        size_t have = c.numel() * c.element_size();
        if (have != nbytes)
            throw std::runtime_error("copy to host: tensor holds " + std::to_string(have) + " bytes, buffer " +
                                     std::to_string(nbytes));
        if (have) std::memcpy(dst, c.data_ptr(), have);
        return 0;
    })
}
int ct_item_double(ct_tensor t, double *out) { CT_STATUS(*out = T(t).item<double>()) }
int ct_item_int64(ct_tensor t, int64_t *out) { CT_STATUS(*out = T(t).item<int64_t>()) }

// ---- conversion and copies ----
ct_tensor ct_to(ct_tensor t, int dev, int dt, bool non_blocking) {
    CT_GUARD(nullptr, {
        require_device(dev);
        return wrap(T(t).to(device(dev), dtype(dt), non_blocking));
    })
}
ct_tensor ct_contiguous(ct_tensor t) { CT_TENSOR(T(t).contiguous()) }
ct_tensor ct_clone(ct_tensor t) { CT_TENSOR(T(t).clone()) }
ct_tensor ct_detach(ct_tensor t) { CT_TENSOR(T(t).detach()) }
int ct_copy_(ct_tensor dst, ct_tensor src) { CT_STATUS(T(dst).copy_(T(src))) }
int ct_fill_(ct_tensor t, double v) { CT_STATUS(T(t).fill_(v)) }
int ct_zero_(ct_tensor t) { CT_STATUS(T(t).zero_()) }
int ct_uniform_(ct_tensor t, double lo, double hi) { CT_STATUS(T(t).uniform_(lo, hi)) }
int ct_normal_(ct_tensor t, double mean, double std) { CT_STATUS(T(t).normal_(mean, std)) }

// ---- random numbers, threads ----
void ct_manual_seed(uint64_t seed) { at::manual_seed(seed); }
int ct_get_num_threads(void) { return at::get_num_threads(); }
void ct_set_num_threads(int n) { at::set_num_threads(n); }

// ---- autograd ----
bool ct_requires_grad(ct_tensor t) { return T(t).requires_grad(); }
// As Python's requires_grad_(): turning it off on a non-leaf is an error (C++ would silently keep it on).
int ct_set_requires_grad(ct_tensor t, bool on) {
    CT_STATUS({
        if (!on && !T(t).is_leaf()) throw std::runtime_error(torch::autograd::utils::requires_grad_leaf_error(on));
        T(t).set_requires_grad(on);
    })
}
int ct_backward(ct_tensor t, ct_tensor grad, bool retain_graph) {
    CT_STATUS(T(t).backward(grad ? T(grad) : at::Tensor(), retain_graph))
}
ct_tensor ct_grad(ct_tensor t) {
    const at::Tensor &g = T(t).grad();
    return g.defined() ? wrap(g) : nullptr;
}
int ct_zero_grad(ct_tensor t) { CT_STATUS(T(t).mutable_grad().reset()) }
bool ct_is_grad_enabled(void) { return at::GradMode::is_enabled(); }
void ct_set_grad_enabled(bool on) { at::GradMode::set_enabled(on); }
int ct_set_data(ct_tensor t, ct_tensor data) { CT_STATUS(T(t).set_data(T(data))) }

// ---- autocast ----
static at::DeviceType device_type(int d) { return d < 0 ? at::kCPU : at::kCUDA; }
bool ct_autocast_is_enabled(int d) { return at::autocast::is_autocast_enabled(device_type(d)); }
void ct_autocast_set_enabled(int d, bool on) { at::autocast::set_autocast_enabled(device_type(d), on); }
int ct_autocast_get_dtype(int d) { return static_cast<int>(at::autocast::get_autocast_dtype(device_type(d))); }
void ct_autocast_set_dtype(int d, int dt) { at::autocast::set_autocast_dtype(device_type(d), dtype(dt)); }
void ct_autocast_clear_cache(void) { at::autocast::clear_cache(); }
