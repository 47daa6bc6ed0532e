"""Pieces shared by the PyTorch references of bench/run.sh (bench/block_stack.py, bench/expert_train.py): DiT's
`modulate`, its block, and the timing loop. The scripts import it as `bench_common`, which works because Python puts a
script's own folder (bench/) first on sys.path; the name keeps it apart from scripts/fixtures/common.py.
"""
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    """facebookresearch/DiT's DiTBlock, with fused attention (timm's Attention uses SDPA too). With `dit_names` the
    modulation is `nn.Sequential(nn.SiLU(), nn.Linear(...))`, so the state-dict names match DiT's
    (`adaLN_modulation.1.weight`); without, a plain `nn.Linear` after `F.silu` (`adaLN_modulation.weight`). Both
    draw the same initial weights in the same order and compute the same thing."""

    def __init__(self, hidden, heads, dit_names=False):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)
        linear = nn.Linear(hidden, 6 * hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), linear) if dit_names else linear
        self.dit_names = dit_names

    def forward(self, x, c):
        B, N, C = x.shape
        ada = self.adaLN_modulation(c if self.dit_names else F.silu(c))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = ada.chunk(6, dim=1)
        h = modulate(self.norm1(x), shift_msa, scale_msa)
        q, k, v = self.qkv(h).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        x = x + gate_msa.unsqueeze(1) * self.proj(a)
        h = modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + gate_mlp.unsqueeze(1) * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


def time_steps(step, dev, warmup, steps):
    """Runs `step()` warmup + steps times, synchronising CUDA around each; returns the seconds of the last `steps`
    runs and what the last run returned."""
    times = []
    for i in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, out
