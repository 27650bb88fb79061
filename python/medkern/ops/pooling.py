"""2-D max and average pooling as torch custom ops over medkern's CPU and CUDA kernels.

``torch.ops.medkern.max_pool2d`` returns (output, indices) with torch's flat ``h * W + w``
indices; ``max_pool2d_values`` is the no-autograd inference variant that skips the int64
indices (they cost more memory traffic than the pooling). Shapes and argument checks come
from ``_C.pool2d_output_shape`` so they live once, in C++.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .. import _backend
from .._backend import _C
from ._arguments import IntPair, pair as _pair
from ._eager import direct_call_ok

__all__ = ["max_pool2d", "avg_pool2d"]





def _output_shape(input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> list[int]:
    return _C.pool2d_output_shape(list(input_shape), kernel_size, stride, padding, dilation, ceil_mode)


# ---- max pooling -------------------------------------------------------------------------


@torch.library.custom_op("medkern::max_pool2d", mutates_args=())
def _max_pool2d(input: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                dilation: list[int], ceil_mode: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if _backend.needs_torch_fallback(input, "max_pool2d_forward"):
        return F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
    shape = _output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    output = torch.empty(shape, dtype=input.dtype, device=input.device)
    indices = torch.empty(shape, dtype=torch.int64, device=input.device)
    _C.max_pool2d_forward(_backend.view(input, "input"), _backend.view(output, "output"),
                          _backend.view(indices, "indices"), kernel_size, stride, padding, dilation, ceil_mode,
                          _backend.stream_of(input))
    return output, indices


@_max_pool2d.register_fake
def _(input, kernel_size, stride, padding, dilation, ceil_mode):
    shape = _output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)


def _max_pool2d_values_impl(input: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                       dilation: list[int], ceil_mode: bool) -> torch.Tensor:
    if _backend.needs_torch_fallback(input, "max_pool2d_forward"):
        return F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    shape = _output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    output = torch.empty(shape, dtype=input.dtype, device=input.device)
    _C.max_pool2d_forward(_backend.view(input, "input"), _backend.view(output, "output"), None, kernel_size,
                          stride, padding, dilation, ceil_mode, _backend.stream_of(input))
    return output


_max_pool2d_values = torch.library.custom_op("medkern::max_pool2d_values", mutates_args=())(
    _max_pool2d_values_impl)


@_max_pool2d_values.register_fake
def _(input, kernel_size, stride, padding, dilation, ceil_mode):
    return input.new_empty(_output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode))


@torch.library.custom_op("medkern::max_pool2d_backward", mutates_args=())
def _max_pool2d_backward(grad_output: torch.Tensor, indices: torch.Tensor, input_shape: list[int],
                         kernel_size: list[int], stride: list[int], padding: list[int], dilation: list[int],
                         ceil_mode: bool) -> torch.Tensor:
    grad_input = torch.empty(input_shape, dtype=grad_output.dtype, device=grad_output.device)
    if _backend.needs_torch_fallback(grad_output, "max_pool2d_backward"):
        flat = grad_input.zero_().flatten(2)
        return flat.scatter_add_(2, indices.flatten(2), grad_output.flatten(2)).view(input_shape)
    _C.max_pool2d_backward(_backend.view(grad_output, "grad_output"), _backend.view(indices, "indices"),
                           _backend.view(grad_input, "grad_input"), kernel_size, stride, padding, dilation,
                           ceil_mode, _backend.stream_of(grad_output))
    return grad_input


@_max_pool2d_backward.register_fake
def _(grad_output, indices, input_shape, kernel_size, stride, padding, dilation, ceil_mode):
    return grad_output.new_empty(input_shape)


def _max_pool2d_setup(ctx, inputs, output):
    input, kernel_size, stride, padding, dilation, ceil_mode = inputs
    ctx.save_for_backward(output[1])
    ctx.args = (list(input.shape), kernel_size, stride, padding, dilation, ceil_mode)


def _max_pool2d_grad(ctx, grad_output, grad_indices):
    (indices,) = ctx.saved_tensors
    grad_input = _max_pool2d_backward(grad_output, indices, *ctx.args)
    return grad_input, None, None, None, None, None


_max_pool2d.register_autograd(_max_pool2d_grad, setup_context=_max_pool2d_setup)


def max_pool2d(input: torch.Tensor, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               dilation: IntPair = 1, ceil_mode: bool = False, return_indices: bool = False):
    """torch.nn.functional.max_pool2d on medkern's kernels ((N, C, H, W) or unbatched (C, H, W))."""
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    if return_indices or (torch.is_grad_enabled() and input.requires_grad):
        out, idx = _max_pool2d(x, k, s, p, d, bool(ceil_mode))
        if unbatched:
            out, idx = out.squeeze(0), idx.squeeze(0)
        return (out, idx) if return_indices else out
    op = _max_pool2d_values_impl if direct_call_ok(x) else _max_pool2d_values
    out = op(x, k, s, p, d, bool(ceil_mode))
    return out.squeeze(0) if unbatched else out


# ---- average pooling -----------------------------------------------------------------------


def _avg_pool2d_impl(input: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int], ceil_mode: bool,
                count_include_pad: bool, divisor_override: int) -> torch.Tensor:
    if _backend.needs_torch_fallback(input, "avg_pool2d_forward"):
        return F.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override or None)
    shape = _output_shape(input.shape, kernel_size, stride, padding, [1, 1], ceil_mode)
    output = torch.empty(shape, dtype=input.dtype, device=input.device)
    _C.avg_pool2d_forward(_backend.view(input, "input"), _backend.view(output, "output"), kernel_size, stride,
                          padding, ceil_mode, count_include_pad, divisor_override, _backend.stream_of(input))
    return output


_avg_pool2d = torch.library.custom_op("medkern::avg_pool2d", mutates_args=())(_avg_pool2d_impl)


@_avg_pool2d.register_fake
def _(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return input.new_empty(_output_shape(input.shape, kernel_size, stride, padding, [1, 1], ceil_mode))


@torch.library.custom_op("medkern::avg_pool2d_backward", mutates_args=())
def _avg_pool2d_backward(grad_output: torch.Tensor, input_shape: list[int], kernel_size: list[int],
                         stride: list[int], padding: list[int], ceil_mode: bool, count_include_pad: bool,
                         divisor_override: int) -> torch.Tensor:
    grad_input = torch.empty(input_shape, dtype=grad_output.dtype, device=grad_output.device)
    if _backend.needs_torch_fallback(grad_output, "avg_pool2d_backward"):
        return torch.ops.aten.avg_pool2d_backward(grad_output, grad_input, kernel_size, stride, padding, ceil_mode,
                                                  count_include_pad, divisor_override or None)
    _C.avg_pool2d_backward(_backend.view(grad_output, "grad_output"), _backend.view(grad_input, "grad_input"),
                           kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                           _backend.stream_of(grad_output))
    return grad_input


@_avg_pool2d_backward.register_fake
def _(grad_output, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return grad_output.new_empty(input_shape)


def _avg_pool2d_setup(ctx, inputs, output):
    input, *args = inputs
    ctx.args = (list(input.shape), *args)


def _avg_pool2d_grad(ctx, grad_output):
    return _avg_pool2d_backward(grad_output, *ctx.args), None, None, None, None, None, None


_avg_pool2d.register_autograd(_avg_pool2d_grad, setup_context=_avg_pool2d_setup)


def _avg_pool2d_backward_setup(ctx, inputs, output):
    ctx.args = inputs[2:]


def _avg_pool2d_backward_grad(ctx, grad_grad_input):
    # avg pooling is linear: the backward's backward is the forward itself
    return _avg_pool2d(grad_grad_input.contiguous(), *ctx.args), None, None, None, None, None, None, None


_avg_pool2d_backward.register_autograd(_avg_pool2d_backward_grad, setup_context=_avg_pool2d_backward_setup)


def avg_pool2d(input: torch.Tensor, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> torch.Tensor:
    """torch.nn.functional.avg_pool2d on medkern's kernels ((N, C, H, W) or unbatched (C, H, W))."""
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride, "stride")
    p = _pair(padding, "padding")
    if divisor_override is not None and divisor_override <= 0:
        raise ValueError(f"argument 'divisor_override' must be positive, got {divisor_override}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    direct = not (torch.is_grad_enabled() and input.requires_grad) and direct_call_ok(x)
    out = (_avg_pool2d_impl if direct else _avg_pool2d)(x, k, s, p, bool(ceil_mode), bool(count_include_pad),
                                                        int(divisor_override or 0))
    return out.squeeze(0) if unbatched else out
