"""PyTorch reference for bench/run.sh expert: one flow-matching training step of a diffusion model, as the
expert trainer (Sources/ParisTraining/Expert) does it: t ~ U[0, 1), x_t = (1 - t) x0 + t eps, v = eps - x0, MSE,
backward, gradient clipping at 1, fused AdamW, EMA update. Prints one JSON line like the Swift side
(bench/swift/ExpertTrain.swift).

Models:
  paris-T/4, paris-S/2   the Paris expert (adaLN-Single + cross-attention on caption tokens), from the reference
                         in scripts/fixtures/paris.py; 32x32x3 pixels, 32 caption tokens of width 384
  DiT-B/2, DiT-XL/2      facebookresearch/DiT (adaLN-Zero, class labels, learn_sigma off), 32x32x4 latents; the
                         model FLOPs utilisation is printed on CUDA (design.md, "Performance")

Usage: python bench/expert_train.py --model paris-T/4 --batch 32 --steps 10 [--device cuda --bf16]
"""
import argparse
import json
import os
import statistics
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts", "fixtures"))
from paris import Expert, TimestepEmbedder  # noqa: E402  (the reference of the Paris expert)
from bench_common import DiTBlock, modulate, time_steps  # noqa: E402

PARIS = {  # name: (input_size, in_channels, patch, hidden, depth, heads, text_dim, text_len)
    "paris-T/4": (32, 3, 4, 64, 2, 4, 384, 32),
    "paris-S/2": (32, 3, 2, 128, 4, 4, 384, 32),
}
DIT = {  # name: (depth, hidden, heads, patch, multiply-adds per image in G, as DiT's paper counts them)
    "DiT-B/2": (12, 768, 12, 2, 23.0),
    "DiT-XL/2": (28, 1152, 16, 2, 118.6),
}
H100_BF16_FLOPS = 989e12


class DiT(nn.Module):
    """facebookresearch/DiT's DiT (class-conditional, label dropout 0.1), learn_sigma off."""

    def __init__(self, depth, hidden, heads, patch, input_size=32, channels=4, classes=1000):
        super().__init__()
        self.patch, self.channels, self.grid = patch, channels, input_size // patch
        self.x_embedder = nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)
        # A frozen parameter, as in the reference (so it counts among the parameters, like the Swift DiT's).
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid**2, hidden), requires_grad=False)
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = nn.Embedding(classes + 1, hidden)
        self.blocks = nn.ModuleList([DiTBlock(hidden, heads, dit_names=True) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.final_linear = nn.Linear(hidden, patch * patch * channels)
        self.classes = classes

    def forward(self, x, t, y):
        b = x.shape[0]
        y = torch.where(torch.rand(b, device=y.device) < 0.1, torch.full_like(y, self.classes), y)
        c = self.t_embedder(t) + self.y_embedder(y)
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=1)
        h = self.final_linear(modulate(self.final_norm(h), shift, scale))
        p, ch, g = self.patch, self.channels, self.grid
        h = h.reshape(b, g, g, p, p, ch)
        return torch.einsum("nhwpqc->nchpwq", h).reshape(b, ch, g * p, g * p)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="paris-T/4", choices=list(PARIS) + list(DIT))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.model in PARIS:
        size, ch, patch, hidden, depth, heads, text_dim, text_len = PARIS[a.model]
        model = Expert(size, ch, patch, hidden, depth, heads, text_dim).to(dev)
        text = torch.randn(a.batch, text_len, text_dim, device=dev)
        mask = torch.arange(text_len, device=dev)[None].expand(a.batch, -1) < 8  # 8 real tokens, the rest padding
        cond = lambda x, t: model(x, t, text, mask)  # noqa: E731
        macs = None
    else:
        depth, hidden, heads, patch, gmacs = DIT[a.model]
        size, ch = 32, 4
        model = DiT(depth, hidden, heads, patch).to(dev)
        labels = torch.randint(0, 1000, (a.batch,), device=dev)
        cond = lambda x, t: model(x, t, labels)  # noqa: E731
        macs = gmacs * 1e9
    model.train()
    params = list(model.parameters())
    trainable = [q for q in params if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0, fused=True)
    ema = [q.detach().clone() for q in params]
    x0 = torch.rand(a.batch, ch, size, size, device=dev) * 2 - 1

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            t = torch.rand(a.batch, device=dev)
            noise = torch.randn_like(x0)
            tt = t.view(-1, 1, 1, 1)
            xt = (1 - tt) * x0 + tt * noise
            loss = F.mse_loss(cond(xt, t * 1000).float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [q.detach() for q in params], 1 - 0.999)
        return float(loss.detach())  # the trainer reads the loss every step

    times, _ = time_steps(step, dev, a.warmup, a.steps)
    median = statistics.median(times)
    rate = a.batch / median
    out = {
        "impl": "pytorch", "torch": torch.__version__, "model": a.model, "device": a.device, "bf16": a.bf16,
        "threads": torch.get_num_threads(), "params": sum(q.numel() for q in params), "batch": a.batch,
        "median_ms": 1000 * median, "min_ms": 1000 * min(times), "images_per_s": rate,
    }
    if macs is not None and dev.type == "cuda":
        out["mfu"] = 2 * 3 * macs * rate / H100_BF16_FLOPS
    if dev.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(out))


if __name__ == "__main__":
    main()
