// Optimizer kernels: fused AdamW, gradient-norm clipping, parameter EMA. All run without recording autograd.
#include <c10/core/GradMode.h>

#include "shim.h"

using namespace ctorch;

int ct_fused_adamw_(ct_tensor *params, ct_tensor *grads, ct_tensor *exp_avgs, ct_tensor *exp_avg_sqs,
                    ct_tensor *steps, int64_t n, double lr, double beta1, double beta2, double weight_decay,
                    double eps) {
    CT_STATUS({
        c10::NoGradGuard no_grad;
        at::_fused_adamw_(list(params, n), list(grads, n), list(exp_avgs, n), list(exp_avg_sqs, n), {},
                          list(steps, n), lr, beta1, beta2, weight_decay, eps, false, false);
    })
}

// torch.nn.utils.clip_grad_norm_ (foreach form): per-tensor norms, their norm, one scale for all.
int ct_clip_grad_norm_(ct_tensor *params, int64_t n, double max_norm, double norm_type, double *total_norm) {
    CT_STATUS({
        c10::NoGradGuard no_grad;
        std::vector<at::Tensor> grads;
        for (int64_t i = 0; i < n; i++)
            if (T(params[i]).grad().defined()) grads.push_back(T(params[i]).grad());
        if (grads.empty()) {
            *total_norm = 0;
            return 0;
        }
        auto norms = at::_foreach_norm(grads, norm_type);
        at::Tensor total = at::linalg_vector_norm(at::stack(norms), norm_type);
        at::Tensor coef = at::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
        at::_foreach_mul_(grads, coef);
        *total_norm = total.item<double>();
    })
}

int ct_ema_update_(ct_tensor *ema, ct_tensor *params, int64_t n, double decay) {
    CT_STATUS({
        c10::NoGradGuard no_grad;
        at::_foreach_lerp_(list(ema, n), list(params, n), 1.0 - decay);
    })
}
