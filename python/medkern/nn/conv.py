"""``medkern.nn.Conv2d`` / ``Conv3d`` / ``ConvTranspose2d`` / ``ConvTranspose3d``: torch.nn's layers
(same constructor, parameters, state_dict keys) whose forward runs medkern's ops. Only the forward
changes, so ``accelerate`` can swap a layer's class in place. ``fuse_relu=True`` (keyword-only, not
stored in the state_dict) on the convolutions applies ReLU in the kernel's epilogue, replacing a
following ``nn.ReLU``. In eval mode the convolutions use an inference cache (a BatchNorm folded
by ``accelerate``, the CPU kernel's prepared weights: see fusion.py). Non-zero ``padding_mode`` ('reflect', 'replicate', 'circular') pads with
``F.pad`` first, as torch itself does, then convolves without padding.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .. import ops
from .fusion import _CACHE, inference_weights

__all__ = ["Conv2d", "Conv3d", "ConvTranspose2d", "ConvTranspose3d"]


class _FusedReluConv:
    """The forward shared by Conv2d and Conv3d; ``_ops`` is (conv, conv_relu) of the dimensionality."""
    fuse_relu: bool = False  # class default: accelerate() swaps classes without calling __init__
    _ops: tuple

    def __init__(self, *args, fuse_relu: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fuse_relu = bool(fuse_relu)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + ", fuse_relu=True" if self.fuse_relu else text

    def train(self, mode: bool = True):
        self.__dict__.pop(_CACHE, None)  # the inference cache lives only while in eval mode
        return super().train(mode)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias):
        padding = self.padding
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        # eval mode: a folded BatchNorm and the CPU kernel's prepared weights (see fusion.py)
        weight, bias, fuse_relu, prepared = inference_weights(self, input, weight, bias, padding)
        conv = self._ops[1] if fuse_relu else self._ops[0]
        return conv(input, weight, bias, self.stride, padding, self.dilation, self.groups, prepared=prepared)


class Conv2d(_FusedReluConv, torch.nn.Conv2d):
    _ops = (ops.conv2d, ops.conv2d_relu)


class Conv3d(_FusedReluConv, torch.nn.Conv3d):
    _ops = (ops.conv3d, ops.conv3d_relu)


class _Transposed:
    """The forward shared by ConvTranspose2d and ConvTranspose3d: torch's, with medkern's op."""
    _dims: int
    _op: staticmethod

    def forward(self, input: torch.Tensor, output_size: Optional[list[int]] = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError(f"Only 'zeros' padding mode is supported for {type(self).__name__}")
        # torch's rule for the output_padding that gives output_size (its errors included)
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                              self._dims, self.dilation)
        return self._op(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                        self.dilation)


class ConvTranspose2d(_Transposed, torch.nn.ConvTranspose2d):
    _dims = 2
    _op = staticmethod(ops.conv_transpose2d)


class ConvTranspose3d(_Transposed, torch.nn.ConvTranspose3d):
    _dims = 3
    _op = staticmethod(ops.conv_transpose3d)
