// ctorch: a thin C ABI over libtorch. C++ inside, C outside; no C++ exception ever crosses it.
//
// Conventions (after tch-rs's torch-sys):
// - A tensor crosses as an opaque handle owned by the caller and released with ct_free.
// - A function that makes a tensor returns NULL on failure; one that returns int returns 0 on success and -1 on
//   failure. Either way ct_last_error() then holds libtorch's message (thread-local) until the next failure.
// - dtype is c10::ScalarType's number (0 u8, 1 i8, 2 i16, 3 i32, 4 i64, 5 f16, 6 f32, 7 f64, 11 bool, 15 bf16).
// - device is -1 for the CPU and n >= 0 for cuda:n.
// - An optional tensor is NULL; an empty dims list (n = 0) means "all dimensions" for reductions.
#ifndef CTORCH_H
#define CTORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_tensor_s *ct_tensor;
typedef struct ct_module_s *ct_module;

// ---- errors and lifetime (core.cpp) ----
const char *ct_last_error(void);
void ct_free(ct_tensor t);
ct_tensor ct_shallow_clone(ct_tensor t);

// ---- properties ----
int64_t ct_ndim(ct_tensor t);
void ct_shape(ct_tensor t, int64_t *out);
void ct_strides(ct_tensor t, int64_t *out);
int ct_dtype(ct_tensor t);
int ct_device(ct_tensor t);
int64_t ct_numel(ct_tensor t);
bool ct_is_contiguous(ct_tensor t);
/// Parses a device string with libtorch's parser ("cpu", "cuda", "cuda:1"); writes the device code (-1 cpu,
/// n cuda:n). 0 on success, -1 for a malformed string or a device type other than cpu and cuda.
int ct_parse_device(const char *s, int *out);
void *ct_data_ptr(ct_tensor t);

// ---- creation ----
ct_tensor ct_empty(const int64_t *shape, int64_t n, int dtype, int device);
ct_tensor ct_zeros(const int64_t *shape, int64_t n, int dtype, int device);
ct_tensor ct_ones(const int64_t *shape, int64_t n, int dtype, int device);
ct_tensor ct_full(const int64_t *shape, int64_t n, double value, int dtype, int device);
ct_tensor ct_arange(double start, double end, double step, int dtype, int device);
ct_tensor ct_linspace(double start, double end, int64_t steps, int dtype, int device);
ct_tensor ct_randn(const int64_t *shape, int64_t n, int dtype, int device);
/// Standard normal samples on the CPU from a generator of their own seeded with `seed` (the global one is untouched).
ct_tensor ct_randn_seeded(const int64_t *shape, int64_t n, int dtype, uint64_t seed);
ct_tensor ct_rand(const int64_t *shape, int64_t n, int dtype, int device);
ct_tensor ct_randint(int64_t low, int64_t high, const int64_t *shape, int64_t n, int dtype, int device);
ct_tensor ct_randperm(int64_t n, int device);
ct_tensor ct_multinomial(ct_tensor probs, int64_t samples, bool replacement);
/// Copies `data` (row-major, `dtype`) into a new CPU tensor.
ct_tensor ct_from_data(const void *data, const int64_t *shape, int64_t n, int dtype);
/// Wraps `data` without copying; `deleter(ctx)` runs when libtorch frees the storage.
ct_tensor ct_from_blob(void *data, const int64_t *shape, int64_t n, int dtype, void (*deleter)(void *), void *ctx);
/// Copies the tensor's elements (made contiguous, on the CPU) into `dst`, which holds `nbytes`.
int ct_copy_to_host(ct_tensor t, void *dst, size_t nbytes);
int ct_item_double(ct_tensor t, double *out);
int ct_item_int64(ct_tensor t, int64_t *out);

// ---- conversion and copies ----
ct_tensor ct_to(ct_tensor t, int device, int dtype, bool non_blocking);
ct_tensor ct_contiguous(ct_tensor t);
ct_tensor ct_clone(ct_tensor t);
ct_tensor ct_detach(ct_tensor t);
int ct_copy_(ct_tensor dst, ct_tensor src);
int ct_fill_(ct_tensor t, double value);
int ct_zero_(ct_tensor t);
int ct_uniform_(ct_tensor t, double low, double high);
int ct_normal_(ct_tensor t, double mean, double std);

// ---- random numbers, threads ----
void ct_manual_seed(uint64_t seed);
int ct_get_num_threads(void);
void ct_set_num_threads(int n);
/// Copies the default generator's state (device -1: the CPU's, n: cuda:n's) into `buf` when `cap` is large enough;
/// returns the state's size in bytes (call with cap 0 to ask), or -1 on failure.
int64_t ct_rng_get_state(int device, uint8_t *buf, int64_t cap);
/// Restores a state that ct_rng_get_state returned for the same device.
int ct_rng_set_state(int device, const uint8_t *buf, int64_t n);

// ---- autograd ----
bool ct_requires_grad(ct_tensor t);
int ct_set_requires_grad(ct_tensor t, bool on);
int ct_backward(ct_tensor t, ct_tensor grad_or_null, bool retain_graph);
/// The gradient, or NULL when none has been computed (ct_last_error is not set then).
ct_tensor ct_grad(ct_tensor t);
int ct_zero_grad(ct_tensor t);
bool ct_is_grad_enabled(void);
void ct_set_grad_enabled(bool on);
/// Replaces the data of a leaf tensor (new device or dtype) while keeping its identity, like `param.data = x`.
int ct_set_data(ct_tensor t, ct_tensor data);

// ---- autocast ----
bool ct_autocast_is_enabled(int device);
void ct_autocast_set_enabled(int device, bool on);
int ct_autocast_get_dtype(int device);
void ct_autocast_set_dtype(int device, int dtype);
void ct_autocast_clear_cache(void);

// ---- element-wise and reductions (ops.cpp) ----
typedef enum {
    CT_ADD, CT_SUB, CT_MUL, CT_DIV, CT_POW, CT_MAXIMUM, CT_MINIMUM, CT_REMAINDER, CT_FLOOR_DIVIDE,
    CT_EQ, CT_NE, CT_LT, CT_LE, CT_GT, CT_GE, CT_LOGICAL_AND, CT_LOGICAL_OR, CT_ATAN2,
} ct_binary_op;
typedef enum {
    CT_NEG, CT_ABS, CT_EXP, CT_LOG, CT_SQRT, CT_RSQRT, CT_SIN, CT_COS, CT_TANH, CT_SIGMOID, CT_RELU, CT_SILU,
    CT_GELU, CT_GELU_TANH, CT_SIGN, CT_FLOOR, CT_CEIL, CT_ROUND, CT_SQUARE, CT_RECIPROCAL, CT_LOGICAL_NOT,
    CT_ERF, CT_LOG1P, CT_EXPM1, CT_ISNAN, CT_ISFINITE,
} ct_unary_op;
typedef enum { CT_SUM, CT_MEAN, CT_AMAX, CT_AMIN, CT_PROD, CT_LOGSUMEXP, CT_ANY, CT_ALL } ct_reduce_op;

ct_tensor ct_binary(int op, ct_tensor a, ct_tensor b);
ct_tensor ct_binary_scalar(int op, ct_tensor a, double b);
ct_tensor ct_scalar_binary(int op, double a, ct_tensor b);
/// The same with an integer scalar, which keeps an integer tensor integer (as a Python int does).
ct_tensor ct_binary_scalar_int(int op, ct_tensor a, int64_t b);
ct_tensor ct_scalar_int_binary(int op, int64_t a, ct_tensor b);
int ct_binary_scalar_int_(int op, ct_tensor a, int64_t b);
int ct_binary_(int op, ct_tensor a, ct_tensor b);
int ct_binary_scalar_(int op, ct_tensor a, double b);
/// a += alpha * b, in place (add_ with alpha).
int ct_add_scaled_(ct_tensor a, ct_tensor b, double alpha);
ct_tensor ct_unary(int op, ct_tensor t);
int ct_unary_(int op, ct_tensor t);
ct_tensor ct_reduce(int op, ct_tensor t, const int64_t *dims, int64_t n, bool keepdim);
ct_tensor ct_var(ct_tensor t, const int64_t *dims, int64_t n, double correction, bool keepdim);
ct_tensor ct_norm(ct_tensor t, double p, const int64_t *dims, int64_t n, bool keepdim);
ct_tensor ct_argmax(ct_tensor t, int64_t dim, bool keepdim);
ct_tensor ct_argmin(ct_tensor t, int64_t dim, bool keepdim);
ct_tensor ct_cumsum(ct_tensor t, int64_t dim);
ct_tensor ct_clamp(ct_tensor t, double min, bool has_min, double max, bool has_max);
/// clamp with integer bounds: an integer tensor stays integer.
ct_tensor ct_clamp_int(ct_tensor t, int64_t min, bool has_min, int64_t max, bool has_max);
ct_tensor ct_where(ct_tensor cond, ct_tensor a, ct_tensor b);
ct_tensor ct_masked_fill(ct_tensor t, ct_tensor mask, double value);
ct_tensor ct_lerp(ct_tensor a, ct_tensor b, double weight);
ct_tensor ct_matmul(ct_tensor a, ct_tensor b);
int ct_topk(ct_tensor t, int64_t k, int64_t dim, bool largest, ct_tensor *values, ct_tensor *indices);
int ct_sort(ct_tensor t, int64_t dim, bool descending, ct_tensor *values, ct_tensor *indices);
/// Eigen-decomposition of symmetric (Hermitian) matrices [..., n, n]: eigenvalues ascending [..., n], eigenvectors
/// as columns [..., n, n] (torch.linalg.eigh, lower triangle).
int ct_linalg_eigh(ct_tensor t, ct_tensor *values, ct_tensor *vectors);
/// 1 true, 0 false, -1 error.
int ct_allclose(ct_tensor a, ct_tensor b, double rtol, double atol);
int ct_equal(ct_tensor a, ct_tensor b);

// ---- views and copies (shape.cpp) ----
ct_tensor ct_reshape(ct_tensor t, const int64_t *shape, int64_t n);
ct_tensor ct_view(ct_tensor t, const int64_t *shape, int64_t n);
ct_tensor ct_expand(ct_tensor t, const int64_t *shape, int64_t n);
ct_tensor ct_permute(ct_tensor t, const int64_t *dims, int64_t n);
ct_tensor ct_transpose(ct_tensor t, int64_t d0, int64_t d1);
ct_tensor ct_unsqueeze(ct_tensor t, int64_t dim);
ct_tensor ct_squeeze(ct_tensor t, int64_t dim);
ct_tensor ct_flatten(ct_tensor t, int64_t start, int64_t end);
ct_tensor ct_slice(ct_tensor t, int64_t dim, int64_t start, int64_t end, int64_t step);
ct_tensor ct_select(ct_tensor t, int64_t dim, int64_t index);
ct_tensor ct_index_select(ct_tensor t, int64_t dim, ct_tensor index);
ct_tensor ct_gather(ct_tensor t, int64_t dim, ct_tensor index);
ct_tensor ct_scatter(ct_tensor t, int64_t dim, ct_tensor index, ct_tensor src);
ct_tensor ct_index_bool(ct_tensor t, ct_tensor mask);
ct_tensor ct_repeat(ct_tensor t, const int64_t *repeats, int64_t n);
ct_tensor ct_flip(ct_tensor t, const int64_t *dims, int64_t n);
ct_tensor ct_roll(ct_tensor t, int64_t shift, int64_t dim);
ct_tensor ct_tril(ct_tensor t, int64_t diagonal);
ct_tensor ct_triu(ct_tensor t, int64_t diagonal);
ct_tensor ct_pad(ct_tensor t, const int64_t *pad, int64_t n, double value);
ct_tensor ct_one_hot(ct_tensor t, int64_t classes);
ct_tensor ct_cat(const ct_tensor *ts, int64_t n, int64_t dim);
ct_tensor ct_stack(const ct_tensor *ts, int64_t n, int64_t dim);
/// Splits into at most `chunks` parts (exactly `chunks` empty ones when the dimension is empty, as PyTorch);
/// returns how many (or -1) and sets `*out` to a malloc'd array of handles, which the caller frees with free().
int64_t ct_chunk(ct_tensor t, int64_t chunks, int64_t dim, ct_tensor **out);
/// Writes `n` handles into `out`, one per size.
int ct_split(ct_tensor t, const int64_t *sizes, int64_t n, int64_t dim, ct_tensor *out);

// ---- neural-network functions (nn.cpp) ----
ct_tensor ct_linear(ct_tensor x, ct_tensor w, ct_tensor b_or_null);
ct_tensor ct_layer_norm(ct_tensor x, const int64_t *shape, int64_t n, ct_tensor w, ct_tensor b, double eps);
ct_tensor ct_group_norm(ct_tensor x, int64_t groups, ct_tensor w, ct_tensor b, double eps);
ct_tensor ct_batch_norm(ct_tensor x, ct_tensor w, ct_tensor b, ct_tensor mean, ct_tensor var, bool training,
                        double momentum, double eps);
ct_tensor ct_conv2d(ct_tensor x, ct_tensor w, ct_tensor b, const int64_t *stride, const int64_t *padding,
                    const int64_t *dilation, int64_t groups);
ct_tensor ct_softmax(ct_tensor x, int64_t dim);
ct_tensor ct_log_softmax(ct_tensor x, int64_t dim);
/// mode: 0 nearest, 1 bilinear, 2 bicubic; size is [H, W].
ct_tensor ct_interpolate(ct_tensor x, const int64_t *size, int mode, bool align_corners, bool antialias);
ct_tensor ct_avg_pool2d(ct_tensor x, const int64_t *kernel, const int64_t *stride);
ct_tensor ct_adaptive_avg_pool2d(ct_tensor x, const int64_t *size);
/// scale <= 0 means 1/sqrt(head_dim).
ct_tensor ct_sdpa(ct_tensor q, ct_tensor k, ct_tensor v, ct_tensor mask_or_null, double dropout, bool causal,
                  double scale);
ct_tensor ct_embedding(ct_tensor weight, ct_tensor indices);
/// reduction: 0 none, 1 mean, 2 sum.
ct_tensor ct_cross_entropy(ct_tensor logits, ct_tensor target, int reduction, double label_smoothing,
                           int64_t ignore_index);
ct_tensor ct_mse_loss(ct_tensor a, ct_tensor b, int reduction);
ct_tensor ct_dropout(ct_tensor x, double p, bool train);

// ---- optimizers (optim.cpp) ----
/// One torch.optim.AdamW(fused=True) step over n parameters: per (device, dtype) group, adds 1 to the float32
/// scalar `steps`, then calls libtorch's _fused_adamw_ (decoupled weight decay, no amsgrad).
int ct_fused_adamw_(ct_tensor *params, ct_tensor *grads, ct_tensor *exp_avgs, ct_tensor *exp_avg_sqs,
                    ct_tensor *steps, int64_t n, double lr, double beta1, double beta2, double weight_decay,
                    double eps);
/// Scales the gradients of n parameters so their total p-norm is at most max_norm; writes the norm before
/// clipping to *total_norm.
int ct_clip_grad_norm_(ct_tensor *params, int64_t n, double max_norm, double norm_type, double *total_norm);
/// ema[i] = decay * ema[i] + (1 - decay) * params[i] for all i (DiT's update_ema: mul_ then add_ with alpha).
int ct_ema_update_(ct_tensor *ema, ct_tensor *params, int64_t n, double decay);

// ---- serialization (io.cpp) ----
/// Loads a torch.save file (the zip format of PyTorch >= 1.6) with libtorch's unpickler, which builds tensors and
/// containers only and never runs Python code; tensors land on the CPU. Nested dicts, lists and tuples are
/// flattened with dotted names ("model.blocks.0.attn.qkv.weight"). Objects of other classes (argparse.Namespace,
/// a whole nn.Module) are not rebuilt: the tensors of their pickled state are kept under the object's name.
/// Every non-tensor leaf is described in `skipped` ("args.lr: float 0.0001"). Legacy (pre-1.6) files and
/// TorchScript archives fail with a message that says so. Returns the tensor count (-1 on failure) and malloc'd
/// arrays: free names and tensors with ct_free_loaded (the tensor handles themselves go to the caller), skipped
/// with ct_free_strings. `unsafe` (free with ct_free_strings too) lists, sorted, every global the pickle names that
/// is not a known-safe torch/collections/numpy reconstructor (os.system, builtins.eval, a user's class...): none is
/// ever imported or called here, but Python's torch.load would, so the caller refuses or warns.
int64_t ct_load_pickle(const char *path, char ***names, ct_tensor **tensors, char ***skipped, int64_t *n_skipped,
                       char ***unsafe, int64_t *n_unsafe);
void ct_free_loaded(char **names, ct_tensor *tensors, int64_t n);
void ct_free_strings(char **strings, int64_t n);
/// Loads a TorchScript module (torch.jit.save) onto `device`, in eval mode.
ct_module ct_jit_load(const char *path, int device);
/// Runs forward on n tensor inputs; writes up to cap tensor outputs (tuples and lists are flattened); returns the
/// count. A non-tensor output is an error.
int64_t ct_jit_forward(ct_module m, const ct_tensor *inputs, int64_t n, ct_tensor *outputs, int64_t cap);
void ct_jit_free(ct_module m);

// ---- runtime and devices (runtime.cpp) ----
/// Loads libtorch_cuda.so beside libtorch_cpu.so when present. 1 loaded, 0 not present, -1 failed (see error).
int ct_cuda_load(void);
bool ct_cuda_is_available(void);
int ct_cuda_device_count(void);
/// Writes the device's name into buf; total memory in bytes into *memory. 0 on success.
int ct_cuda_device_info(int device, char *buf, int64_t cap, int64_t *memory);
/// Free and total memory of cuda:device in bytes (cuMemGetInfo, all processes). 0 on success.
int ct_cuda_memory_info(int device, int64_t *free_bytes, int64_t *total_bytes);
int64_t ct_cudnn_version(void);
int ct_cuda_synchronize(void);
const char *ct_torch_version(void);
const char *ct_libtorch_path(void);
bool ct_cxx11_abi(void);
const char *ct_cpu_capability(void);
const char *ct_build_config(void);

#ifdef __cplusplus
}
#endif
#endif
