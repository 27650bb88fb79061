"""Benchmark cases for medkern conv2d vs torch (same process): the seed CNN's two convs and the
convolutions of ResNet-18 for 28x28 inputs, forward and forward+backward, at a given batch.
First layers (1 input channel) do not ask for the input gradient, as in training."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medkern import ops

try:
    from .common import BenchCase
except ImportError:  # run as a script from benchmarks/
    from common import BenchCase

# name, C_in, C_out, H (= W), kernel, stride, padding
LAYERS = [
    ("seedcnn.conv1", 1, 32, 28, 3, 1, 0),
    ("seedcnn.conv2", 32, 64, 13, 3, 1, 0),
    ("resnet18.stem", 1, 64, 28, 3, 1, 1),
    ("resnet18.layer1", 64, 64, 28, 3, 1, 1),
    ("resnet18.layer2.down3x3", 64, 128, 28, 3, 2, 1),
    ("resnet18.layer2.down1x1", 64, 128, 28, 1, 2, 0),
    ("resnet18.layer2", 128, 128, 14, 3, 1, 1),
    ("resnet18.layer3.down3x3", 128, 256, 14, 3, 2, 1),
    ("resnet18.layer3.down1x1", 128, 256, 14, 1, 2, 0),
    ("resnet18.layer3", 256, 256, 7, 3, 1, 1),
    ("resnet18.layer4.down3x3", 256, 512, 7, 3, 2, 1),
    ("resnet18.layer4.down1x1", 256, 512, 7, 1, 2, 0),
    ("resnet18.layer4", 512, 512, 4, 3, 1, 1),
]


def _forward_case(name, shape, x, w, b, kw, device):
    def mk():
        with torch.no_grad():
            return ops.conv2d(x, w, b, **kw)

    def peer():
        with torch.no_grad():
            return F.conv2d(x, w, b, **kw)

    return BenchCase("conv2d fwd", name, shape, mk, peer, device=device)


def _training_case(name, shape, x, w, b, kw, device):
    def step(conv):
        def run():
            x.grad = w.grad = b.grad = None
            out = conv(x, w, b, **kw)
            out.backward(grad)
        return run

    with torch.no_grad():
        grad = torch.randn_like(F.conv2d(x, w, b, **kw))
    return BenchCase("conv2d fwd+bwd", name, shape, step(ops.conv2d), step(F.conv2d), device=device)


def cases(device: str = "cpu", batch: int = 128, dtype=torch.float32) -> list[BenchCase]:
    out = []
    for name, cin, cout, size, k, stride, pad in LAYERS:
        x = torch.randn(batch, cin, size, size, device=device, dtype=dtype)
        w = (torch.randn(cout, cin, k, k, device=device, dtype=dtype) / (cin * k * k) ** 0.5).requires_grad_()
        b = torch.randn(cout, device=device, dtype=dtype).requires_grad_()
        x.requires_grad_(cin > 1)
        kw = dict(stride=stride, padding=pad)
        shape = f"N={batch} {cin}->{cout} {size}x{size} k{k} s{stride} p{pad}"
        out.append(_forward_case(name, shape, x, w, b, kw, device))
        out.append(_training_case(name, shape, x, w, b, kw, device))
    return out
