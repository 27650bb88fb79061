"""Benchmark cases for instance and group normalization with LeakyReLU on the activations of a 3-D
U-Net (nnU-Net style) on MSD Hippocampus patches: batch 2, patch 40x56x40, features 32-64-128-256.
medkern's fused layer (one pass forward, one backward) against torch's two modules (the norm, then
LeakyReLU) in the same process, forward (no grad) and forward+backward (gradients of the input,
weight and bias); also the plain norms, unfused, against torch's."""
from __future__ import annotations

import copy

import torch

try:
    from benchmarks.common import BenchCase
except ImportError:  # run as a script from benchmarks/
    from common import BenchCase

import medkern.nn

BATCH = 2
UNET_SHAPES = [("unet3d.level1", 32, (40, 56, 40)), ("unet3d.level2", 64, (20, 28, 20)),
               ("unet3d.level3", 128, (10, 14, 10)), ("unet3d.level4", 256, (5, 7, 5))]


def _forward(module, x):
    def run():
        with torch.no_grad():
            return module(x)
    return run


def _forward_backward(module, x, grad):
    leaves = (x, *module.parameters())

    def run():
        return torch.autograd.grad(module(x), leaves, grad)
    return run


def _pairs(norm: torch.nn.Module, slope: float = 0.01):
    """(medkern fused layer, torch's norm + LeakyReLU) with the same parameters."""
    with torch.no_grad():
        for p in norm.parameters():
            p.uniform_(0.5, 1.5)
    peer = torch.nn.Sequential(norm, torch.nn.LeakyReLU(slope, inplace=True))
    fused = medkern.nn.fuse_norm_act(copy.deepcopy(norm), torch.nn.LeakyReLU(slope))
    return fused, peer


def cases(device: str = "cpu") -> list[BenchCase]:
    out = []
    for name, c, spatial in UNET_SHAPES:
        shape = (BATCH, c, *spatial)
        text = "x".join(map(str, shape))
        x = torch.randn(shape, device=device)
        xg = x.clone().requires_grad_()
        grad = torch.randn(shape, device=device)
        for label, norm in (("instance_norm3d+leaky_relu", torch.nn.InstanceNorm3d(c, affine=True)),
                            ("group_norm(8)+leaky_relu", torch.nn.GroupNorm(8, c))):
            fused, peer = _pairs(norm.to(device))
            out.append(BenchCase(f"{label} fwd", name, text, _forward(fused, x), _forward(peer, x), device=device))
            out.append(BenchCase(f"{label} fwd+bwd", name, text, _forward_backward(fused, xg, grad),
                                 _forward_backward(peer, xg, grad), device=device))
        plain = torch.nn.InstanceNorm3d(c, affine=True).to(device)
        mine = medkern.accelerate(copy.deepcopy(plain), verbose=False)
        out.append(BenchCase("instance_norm3d fwd+bwd", name, text, _forward_backward(mine, xg, grad),
                             _forward_backward(plain, xg, grad), device=device))
    return out
