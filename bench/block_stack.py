"""PyTorch reference for bench/run.sh: one training step (forward, backward, AdamW) of a stack of DiT blocks
(adaLN-Zero modulation, fused attention, tanh-GELU MLP), the same model and work as the Swift side
(Sources/ParisBench). Prints one JSON line with the median step time.

Usage: python bench/block_stack.py --hidden 256 --heads 4 --depth 4 --tokens 64 --batch 16 --steps 20 [--device cuda --bf16]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Block(nn.Module):
    """A DiT block (facebookresearch/DiT's DiTBlock) with fused attention."""

    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)
        self.adaLN_modulation = nn.Linear(hidden, 6 * hidden)

    def forward(self, x, c):
        B, N, C = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(F.silu(c)).chunk(6, dim=1)
        h = modulate(self.norm1(x), shift_msa, scale_msa)
        q, k, v = self.qkv(h).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        x = x + gate_msa.unsqueeze(1) * self.proj(a)
        h = modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + gate_mlp.unsqueeze(1) * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    torch.manual_seed(0)
    dev = torch.device(a.device)
    blocks = nn.ModuleList([Block(a.hidden, a.heads) for _ in range(a.depth)]).to(dev)
    params = list(blocks.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=True)
    x = torch.randn(a.batch, a.tokens, a.hidden, device=dev)
    c = torch.randn(a.batch, a.hidden, device=dev)
    target = torch.randn(a.batch, a.tokens, a.hidden, device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            h = x
            for b in blocks:
                h = b(h, c)
            loss = F.mse_loss(h.float(), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    times = []
    for i in range(a.warmup + a.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "device": a.device, "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in params), "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times), "loss": float(loss.detach()),
    }))


if __name__ == "__main__":
    main()
