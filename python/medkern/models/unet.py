"""The plain U-Net of nnU-Net, 2-D or 3-D: per resolution two (conv 3x3[x3], norm, activation)
blocks; strided convolutions down, transposed convolutions (kernel = stride) up, skip
connections by concatenation, a 1x1 convolution per output. Layers come from medkern.nn where it
has them and torch.nn otherwise (``layer_namespace``), so the network runs on medkern's kernels;
each (conv, norm, activation) is an ``nn.Sequential`` so ``medkern.accelerate`` can fuse the
normalization with the activation."""
from __future__ import annotations

from types import ModuleType
from typing import Sequence

import torch

from .seed_cnn import layer_namespace

__all__ = ["UNet", "unet_layer"]

NORMS = ("instance", "batch", "group")
ACTIVATIONS = ("leaky_relu", "relu")


def unet_layer(layers: ModuleType, name: str):
    """``layers.<name>``, or torch.nn's when ``layers`` lacks it (medkern.nn before it has the layer)."""
    return getattr(layers, name, None) or getattr(torch.nn, name)


class UNet(torch.nn.Module):
    """``UNet(spatial_dims, in_channels, num_classes, features=(32, 64, 128, 256), norm="instance",
    act="leaky_relu", deep_supervision=False, strides=None, layers=None)``.

    ``features[i]`` channels at resolution level i; level i > 0 is reached by a stride
    ``strides[i - 1]`` convolution (default 2 on every axis; a tuple per axis for anisotropic
    data). Inputs must be divisible by the product of the strides on each axis
    (``size_divisor``). Output: logits (N, num_classes, *spatial); with ``deep_supervision`` in
    training mode, a list of logits from full resolution down to the second-lowest level.
    ``norm``: "instance" (affine, as nnU-Net), "batch" or "group" (8 groups, fewer where the
    channels are not divisible); ``act``: "leaky_relu" (slope 0.01) or "relu"."""

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int,
                 features: Sequence[int] = (32, 64, 128, 256), norm: str = "instance", act: str = "leaky_relu",
                 deep_supervision: bool = False, strides: Sequence | None = None,
                 layers: ModuleType | str | None = None):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"argument 'spatial_dims' must be 2 or 3, got {spatial_dims}")
        features = tuple(int(f) for f in features)
        if len(features) < 2 or any(f <= 0 for f in features):
            raise ValueError(f"argument 'features' needs at least two positive channel counts, got {features}")
        if in_channels <= 0 or num_classes <= 0:
            raise ValueError(f"arguments 'in_channels' and 'num_classes' must be positive, got {in_channels}, "
                             f"{num_classes}")
        if norm not in NORMS:
            raise ValueError(f"argument 'norm' must be one of {NORMS}, got {norm!r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"argument 'act' must be one of {ACTIVATIONS}, got {act!r}")
        strides = [2] * (len(features) - 1) if strides is None else list(strides)
        if len(strides) != len(features) - 1:
            raise ValueError(f"argument 'strides' needs {len(features) - 1} entries (one per downsampling), "
                             f"got {len(strides)}")
        self.strides = [(s,) * spatial_dims if isinstance(s, int) else tuple(s) for s in strides]
        if any(len(s) != spatial_dims or min(s) < 1 for s in self.strides):
            raise ValueError(f"argument 'strides': each entry is a positive int or {spatial_dims} of them, "
                             f"got {strides}")
        self.spatial_dims, self.num_classes, self.features = spatial_dims, num_classes, features
        self.deep_supervision = bool(deep_supervision)
        nn = layer_namespace(layers)
        d = f"{spatial_dims}d"
        conv, up = unet_layer(nn, f"Conv{d}"), unet_layer(nn, f"ConvTranspose{d}")

        def norm_layer(channels: int) -> torch.nn.Module:
            if norm == "instance":
                return unet_layer(nn, f"InstanceNorm{d}")(channels, affine=True)
            if norm == "batch":
                return unet_layer(nn, f"BatchNorm{d}")(channels)
            groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
            return unet_layer(nn, "GroupNorm")(groups, channels)

        def act_layer() -> torch.nn.Module:
            if act == "leaky_relu":
                return unet_layer(nn, "LeakyReLU")(0.01, inplace=False)
            return unet_layer(nn, "ReLU")()

        def block(c_in: int, c_out: int, stride=1) -> torch.nn.Sequential:
            return torch.nn.Sequential(conv(c_in, c_out, 3, stride=stride, padding=1), norm_layer(c_out), act_layer())

        def stage(c_in: int, c_out: int, stride=1) -> torch.nn.Sequential:
            return torch.nn.Sequential(block(c_in, c_out, stride), block(c_out, c_out))

        self.encoder = torch.nn.ModuleList(
            [stage(in_channels, features[0])]
            + [stage(features[i - 1], features[i], self.strides[i - 1]) for i in range(1, len(features))])
        levels = range(len(features) - 1)
        self.upsample = torch.nn.ModuleList(
            [up(features[i + 1], features[i], self.strides[i], stride=self.strides[i]) for i in levels])
        self.decoder = torch.nn.ModuleList([stage(2 * features[i], features[i]) for i in levels])
        self.heads = torch.nn.ModuleList([conv(features[i], num_classes, 1) for i in levels])

    @property
    def size_divisor(self) -> tuple:
        """Per axis, the number every input size must be a multiple of."""
        out = [1] * self.spatial_dims
        for s in self.strides:
            out = [a * b for a, b in zip(out, s)]
        return tuple(out)

    def forward(self, x: torch.Tensor):
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(f"argument 'input': expected (N, C, {'D, ' if self.spatial_dims == 3 else ''}H, W), "
                             f"got shape {tuple(x.shape)}")
        divisor = self.size_divisor
        if any(n % k for n, k in zip(x.shape[2:], divisor)):
            raise ValueError(f"argument 'input': spatial size {tuple(x.shape[2:])} is not a multiple of "
                             f"{divisor} (pad it, or use medkern.segment.sliding_window)")
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        outputs = []
        x = skips.pop()
        for i in reversed(range(len(self.decoder))):
            x = self.decoder[i](torch.cat([self.upsample[i](x), skips[i]], dim=1))
            if self.deep_supervision and self.training or i == 0:
                outputs.append(self.heads[i](x))
        if self.deep_supervision and self.training:
            return outputs[::-1]  # full resolution first
        return outputs[-1]
