// Optimizer kernels: fused AdamW, gradient-norm clipping, parameter EMA. All run without recording autograd.
#include <c10/core/GradMode.h>

#include <map>
#include <tuple>

#include "shim.h"

using namespace ctorch;

namespace {

// Indices of the tensors grouped by (device, dtype) in first-seen order, as torch.optim's
// _group_tensors_by_device_and_dtype: the fused and foreach kernels want one device and dtype per call.
std::vector<std::vector<int64_t>> group_by_device_and_dtype(ct_tensor *ts, int64_t n) {
    std::vector<std::vector<int64_t>> groups;
    std::map<std::tuple<int, int, int>, size_t> where;
    for (int64_t i = 0; i < n; i++) {
        const at::Tensor &t = T(ts[i]);
        auto key = std::make_tuple(static_cast<int>(t.device().type()), static_cast<int>(t.device().index()),
                                   static_cast<int>(t.scalar_type()));
        auto it = where.find(key);
        if (it == where.end()) {
            where.emplace(key, groups.size());
            groups.push_back({i});
        } else {
            groups[it->second].push_back(i);
        }
    }
    return groups;
}

std::vector<at::Tensor> pick(ct_tensor *ts, const std::vector<int64_t> &idx) {
    std::vector<at::Tensor> v;
    v.reserve(idx.size());
    for (int64_t i : idx) v.push_back(T(ts[i]));
    return v;
}

}  // namespace

// torch.optim.AdamW(fused=True).step(): per (device, dtype) group, steps += 1 (the kernel reads the step but does
// not increment it), then one _fused_adamw_ call.
int ct_fused_adamw_(ct_tensor *params, ct_tensor *grads, ct_tensor *exp_avgs, ct_tensor *exp_avg_sqs,
                    ct_tensor *steps, int64_t n, double lr, double beta1, double beta2, double weight_decay,
                    double eps) {
    CT_STATUS({
        c10::NoGradGuard no_grad;
        for (const auto &g : group_by_device_and_dtype(params, n)) {
            auto group_steps = pick(steps, g);
            at::_foreach_add_(group_steps, 1);
            at::_fused_adamw_(pick(params, g), pick(grads, g), pick(exp_avgs, g), pick(exp_avg_sqs, g), {},
                              group_steps, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                              /*maximize=*/false);
        }
    })
}

// torch.nn.utils.clip_grad_norm_: per-tensor norms, their norm, one clamped scale max_norm / (norm + 1e-6) for all.
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
        const at::Device first = grads[0].device();
        for (auto &norm : norms) norm = norm.to(first);
        at::Tensor total = at::linalg_vector_norm(at::stack(norms), norm_type);
        at::Tensor coef = at::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
        bool one_device = true;
        for (const auto &grad : grads) one_device = one_device && grad.device() == first;
        if (one_device) {
            at::_foreach_mul_(grads, coef);
        } else {
            for (auto &grad : grads) grad.mul_(coef.to(grad.device()));
        }
        *total_norm = total.item<double>();
    })
}

// DiT's update_ema: ema.mul_(decay).add_(param, alpha=1 - decay), as two foreach passes.
int ct_ema_update_(ct_tensor *ema, ct_tensor *params, int64_t n, double decay) {
    CT_STATUS({
        c10::NoGradGuard no_grad;
        auto e = list(ema, n), p = list(params, n);
        for (int64_t i = 0; i < n; i++)
            TORCH_CHECK(e[i].sizes() == p[i].sizes(), "EMA tensor ", i, " has shape ", e[i].sizes(),
                        " but the parameter has shape ", p[i].sizes());
        at::_foreach_mul_(e, decay);
        at::_foreach_add_(e, p, 1.0 - decay);
    })
}
