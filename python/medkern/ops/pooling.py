"""2-D max and average pooling as torch custom ops over medkern's CPU and CUDA kernels.

``torch.ops.medkern.max_pool2d`` returns (output, indices) with torch's flat ``h * W + w``
indices; ``max_pool2d_values`` is the no-autograd inference variant that skips the int64
indices (they cost more memory traffic than the pooling). Each op takes its aten counterpart's
arguments in aten's order (max_pool2d_with_indices, max_pool2d, avg_pool2d and their backward
ops, which take the forward's input as aten's do; the kernels read only its shape). Shapes and
argument checks come from ``_C.pool_output_shape`` so they live once, in C++; an empty
operand runs torch's kernel (see _eager.uses_torch_kernel).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _backend
from .._backend import _C
from ._arguments import IntPair, check_grad_output_shape, pair as _pair
from ._eager import direct_backward_ok, direct_call_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp

__all__ = ["max_pool2d", "avg_pool2d"]


def _output_shape(input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> list[int]:
    return _C.pool_output_shape(list(input_shape), kernel_size, stride, padding, dilation, ceil_mode)


def _pool_arguments(kernel_size: IntPair, stride: Optional[IntPair], padding: IntPair) -> tuple:
    """(kernel, stride, padding) pairs; a missing or empty stride means the kernel size, as in torch."""
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride, "stride")
    return k, s, _pair(padding, "padding")


# ---- max pooling -------------------------------------------------------------------------


def _max_pool2d_kernel(input: Tensor, kernel_size, stride, padding, dilation, ceil_mode,
                       with_indices: bool) -> tuple[Tensor, Optional[Tensor]]:
    shape = _output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    output = torch.empty(shape, dtype=input.dtype, device=input.device)
    indices = torch.empty(shape, dtype=torch.int64, device=input.device) if with_indices else None
    _C.max_pool2d_forward(_backend.view(input, "input"), _backend.view(output, "output"),
                          _backend.optional_view(indices, "indices"), kernel_size, stride, padding, dilation,
                          ceil_mode, _backend.stream_of(input))
    return output, indices


def _max_pool2d_impl(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                     dilation: list[int], ceil_mode: bool) -> tuple[Tensor, Tensor]:
    if uses_torch_kernel("max_pool2d_forward", input):
        return F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
    return _max_pool2d_kernel(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def _max_pool2d_values_impl(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                            dilation: list[int], ceil_mode: bool) -> Tensor:
    if uses_torch_kernel("max_pool2d_forward", input):
        return F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_pool2d_kernel(input, kernel_size, stride, padding, dilation, ceil_mode, False)[0]


def _max_pool2d_backward_impl(grad_output: Tensor, input: Tensor, kernel_size: list[int], stride: list[int],
                              padding: list[int], dilation: list[int], ceil_mode: bool, indices: Tensor) -> Tensor:
    if uses_torch_kernel("max_pool2d_backward", grad_output, input):
        return torch.ops.aten.max_pool2d_with_indices_backward(grad_output, input, kernel_size, stride, padding,
                                                               dilation, ceil_mode, indices)
    grad_input = torch.empty(input.shape, dtype=grad_output.dtype, device=grad_output.device)
    _C.max_pool2d_backward(_backend.view(grad_output, "grad_output"), _backend.view(indices, "indices"),
                           _backend.view(grad_input, "grad_input"), kernel_size, stride, padding, dilation,
                           ceil_mode, _backend.stream_of(grad_output))
    return grad_input


def _max_pool2d_fake(input, kernel_size, stride, padding, dilation, ceil_mode):
    shape = _output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)


_max_pool2d = RegisteredOp("max_pool2d", _max_pool2d_impl, _max_pool2d_fake)
_max_pool2d_values = RegisteredOp("max_pool2d_values", _max_pool2d_values_impl,
                                  lambda input, *params: input.new_empty(_output_shape(input.shape, *params)))
_max_pool2d_backward = RegisteredOp("max_pool2d_backward", _max_pool2d_backward_impl,
                                    lambda grad_output, input, *params: grad_output.new_empty(input.shape))


def _max_pool2d_setup_context(ctx, inputs, output):
    input, *params = inputs
    ctx.save_for_backward(input, output[1])
    ctx.params = params


def _max_pool2d_gradients(ctx, grad_output, grad_indices):
    input, indices = ctx.saved_tensors
    direct = direct_backward_ok(grad_output, input, indices)
    grad_input = _max_pool2d_backward.route[direct](grad_output, input, *ctx.params, indices)
    return grad_input, None, None, None, None, None


_max_pool2d_differentiable = DifferentiableOp(_max_pool2d, _max_pool2d_setup_context, _max_pool2d_gradients,
                                              tensor_count=1)


def max_pool2d(input: Tensor, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               dilation: IntPair = 1, ceil_mode: bool = False, return_indices: bool = False):
    """torch.nn.functional.max_pool2d on medkern's kernels ((N, C, H, W) or unbatched (C, H, W))."""
    k, s, p = _pool_arguments(kernel_size, stride, padding)
    d = _pair(dilation, "dilation")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    if return_indices or (torch.is_grad_enabled() and input.requires_grad):
        out, idx = _max_pool2d_differentiable(x, k, s, p, d, bool(ceil_mode))
        if unbatched:
            out, idx = out.squeeze(0), idx.squeeze(0)
        return (out, idx) if return_indices else out
    out = _max_pool2d_values.route[direct_call_ok(x)](x, k, s, p, d, bool(ceil_mode))
    return out.squeeze(0) if unbatched else out


# ---- average pooling -----------------------------------------------------------------------


def _avg_pool2d_impl(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int], ceil_mode: bool,
                     count_include_pad: bool, divisor_override: Optional[int] = None) -> Tensor:
    if uses_torch_kernel("avg_pool2d_forward", input):
        return F.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    shape = _output_shape(input.shape, kernel_size, stride, padding, [1, 1], ceil_mode)
    output = torch.empty(shape, dtype=input.dtype, device=input.device)
    _C.avg_pool2d_forward(_backend.view(input, "input"), _backend.view(output, "output"), kernel_size, stride,
                          padding, ceil_mode, count_include_pad, divisor_override or 0, _backend.stream_of(input))
    return output


def _avg_pool2d_backward_impl(grad_output: Tensor, input: Tensor, kernel_size: list[int], stride: list[int],
                              padding: list[int], ceil_mode: bool, count_include_pad: bool,
                              divisor_override: Optional[int] = None) -> Tensor:
    if uses_torch_kernel("avg_pool2d_backward", grad_output, input):
        output = F.avg_pool2d(input.to("meta"), kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)
        check_grad_output_shape(grad_output, output.shape)
        return torch.ops.aten.avg_pool2d_backward(grad_output, input, kernel_size, stride, padding, ceil_mode,
                                                  count_include_pad, divisor_override)
    grad_input = torch.empty(input.shape, dtype=grad_output.dtype, device=grad_output.device)
    _C.avg_pool2d_backward(_backend.view(grad_output, "grad_output"), _backend.view(grad_input, "grad_input"),
                           kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override or 0,
                           _backend.stream_of(grad_output))
    return grad_input


def _avg_pool2d_fake(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    return input.new_empty(_output_shape(input.shape, kernel_size, stride, padding, [1, 1], ceil_mode))


_avg_pool2d = RegisteredOp("avg_pool2d", _avg_pool2d_impl, _avg_pool2d_fake)
_avg_pool2d_backward = RegisteredOp("avg_pool2d_backward", _avg_pool2d_backward_impl,
                                    lambda grad_output, input, *params: grad_output.new_empty(input.shape))


def _avg_pool2d_setup_context(ctx, inputs, output):
    input, *params = inputs
    ctx.save_for_backward(input)
    ctx.params = params


def _avg_pool2d_gradients(ctx, grad_output):
    (input,) = ctx.saved_tensors
    grad_input = _avg_pool2d_backward.route[direct_backward_ok(grad_output, input)](grad_output, input, *ctx.params)
    return grad_input, None, None, None, None, None, None


_avg_pool2d_differentiable = DifferentiableOp(_avg_pool2d, _avg_pool2d_setup_context, _avg_pool2d_gradients,
                                              tensor_count=1, double_backward=True)


def _avg_pool2d_backward_setup_context(ctx, inputs, output):
    ctx.params = inputs[2:]


def _avg_pool2d_double_backward(ctx, grad_grad_input):
    # avg pooling is linear: the backward's backward is the forward itself
    return _avg_pool2d.op(grad_grad_input.contiguous(), *ctx.params), None, None, None, None, None, None, None


_avg_pool2d_backward.op.register_autograd(_avg_pool2d_double_backward,
                                          setup_context=_avg_pool2d_backward_setup_context)


def avg_pool2d(input: Tensor, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """torch.nn.functional.avg_pool2d on medkern's kernels ((N, C, H, W) or unbatched (C, H, W))."""
    k, s, p = _pool_arguments(kernel_size, stride, padding)
    if divisor_override is not None and divisor_override <= 0:
        raise ValueError(f"argument 'divisor_override' must be positive, got {divisor_override}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    out = _avg_pool2d_differentiable(x, k, s, p, bool(ceil_mode), bool(count_include_pad),
                                     None if divisor_override is None else int(divisor_override))
    return out.squeeze(0) if unbatched else out
