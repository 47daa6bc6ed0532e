// Neural-network functions: linear, normalisation, convolution, attention, losses.
#include "shim.h"

using namespace ctorch;

ct_tensor ct_linear(ct_tensor x, ct_tensor w, ct_tensor b) { CT_TENSOR(at::linear(T(x), T(w), opt(b))) }
ct_tensor ct_layer_norm(ct_tensor x, const int64_t *s, int64_t n, ct_tensor w, ct_tensor b, double eps) {
    CT_TENSOR(at::layer_norm(T(x), dims(s, n), opt(w), opt(b), eps))
}
ct_tensor ct_group_norm(ct_tensor x, int64_t groups, ct_tensor w, ct_tensor b, double eps) {
    CT_TENSOR(at::group_norm(T(x), groups, opt(w), opt(b), eps))
}
ct_tensor ct_batch_norm(ct_tensor x, ct_tensor w, ct_tensor b, ct_tensor mean, ct_tensor var, bool training,
                        double momentum, double eps) {
    CT_TENSOR(at::batch_norm(T(x), opt(w), opt(b), opt(mean), opt(var), training, momentum, eps, true))
}
ct_tensor ct_conv2d(ct_tensor x, ct_tensor w, ct_tensor b, const int64_t *stride, const int64_t *padding,
                    const int64_t *dilation, int64_t groups) {
    CT_TENSOR(at::conv2d(T(x), T(w), opt(b), dims(stride, 2), dims(padding, 2), dims(dilation, 2), groups))
}
ct_tensor ct_softmax(ct_tensor x, int64_t d) { CT_TENSOR(at::softmax(T(x), d)) }
ct_tensor ct_log_softmax(ct_tensor x, int64_t d) { CT_TENSOR(at::log_softmax(T(x), d)) }

ct_tensor ct_interpolate(ct_tensor x, const int64_t *size, int mode, bool align_corners, bool antialias) {
    CT_GUARD(nullptr, {
        at::IntArrayRef s = dims(size, 2);
        // F.interpolate's own checks, which the aten kernels do not repeat.
        if (mode == 0 && align_corners)
            throw std::invalid_argument(
                "align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | "
                "trilinear");
        if (mode == 0 && antialias)
            throw std::invalid_argument(
                "Anti-alias option is restricted to bilinear and bicubic modes and requires a 4-D tensor as input");
        switch (mode) {
        case 0: return wrap(at::upsample_nearest2d(T(x), s));
        case 1:
            return wrap(antialias ? at::_upsample_bilinear2d_aa(T(x), s, align_corners)
                                  : at::upsample_bilinear2d(T(x), s, align_corners));
        case 2:
            return wrap(antialias ? at::_upsample_bicubic2d_aa(T(x), s, align_corners)
                                  : at::upsample_bicubic2d(T(x), s, align_corners));
        }
        throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
    })
}
ct_tensor ct_avg_pool2d(ct_tensor x, const int64_t *kernel, const int64_t *stride) {
    CT_TENSOR(at::avg_pool2d(T(x), dims(kernel, 2), dims(stride, 2)))
}
ct_tensor ct_adaptive_avg_pool2d(ct_tensor x, const int64_t *size) {
    CT_TENSOR(at::adaptive_avg_pool2d(T(x), dims(size, 2)))
}
ct_tensor ct_sdpa(ct_tensor q, ct_tensor k, ct_tensor v, ct_tensor mask, double dropout, bool causal, double scale) {
    CT_TENSOR(at::scaled_dot_product_attention(T(q), T(k), T(v), opt(mask), dropout, causal,
                                               scale > 0 ? c10::optional<double>(scale) : c10::nullopt))
}
ct_tensor ct_embedding(ct_tensor w, ct_tensor idx) { CT_TENSOR(at::embedding(T(w), T(idx))) }
ct_tensor ct_cross_entropy(ct_tensor logits, ct_tensor target, int reduction, double smoothing, int64_t ignore) {
    CT_TENSOR(at::cross_entropy_loss(T(logits), T(target), c10::nullopt, reduction, ignore, smoothing))
}
ct_tensor ct_mse_loss(ct_tensor a, ct_tensor b, int reduction) { CT_TENSOR(at::mse_loss(T(a), T(b), reduction)) }
ct_tensor ct_dropout(ct_tensor x, double p, bool train) { CT_TENSOR(at::dropout(T(x), p, train)) }
