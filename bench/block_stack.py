"""PyTorch reference for bench/run.sh: one training step (forward, backward, AdamW) of a stack of DiT blocks
(adaLN-Zero modulation, fused attention, tanh-GELU MLP), the same model and work as the Swift side
(Sources/ParisBench). Prints one JSON line with the median step time.

Usage: python bench/block_stack.py --hidden 256 --heads 4 --depth 4 --tokens 64 --batch 16 --steps 20 [--device cuda --bf16]
"""
import argparse
import json
import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_common import DiTBlock, time_steps


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
    blocks = nn.ModuleList([DiTBlock(a.hidden, a.heads) for _ in range(a.depth)]).to(dev)
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

    times, loss = time_steps(step, dev, a.warmup, a.steps)
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "device": a.device, "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in params), "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times), "loss": float(loss.detach()),
    }))


if __name__ == "__main__":
    main()
