"""Benchmark cases for medkern conv3d / conv_transpose3d vs torch (same process): the distinct
convolution layers of two 3-D segmentation networks on MSD Hippocampus patches (batch 2, one
channel, 40x56x40), forward and forward+backward:
(a) a 3-D U-Net, features 32-64-128-256, two 3x3x3 convs per stage (the first strided 2 from stage
    1 on), transposed convs (kernel 2, stride 2) up, skip concatenation, a 1x1x1 head (3 classes);
(b) MONAI's UNet(spatial_dims=3, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2):
    residual units of two 3x3x3 convs (the first strided) with a strided 3x3x3 (or 1x1x1) residual
    conv, and 3x3x3 stride-2 transposed convs (output_padding 1) followed by one 3x3x3 conv.
Layers fed by the image itself do not ask for the input gradient, as in training. The layer list
is shared with the GPU rows in cases_cuda.py."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from medkern import ops

try:
    from .common import BenchCase
except ImportError:  # run as a script from benchmarks/
    from common import BenchCase

PATCH = (40, 56, 40)
BATCH = 2


@dataclasses.dataclass(frozen=True)
class Conv3dLayer:
    name: str
    c_in: int
    c_out: int
    size: tuple          # input (D, H, W)
    kernel: int
    stride: int = 1
    padding: int = 0
    transposed: bool = False
    output_padding: int = 0
    first: bool = False  # fed by the image: no input gradient in training

    def shape_text(self, batch: int) -> str:
        kind = "T" if self.transposed else ""
        op = f" op{self.output_padding}" if self.output_padding else ""
        return (f"N{batch} {self.c_in}->{self.c_out} {'x'.join(map(str, self.size))} k{self.kernel}{kind} "
                f"s{self.stride} p{self.padding}{op}")


def _half(size: tuple) -> tuple:
    return tuple((s + 1) // 2 for s in size)


def unet3d_layers() -> list[Conv3dLayer]:
    s0 = PATCH
    s1, s2, s3 = _half(s0), _half(_half(s0)), _half(_half(_half(s0)))
    L = Conv3dLayer
    return [
        L("unet3d.enc0.conv1", 1, 32, s0, 3, 1, 1, first=True),
        L("unet3d.enc0.conv2", 32, 32, s0, 3, 1, 1),
        L("unet3d.enc1.down", 32, 64, s0, 3, 2, 1),
        L("unet3d.enc1.conv", 64, 64, s1, 3, 1, 1),
        L("unet3d.enc2.down", 64, 128, s1, 3, 2, 1),
        L("unet3d.enc2.conv", 128, 128, s2, 3, 1, 1),
        L("unet3d.enc3.down", 128, 256, s2, 3, 2, 1),
        L("unet3d.enc3.conv", 256, 256, s3, 3, 1, 1),
        L("unet3d.up2", 256, 128, s3, 2, 2, 0, transposed=True),
        L("unet3d.dec2.conv1", 256, 128, s2, 3, 1, 1),
        L("unet3d.up1", 128, 64, s2, 2, 2, 0, transposed=True),
        L("unet3d.dec1.conv1", 128, 64, s1, 3, 1, 1),
        L("unet3d.up0", 64, 32, s1, 2, 2, 0, transposed=True),
        L("unet3d.dec0.conv1", 64, 32, s0, 3, 1, 1),
        L("unet3d.head", 32, 3, s0, 1, 1, 0),
    ]


def monai_unet_layers() -> list[Conv3dLayer]:
    s0 = PATCH
    s1, s2, s3 = _half(s0), _half(_half(s0)), _half(_half(_half(s0)))
    L = Conv3dLayer
    return [
        L("monai.down0.conv1", 1, 16, s0, 3, 2, 1, first=True),
        L("monai.down0.residual", 1, 16, s0, 3, 2, 1, first=True),
        L("monai.down0.conv2", 16, 16, s1, 3, 1, 1),
        L("monai.down1.conv1", 16, 32, s1, 3, 2, 1),
        L("monai.down1.residual", 16, 32, s1, 3, 2, 1),
        L("monai.down1.conv2", 32, 32, s2, 3, 1, 1),
        L("monai.down2.conv1", 32, 64, s2, 3, 2, 1),
        L("monai.down2.conv2", 64, 64, s3, 3, 1, 1),
        L("monai.bottom.conv1", 64, 128, s3, 3, 1, 1),
        L("monai.bottom.conv2", 128, 128, s3, 3, 1, 1),
        L("monai.bottom.residual", 64, 128, s3, 1, 1, 0),
        L("monai.up2.transposed", 192, 32, s3, 3, 2, 1, transposed=True, output_padding=1),
        L("monai.up2.conv", 32, 32, s2, 3, 1, 1),
        L("monai.up1.transposed", 64, 16, s2, 3, 2, 1, transposed=True, output_padding=1),
        L("monai.up1.conv", 16, 16, s1, 3, 1, 1),
        L("monai.up0.transposed", 32, 3, s1, 3, 2, 1, transposed=True, output_padding=1),
        L("monai.up0.conv", 3, 3, s0, 3, 1, 1),
    ]


def layers() -> list[Conv3dLayer]:
    return unet3d_layers() + monai_unet_layers()


def layer_operands(layer: Conv3dLayer, batch: int, device: str, dtype=torch.float32):
    """(x, w, b, kwargs, medkern op, torch op) for one layer, weights scaled like torch's init."""
    x = torch.randn(batch, layer.c_in, *layer.size, device=device, dtype=dtype)
    k = layer.kernel
    if layer.transposed:
        w = torch.randn(layer.c_in, layer.c_out, k, k, k, device=device, dtype=dtype) / (layer.c_in * k ** 3) ** 0.5
        kw = dict(stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding)
        mine, peer = ops.conv_transpose3d, F.conv_transpose3d
    else:
        w = torch.randn(layer.c_out, layer.c_in, k, k, k, device=device, dtype=dtype) / (layer.c_in * k ** 3) ** 0.5
        kw = dict(stride=layer.stride, padding=layer.padding)
        mine, peer = ops.conv3d, F.conv3d
    b = torch.randn(layer.c_out, device=device, dtype=dtype)
    return x, w, b, kw, mine, peer


def layer_cases(layer: Conv3dLayer, batch: int, device: str, case_type=BenchCase, **extra) -> list:
    x, w, b, kw, mine, peer = layer_operands(layer, batch, device)
    group = "conv_transpose3d" if layer.transposed else "conv3d"
    shape = layer.shape_text(batch)

    def fwd(fn):
        def run():
            with torch.no_grad():
                return fn(x, w, b, **kw)
        return run

    xg = x.clone().requires_grad_(not layer.first)
    wg, bg = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    with torch.no_grad():
        g = torch.randn_like(peer(x, w, b, **kw))
    wanted = (wg, bg) if layer.first else (xg, wg, bg)

    def fwd_bwd(fn):
        def run():
            return torch.autograd.grad(fn(xg, wg, bg, **kw), wanted, g)
        return run

    peer_name = extra.pop("peer_name", "torch")
    return [case_type(f"{group} fwd", layer.name, shape, fwd(mine), fwd(peer), peer_name, device, **extra),
            case_type(f"{group} fwd+bwd", layer.name, shape, fwd_bwd(mine), fwd_bwd(peer), peer_name, device,
                      **extra)]


def cases(device: str = "cpu", batch: int = BATCH) -> list[BenchCase]:
    out = []
    for layer in layers():
        out += layer_cases(layer, batch, device)
    return out
