"""Benchmark cases for max/avg pooling: the seed CNN's 2x2 max pools and ResNet's 3x3/s2/p1
stem pool, forward (inference, no indices) and forward+backward (training), medkern against
torch's own kernels in the same process."""
from __future__ import annotations

import torch
import torch.nn.functional as F

try:
    from benchmarks.common import BenchCase
except ImportError:  # run as a script from benchmarks/
    from common import BenchCase

from medkern.ops import avg_pool2d, max_pool2d

# (name, (N, C, H, W) with N = None for the batch, kernel, stride, padding)
MAX_POOLS = [
    ("seedcnn.pool1", (None, 32, 26, 26), 2, 2, 0),
    ("seedcnn.pool2", (None, 64, 11, 11), 2, 2, 0),
    ("resnet.stem_pool", (None, 64, 112, 112), 3, 2, 1),
]


def _forward(fn, x, *args):
    def run():
        with torch.no_grad():
            return fn(x, *args)
    return run


def _forward_backward(fn, x, *args):
    grad = torch.ones_like(fn(x.detach(), *args))

    def run():
        x.grad = None
        fn(x, *args).backward(grad)
    return run


def cases(device: str = "cpu", batch: int = 128) -> list[BenchCase]:
    out = []
    for name, (_, c, h, w), k, s, p in MAX_POOLS:
        # the 112x112 stem pool is benchmarked at a quarter of the batch (32 for 128), as ResNet runs it
        n = max(1, batch // 4) if h >= 100 else batch
        x = torch.randn(n, c, h, w, device=device)
        shape = f"{n}x{c}x{h}x{w} k{k} s{s} p{p}"
        out.append(BenchCase("max_pool2d fwd", name, shape, _forward(max_pool2d, x, k, s, p),
                             _forward(F.max_pool2d, x, k, s, p), device=device))
        xg = x.clone().requires_grad_()
        out.append(BenchCase("max_pool2d fwd+bwd", name, shape, _forward_backward(max_pool2d, xg, k, s, p),
                             _forward_backward(F.max_pool2d, xg, k, s, p), device=device))
    x = torch.randn(batch, 64, 11, 11, device=device)
    out.append(BenchCase("avg_pool2d fwd", "avg 2x2", f"{batch}x64x11x11 k2 s2", _forward(avg_pool2d, x, 2, 2),
                         _forward(F.avg_pool2d, x, 2, 2), device=device))
    return out
