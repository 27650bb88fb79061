"""Benchmark cases for batch_norm (ResNet-18-for-28x28 BatchNorm2d shapes: training forward,
training forward+backward, eval forward) and relu on the same activations (it should run at
memory speed), medkern against torch's own kernels in the same process."""
from __future__ import annotations

import torch
import torch.nn.functional as F

try:
    from benchmarks.common import BenchCase
except ImportError:  # run as a script from benchmarks/
    from common import BenchCase

from medkern.ops import batch_norm, relu

SHAPES = [("resnet.layer1", 64, 28, 28), ("resnet.layer2", 128, 14, 14), ("resnet.layer3", 256, 7, 7),
          ("resnet.layer4", 512, 4, 4)]


def _train_forward(fn, x, w, b, rm, rv):
    def run():
        with torch.no_grad():
            return fn(x, rm, rv, w, b, True, 0.1, 1e-5)
    return run


def _train_forward_backward(fn, x, w, b, rm, rv):
    grad = torch.randn_like(x)

    def run():
        x.grad = w.grad = b.grad = None
        fn(x, rm, rv, w, b, True, 0.1, 1e-5).backward(grad)
    return run


def _eval_forward(fn, x, w, b, rm, rv):
    def run():
        with torch.no_grad():
            return fn(x, rm, rv, w, b, False, 0.1, 1e-5)
    return run


def cases(device: str = "cpu", batch: int = 128) -> list[BenchCase]:
    out = []
    for name, c, h, w_ in SHAPES:
        shape = f"{batch}x{c}x{h}x{w_}"
        x = torch.randn(batch, c, h, w_, device=device)
        w = torch.rand(c, device=device) + 0.5
        b = torch.randn(c, device=device)
        rm, rv = torch.zeros(c, device=device), torch.ones(c, device=device)
        # each side updates its own running statistics
        mine, peer = (rm.clone(), rv.clone()), (rm.clone(), rv.clone())
        out.append(BenchCase("batch_norm train fwd", name, shape, _train_forward(batch_norm, x, w, b, *mine),
                             _train_forward(F.batch_norm, x, w, b, *peer), device=device))
        xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
        out.append(BenchCase("batch_norm train fwd+bwd", name, shape,
                             _train_forward_backward(batch_norm, xg, wg, bg, *mine),
                             _train_forward_backward(F.batch_norm, xg, wg, bg, *peer), device=device))
        out.append(BenchCase("batch_norm eval fwd", name, shape, _eval_forward(batch_norm, x, w, b, *mine),
                             _eval_forward(F.batch_norm, x, w, b, *peer), device=device))
        out.append(BenchCase("relu fwd", name, shape, lambda x=x: relu(x), lambda x=x: F.relu(x), device=device))
    return out
