// Element-wise arithmetic, comparisons, reductions and matrix products.
#include "shim.h"

using namespace ctorch;

namespace {

at::Tensor binary(int op, const at::Tensor &a, const at::Tensor &b) {
    switch (op) {
    case CT_ADD: return at::add(a, b);
    case CT_SUB: return at::sub(a, b);
    case CT_MUL: return at::mul(a, b);
    case CT_DIV: return at::div(a, b);
    case CT_POW: return at::pow(a, b);
    case CT_MAXIMUM: return at::maximum(a, b);
    case CT_MINIMUM: return at::minimum(a, b);
    case CT_REMAINDER: return at::remainder(a, b);
    case CT_FLOOR_DIVIDE: return at::floor_divide(a, b);
    case CT_EQ: return at::eq(a, b);
    case CT_NE: return at::ne(a, b);
    case CT_LT: return at::lt(a, b);
    case CT_LE: return at::le(a, b);
    case CT_GT: return at::gt(a, b);
    case CT_GE: return at::ge(a, b);
    case CT_LOGICAL_AND: return at::logical_and(a, b);
    case CT_LOGICAL_OR: return at::logical_or(a, b);
    case CT_ATAN2: return at::atan2(a, b);
    }
    throw std::invalid_argument("unknown binary op " + std::to_string(op));
}

// Scalars stay "wrapped numbers", so they never promote the tensor's dtype (as in PyTorch: bf16 * 2.0 is bf16).
at::Tensor wrapped(const at::Scalar &v) {
    at::Tensor t = at::scalar_to_tensor(v);
    t.unsafeGetTensorImpl()->set_wrapped_number(true);
    return t;
}

at::Tensor unary(int op, const at::Tensor &t) {
    switch (op) {
    case CT_NEG: return at::neg(t);
    case CT_ABS: return at::abs(t);
    case CT_EXP: return at::exp(t);
    case CT_LOG: return at::log(t);
    case CT_SQRT: return at::sqrt(t);
    case CT_RSQRT: return at::rsqrt(t);
    case CT_SIN: return at::sin(t);
    case CT_COS: return at::cos(t);
    case CT_TANH: return at::tanh(t);
    case CT_SIGMOID: return at::sigmoid(t);
    case CT_RELU: return at::relu(t);
    case CT_SILU: return at::silu(t);
    case CT_GELU: return at::gelu(t, "none");
    case CT_GELU_TANH: return at::gelu(t, "tanh");
    case CT_SIGN: return at::sign(t);
    case CT_FLOOR: return at::floor(t);
    case CT_CEIL: return at::ceil(t);
    case CT_ROUND: return at::round(t);
    case CT_SQUARE: return at::square(t);
    case CT_RECIPROCAL: return at::reciprocal(t);
    case CT_LOGICAL_NOT: return at::logical_not(t);
    case CT_ERF: return at::erf(t);
    case CT_LOG1P: return at::log1p(t);
    case CT_EXPM1: return at::expm1(t);
    case CT_ISNAN: return at::isnan(t);
    case CT_ISFINITE: return at::isfinite(t);
    }
    throw std::invalid_argument("unknown unary op " + std::to_string(op));
}

void binary_inplace(int op, at::Tensor &a, const at::Tensor &b) {
    switch (op) {
    case CT_ADD: a.add_(b); return;
    case CT_SUB: a.sub_(b); return;
    case CT_MUL: a.mul_(b); return;
    case CT_DIV: a.div_(b); return;
    case CT_POW: a.pow_(b); return;
    case CT_MAXIMUM: a.copy_(at::maximum(a, b)); return;
    case CT_MINIMUM: a.copy_(at::minimum(a, b)); return;
    }
    throw std::invalid_argument("binary op " + std::to_string(op) + " has no in-place form");
}

}  // namespace

ct_tensor ct_binary(int op, ct_tensor a, ct_tensor b) { CT_TENSOR(binary(op, T(a), T(b))) }
ct_tensor ct_binary_scalar(int op, ct_tensor a, double b) { CT_TENSOR(binary(op, T(a), wrapped(b))) }
ct_tensor ct_scalar_binary(int op, double a, ct_tensor b) { CT_TENSOR(binary(op, wrapped(a), T(b))) }
ct_tensor ct_binary_scalar_int(int op, ct_tensor a, int64_t b) { CT_TENSOR(binary(op, T(a), wrapped(b))) }
ct_tensor ct_scalar_int_binary(int op, int64_t a, ct_tensor b) { CT_TENSOR(binary(op, wrapped(a), T(b))) }
int ct_binary_scalar_int_(int op, ct_tensor a, int64_t b) { CT_STATUS(binary_inplace(op, T(a), wrapped(b))) }
int ct_binary_(int op, ct_tensor a, ct_tensor b) { CT_STATUS(binary_inplace(op, T(a), T(b))) }
int ct_binary_scalar_(int op, ct_tensor a, double b) { CT_STATUS(binary_inplace(op, T(a), wrapped(b))) }
int ct_add_scaled_(ct_tensor a, ct_tensor b, double alpha) { CT_STATUS(T(a).add_(T(b), alpha)) }
ct_tensor ct_unary(int op, ct_tensor t) { CT_TENSOR(unary(op, T(t))) }
int ct_unary_(int op, ct_tensor t) {
    CT_STATUS({
        at::Tensor r = unary(op, T(t));
        T(t).copy_(r);
    })
}

ct_tensor ct_reduce(int op, ct_tensor t, const int64_t *d, int64_t n, bool keepdim) {
    CT_GUARD(nullptr, {
        const at::Tensor &x = T(t);
        at::OptionalIntArrayRef ds = n ? at::OptionalIntArrayRef(dims(d, n)) : c10::nullopt;
        std::vector<int64_t> all(x.dim());
        for (int64_t i = 0; i < x.dim(); i++) all[i] = i;
        at::IntArrayRef dl = n ? dims(d, n) : at::IntArrayRef(all);
        switch (op) {
        case CT_SUM: return wrap(at::sum(x, ds, keepdim));
        case CT_MEAN: return wrap(at::mean(x, ds, keepdim));
        case CT_AMAX: return wrap(at::amax(x, dl, keepdim));
        case CT_AMIN: return wrap(at::amin(x, dl, keepdim));
        case CT_LOGSUMEXP: return wrap(at::logsumexp(x, dl, keepdim));
        case CT_PROD: {
            at::Tensor r = x;
            if (!n) return wrap(keepdim ? at::prod(x).reshape(std::vector<int64_t>(x.dim(), 1)) : at::prod(x));
            std::vector<int64_t> sorted(dl.begin(), dl.end());
            for (auto &v : sorted) v = v < 0 ? v + x.dim() : v;
            std::sort(sorted.rbegin(), sorted.rend());
            for (int64_t dim : sorted) r = at::prod(r, dim, keepdim);
            return wrap(r);
        }
        case CT_ANY: return wrap(at::any(x, ds, keepdim));
        case CT_ALL: return wrap(at::all(x, ds, keepdim));
        }
        throw std::invalid_argument("unknown reduction " + std::to_string(op));
    })
}
ct_tensor ct_var(ct_tensor t, const int64_t *d, int64_t n, double correction, bool keepdim) {
    CT_TENSOR(at::var(T(t), n ? at::OptionalIntArrayRef(dims(d, n)) : c10::nullopt, at::Scalar(correction), keepdim))
}
ct_tensor ct_norm(ct_tensor t, double p, const int64_t *d, int64_t n, bool keepdim) {
    CT_TENSOR(at::linalg_vector_norm(T(t), p, n ? at::OptionalIntArrayRef(dims(d, n)) : c10::nullopt, keepdim))
}
ct_tensor ct_argmax(ct_tensor t, int64_t dim, bool keepdim) { CT_TENSOR(at::argmax(T(t), dim, keepdim)) }
ct_tensor ct_argmin(ct_tensor t, int64_t dim, bool keepdim) { CT_TENSOR(at::argmin(T(t), dim, keepdim)) }
ct_tensor ct_cumsum(ct_tensor t, int64_t dim) { CT_TENSOR(at::cumsum(T(t), dim)) }
ct_tensor ct_clamp(ct_tensor t, double lo, bool has_lo, double hi, bool has_hi) {
    CT_TENSOR(at::clamp(T(t), has_lo ? c10::optional<at::Scalar>(lo) : c10::nullopt,
                        has_hi ? c10::optional<at::Scalar>(hi) : c10::nullopt))
}
ct_tensor ct_clamp_int(ct_tensor t, int64_t lo, bool has_lo, int64_t hi, bool has_hi) {
    CT_TENSOR(at::clamp(T(t), has_lo ? c10::optional<at::Scalar>(lo) : c10::nullopt,
                        has_hi ? c10::optional<at::Scalar>(hi) : c10::nullopt))
}
ct_tensor ct_where(ct_tensor c, ct_tensor a, ct_tensor b) { CT_TENSOR(at::where(T(c), T(a), T(b))) }
ct_tensor ct_masked_fill(ct_tensor t, ct_tensor mask, double v) { CT_TENSOR(at::masked_fill(T(t), T(mask), v)) }
ct_tensor ct_lerp(ct_tensor a, ct_tensor b, double w) { CT_TENSOR(at::lerp(T(a), T(b), w)) }
ct_tensor ct_matmul(ct_tensor a, ct_tensor b) { CT_TENSOR(at::matmul(T(a), T(b))) }
int ct_topk(ct_tensor t, int64_t k, int64_t dim, bool largest, ct_tensor *values, ct_tensor *indices) {
    CT_GUARD(-1, {
        auto r = at::topk(T(t), k, dim, largest, true);
        *values = wrap(std::get<0>(r));
        *indices = wrap(std::get<1>(r));
        return 0;
    })
}
int ct_sort(ct_tensor t, int64_t dim, bool descending, ct_tensor *values, ct_tensor *indices) {
    CT_GUARD(-1, {
        auto r = at::sort(T(t), dim, descending);
        *values = wrap(std::get<0>(r));
        *indices = wrap(std::get<1>(r));
        return 0;
    })
}
int ct_linalg_eigh(ct_tensor t, ct_tensor *values, ct_tensor *vectors) {
    CT_GUARD(-1, {
        auto r = at::linalg_eigh(T(t), "L");
        *values = wrap(std::get<0>(r));
        *vectors = wrap(std::get<1>(r));
        return 0;
    })
}
int ct_allclose(ct_tensor a, ct_tensor b, double rtol, double atol) {
    CT_GUARD(-1, return at::allclose(T(a), T(b), rtol, atol) ? 1 : 0;)
}
int ct_equal(ct_tensor a, ct_tensor b) { CT_GUARD(-1, return at::equal(T(a), T(b)) ? 1 : 0;) }
