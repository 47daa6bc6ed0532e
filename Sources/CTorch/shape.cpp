// Views, indexing, joining and splitting.
#include <cstdlib>

#include "shim.h"

using namespace ctorch;

ct_tensor ct_reshape(ct_tensor t, const int64_t *s, int64_t n) { CT_TENSOR(T(t).reshape(dims(s, n))) }
ct_tensor ct_view(ct_tensor t, const int64_t *s, int64_t n) { CT_TENSOR(T(t).view(dims(s, n))) }
ct_tensor ct_expand(ct_tensor t, const int64_t *s, int64_t n) { CT_TENSOR(T(t).expand(dims(s, n))) }
ct_tensor ct_permute(ct_tensor t, const int64_t *d, int64_t n) { CT_TENSOR(T(t).permute(dims(d, n))) }
ct_tensor ct_transpose(ct_tensor t, int64_t d0, int64_t d1) { CT_TENSOR(T(t).transpose(d0, d1)) }
ct_tensor ct_unsqueeze(ct_tensor t, int64_t d) { CT_TENSOR(T(t).unsqueeze(d)) }
ct_tensor ct_squeeze(ct_tensor t, int64_t d) { CT_TENSOR(T(t).squeeze(d)) }
ct_tensor ct_flatten(ct_tensor t, int64_t start, int64_t end) { CT_TENSOR(T(t).flatten(start, end)) }
ct_tensor ct_slice(ct_tensor t, int64_t d, int64_t start, int64_t end, int64_t step) {
    CT_TENSOR(T(t).slice(d, start, end, step))
}
ct_tensor ct_select(ct_tensor t, int64_t d, int64_t i) { CT_TENSOR(T(t).select(d, i)) }
ct_tensor ct_index_select(ct_tensor t, int64_t d, ct_tensor idx) { CT_TENSOR(at::index_select(T(t), d, T(idx))) }
ct_tensor ct_gather(ct_tensor t, int64_t d, ct_tensor idx) { CT_TENSOR(at::gather(T(t), d, T(idx))) }
ct_tensor ct_scatter(ct_tensor t, int64_t d, ct_tensor idx, ct_tensor src) {
    CT_TENSOR(at::scatter(T(t), d, T(idx), T(src)))
}
ct_tensor ct_index_bool(ct_tensor t, ct_tensor mask) { CT_TENSOR(T(t).index({T(mask)})) }
ct_tensor ct_repeat(ct_tensor t, const int64_t *r, int64_t n) { CT_TENSOR(T(t).repeat(dims(r, n))) }
ct_tensor ct_flip(ct_tensor t, const int64_t *d, int64_t n) { CT_TENSOR(at::flip(T(t), dims(d, n))) }
ct_tensor ct_roll(ct_tensor t, int64_t shift, int64_t d) { CT_TENSOR(at::roll(T(t), shift, d)) }
ct_tensor ct_tril(ct_tensor t, int64_t k) { CT_TENSOR(at::tril(T(t), k)) }
ct_tensor ct_triu(ct_tensor t, int64_t k) { CT_TENSOR(at::triu(T(t), k)) }
ct_tensor ct_pad(ct_tensor t, const int64_t *p, int64_t n, double v) { CT_TENSOR(at::constant_pad_nd(T(t), dims(p, n), v)) }
ct_tensor ct_one_hot(ct_tensor t, int64_t classes) { CT_TENSOR(at::one_hot(T(t), classes)) }
ct_tensor ct_cat(const ct_tensor *ts, int64_t n, int64_t d) { CT_TENSOR(at::cat(list(ts, n), d)) }
ct_tensor ct_stack(const ct_tensor *ts, int64_t n, int64_t d) { CT_TENSOR(at::stack(list(ts, n), d)) }

int64_t ct_chunk(ct_tensor t, int64_t chunks, int64_t d, ct_tensor **out) {
    CT_GUARD(-1, {
        auto parts = T(t).chunk(chunks, d);
        auto *handles = static_cast<ct_tensor *>(std::malloc(std::max<size_t>(parts.size(), 1) * sizeof(ct_tensor)));
        if (!handles) throw std::bad_alloc();
        for (size_t i = 0; i < parts.size(); i++) handles[i] = wrap(std::move(parts[i]));
        *out = handles;
        return static_cast<int64_t>(parts.size());
    })
}
int ct_split(ct_tensor t, const int64_t *sizes, int64_t n, int64_t d, ct_tensor *out) {
    CT_GUARD(-1, {
        auto parts = T(t).split_with_sizes(dims(sizes, n), d);
        for (size_t i = 0; i < parts.size(); i++) out[i] = wrap(parts[i]);
        return 0;
    })
}
