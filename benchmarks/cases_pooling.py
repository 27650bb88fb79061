"""Benchmark cases for max/avg pooling: the seed CNN's 2x2 max pools, ResNet's 3x3/s2/p1 stem
pool, and the 2x2x2 pools of a pooling 3-D U-Net on MSD Hippocampus patches (batch 2, patch
40x56x40, features 32-64-128), forward (inference, no indices) and forward+backward (training),
medkern against torch's own kernels in the same process."""
from __future__ import annotations

import torch
import torch.nn.functional as F

try:
    from benchmarks.common import BenchCase
except ImportError:  # run as a script from benchmarks/
    from common import BenchCase

from medkern.ops import avg_pool2d, avg_pool3d, max_pool2d, max_pool3d

# (name, (N, C, H, W) with N = None for the batch, kernel, stride, padding)
MAX_POOLS = [
    ("seedcnn.pool1", (None, 32, 26, 26), 2, 2, 0),
    ("seedcnn.pool2", (None, 64, 11, 11), 2, 2, 0),
    ("resnet.stem_pool", (None, 64, 112, 112), 3, 2, 1),
]

# 3-D U-Net encoder pools on hippocampus patches: (name, (N, C, D, H, W)), kernel 2, stride 2
UNET3D_POOLS = [
    ("unet3d.pool1", (2, 32, 40, 56, 40)),
    ("unet3d.pool2", (2, 64, 20, 28, 20)),
    ("unet3d.pool3", (2, 128, 10, 14, 10)),
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
    return out + volume_cases(device)


def volume_cases(device: str = "cpu") -> list[BenchCase]:
    out = []
    for name, dims in UNET3D_POOLS:
        x = torch.randn(*dims, device=device)
        shape = "x".join(map(str, dims)) + " k2 s2"
        xg = x.clone().requires_grad_()
        for group, ours, torchs in (("max_pool3d", max_pool3d, F.max_pool3d), ("avg_pool3d", avg_pool3d, F.avg_pool3d)):
            out.append(BenchCase(f"{group} fwd", name, shape, _forward(ours, x, 2, 2), _forward(torchs, x, 2, 2),
                                 device=device))
            out.append(BenchCase(f"{group} fwd+bwd", name, shape, _forward_backward(ours, xg, 2, 2),
                                 _forward_backward(torchs, xg, 2, 2), device=device))
    return out
