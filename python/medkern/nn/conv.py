"""``medkern.nn.Conv2d``: ``torch.nn.Conv2d`` (same constructor, parameters, state_dict keys)
whose forward runs medkern's conv2d. ``fuse_relu=True`` (keyword-only, not stored in the
state_dict) applies ReLU in the kernel's epilogue, replacing a following ``nn.ReLU``.
Non-zero ``padding_mode`` ('reflect', 'replicate', 'circular') pads with ``F.pad`` first, as
torch itself does, then convolves without padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import ops

__all__ = ["Conv2d"]


class Conv2d(torch.nn.Conv2d):
    fuse_relu: bool = False  # class default: accelerate() swaps classes without calling __init__

    def __init__(self, *args, fuse_relu: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fuse_relu = bool(fuse_relu)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + ", fuse_relu=True" if self.fuse_relu else text

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias):
        conv = ops.conv2d_relu if self.fuse_relu else ops.conv2d
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
