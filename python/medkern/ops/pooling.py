"""2-D and 3-D max and average pooling as torch custom ops over medkern's CPU and CUDA kernels.

``torch.ops.medkern.max_pool2d`` / ``max_pool3d`` return (output, indices) with torch's flat
indices (``h * W + w``, ``(d * H + h) * W + w``); ``max_pool2d_values`` / ``max_pool3d_values``
are the no-autograd inference variants that skip the int64 indices (they cost more memory
traffic than the pooling). Each op takes its aten counterpart's arguments in aten's order
(max_pool{2,3}d_with_indices, max_pool{2,3}d, avg_pool{2,3}d and their backward ops, which take
the forward's input as aten's do; the kernels read only its shape). One builder registers both
dimensionalities: they differ only in names, the number of spatial axes and torch's kernels
(``_Dimensionality``). Shapes and argument checks come from ``_C.pool_output_shape`` so they
live once, in C++; an empty operand runs torch's kernel (see _eager.uses_torch_kernel).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _backend
from .._backend import _C
from ._arguments import IntTuple, check_grad_output_shape, spatial
from ._eager import direct_backward_ok, direct_call_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp

__all__ = ["max_pool2d", "avg_pool2d", "max_pool3d", "avg_pool3d"]


@dataclasses.dataclass(frozen=True)
class _Dimensionality:
    """What 2-D and 3-D pooling do not share: the spatial axes, _C's kernel names, torch's ops."""
    dims: int
    max_forward: str  # _C kernel names (also the names uses_torch_kernel checks)
    max_backward: str
    avg_forward: str
    avg_backward: str
    torch_max: Callable
    torch_avg: Callable
    torch_max_backward: Callable
    torch_avg_backward: Callable


_2D = _Dimensionality(2, "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
                      F.max_pool2d, F.avg_pool2d, torch.ops.aten.max_pool2d_with_indices_backward,
                      torch.ops.aten.avg_pool2d_backward)
_3D = _Dimensionality(3, "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
                      F.max_pool3d, F.avg_pool3d, torch.ops.aten.max_pool3d_with_indices_backward,
                      torch.ops.aten.avg_pool3d_backward)


def _output_shape(input_shape, kernel_size, stride, padding, dilation, ceil_mode, average=False) -> list[int]:
    return _C.pool_output_shape(list(input_shape), kernel_size, stride, padding, dilation, ceil_mode, average)


def _pool_arguments(dims: int, kernel_size: IntTuple, stride: Optional[IntTuple], padding: IntTuple) -> tuple:
    """(kernel, stride, padding) per axis; a missing or empty stride means the kernel size, as in torch."""
    k = spatial(kernel_size, "kernel_size", dims)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else spatial(stride, "stride", dims)
    return k, s, spatial(padding, "padding", dims)


# ---- max pooling -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _MaxPoolOps:
    differentiable: DifferentiableOp  # medkern::max_pool{N}d (output, indices) with its backward op
    values: RegisteredOp              # medkern::max_pool{N}d_values


def _register_max_pool(d: _Dimensionality) -> _MaxPoolOps:
    name = f"max_pool{d.dims}d"
    forward_kernel, backward_kernel = getattr(_C, d.max_forward), getattr(_C, d.max_backward)

    def run(input: Tensor, kernel_size, stride, padding, dilation, ceil_mode,
            with_indices: bool) -> tuple[Tensor, Optional[Tensor]]:
        shape = _output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
        output = torch.empty(shape, dtype=input.dtype, device=input.device)
        indices = torch.empty(shape, dtype=torch.int64, device=input.device) if with_indices else None
        forward_kernel(_backend.view(input, "input"), _backend.view(output, "output"),
                       _backend.optional_view(indices, "indices"), kernel_size, stride, padding, dilation, ceil_mode,
                       _backend.stream_of(input))
        return output, indices

    def impl(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int], dilation: list[int],
             ceil_mode: bool) -> tuple[Tensor, Tensor]:
        if uses_torch_kernel(d.max_forward, input):
            return d.torch_max(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
        return run(input, kernel_size, stride, padding, dilation, ceil_mode, True)

    def values_impl(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                    dilation: list[int], ceil_mode: bool) -> Tensor:
        if uses_torch_kernel(d.max_forward, input):
            return d.torch_max(input, kernel_size, stride, padding, dilation, ceil_mode)
        return run(input, kernel_size, stride, padding, dilation, ceil_mode, False)[0]

    def backward_impl(grad_output: Tensor, input: Tensor, kernel_size: list[int], stride: list[int],
                      padding: list[int], dilation: list[int], ceil_mode: bool, indices: Tensor) -> Tensor:
        if uses_torch_kernel(d.max_backward, grad_output, input):
            return d.torch_max_backward(grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices)
        grad_input = torch.empty(input.shape, dtype=grad_output.dtype, device=grad_output.device)
        backward_kernel(_backend.view(grad_output, "grad_output"), _backend.view(indices, "indices"),
                        _backend.view(grad_input, "grad_input"), kernel_size, stride, padding, dilation, ceil_mode,
                        _backend.stream_of(grad_output))
        return grad_input

    def fake(input, kernel_size, stride, padding, dilation, ceil_mode):
        shape = _output_shape(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
        return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)

    forward = RegisteredOp(name, impl, fake)
    values = RegisteredOp(f"{name}_values", values_impl,
                          lambda input, *params: input.new_empty(_output_shape(input.shape, *params)))
    backward = RegisteredOp(f"{name}_backward", backward_impl,
                            lambda grad_output, input, *params: grad_output.new_empty(input.shape))

    def setup_context(ctx, inputs, output):
        input, *params = inputs
        ctx.save_for_backward(input, output[1])
        ctx.params = params

    def gradients(ctx, grad_output, grad_indices):
        input, indices = ctx.saved_tensors
        direct = direct_backward_ok(grad_output, input, indices)
        grad_input = backward.route[direct](grad_output, input, *ctx.params, indices)
        return grad_input, None, None, None, None, None

    return _MaxPoolOps(DifferentiableOp(forward, setup_context, gradients, tensor_count=1), values)


_MAX_POOL = {2: _register_max_pool(_2D), 3: _register_max_pool(_3D)}


def _max_pool(dims: int, input: Tensor, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    ops = _MAX_POOL[dims]
    k, s, p = _pool_arguments(dims, kernel_size, stride, padding)
    d = spatial(dilation, "dilation", dims)
    unbatched = input.dim() == dims + 1
    x = input.unsqueeze(0) if unbatched else input
    if return_indices or (torch.is_grad_enabled() and input.requires_grad):
        out, idx = ops.differentiable(x, k, s, p, d, bool(ceil_mode))
        if unbatched:
            out, idx = out.squeeze(0), idx.squeeze(0)
        return (out, idx) if return_indices else out
    out = ops.values.route[direct_call_ok(x)](x, k, s, p, d, bool(ceil_mode))
    return out.squeeze(0) if unbatched else out


def max_pool2d(input: Tensor, kernel_size: IntTuple, stride: Optional[IntTuple] = None, padding: IntTuple = 0,
               dilation: IntTuple = 1, ceil_mode: bool = False, return_indices: bool = False):
    """torch.nn.functional.max_pool2d on medkern's kernels ((N, C, H, W) or unbatched (C, H, W))."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input: Tensor, kernel_size: IntTuple, stride: Optional[IntTuple] = None, padding: IntTuple = 0,
               dilation: IntTuple = 1, ceil_mode: bool = False, return_indices: bool = False):
    """torch.nn.functional.max_pool3d on medkern's kernels ((N, C, D, H, W) or unbatched (C, D, H, W));
    indices are flat (d * H + h) * W + w offsets into each (n, c) volume, as torch's."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


# ---- average pooling -----------------------------------------------------------------------


def _register_avg_pool(d: _Dimensionality) -> DifferentiableOp:
    name = f"avg_pool{d.dims}d"
    forward_kernel, backward_kernel = getattr(_C, d.avg_forward), getattr(_C, d.avg_backward)
    no_dilation = [1] * d.dims

    def output_shape(input_shape, kernel_size, stride, padding, ceil_mode):
        return _output_shape(input_shape, kernel_size, stride, padding, no_dilation, ceil_mode, average=True)

    def impl(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int], ceil_mode: bool,
             count_include_pad: bool, divisor_override: Optional[int] = None) -> Tensor:
        if uses_torch_kernel(d.avg_forward, input):
            return d.torch_avg(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        output = torch.empty(output_shape(input.shape, kernel_size, stride, padding, ceil_mode), dtype=input.dtype,
                             device=input.device)
        forward_kernel(_backend.view(input, "input"), _backend.view(output, "output"), kernel_size, stride, padding,
                       ceil_mode, count_include_pad, divisor_override or 0, _backend.stream_of(input))
        return output

    def backward_impl(grad_output: Tensor, input: Tensor, kernel_size: list[int], stride: list[int],
                      padding: list[int], ceil_mode: bool, count_include_pad: bool,
                      divisor_override: Optional[int] = None) -> Tensor:
        if uses_torch_kernel(d.avg_backward, grad_output, input):
            output = d.torch_avg(input.to("meta"), kernel_size, stride, padding, ceil_mode, count_include_pad,
                                 divisor_override)
            check_grad_output_shape(grad_output, output.shape)
            return d.torch_avg_backward(grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override)
        grad_input = torch.empty(input.shape, dtype=grad_output.dtype, device=grad_output.device)
        backward_kernel(_backend.view(grad_output, "grad_output"), _backend.view(grad_input, "grad_input"),
                        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override or 0,
                        _backend.stream_of(grad_output))
        return grad_input

    def fake(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
        return input.new_empty(output_shape(input.shape, kernel_size, stride, padding, ceil_mode))

    forward = RegisteredOp(name, impl, fake)
    backward = RegisteredOp(f"{name}_backward", backward_impl,
                            lambda grad_output, input, *params: grad_output.new_empty(input.shape))

    def setup_context(ctx, inputs, output):
        input, *params = inputs
        ctx.save_for_backward(input)
        ctx.params = params

    def gradients(ctx, grad_output):
        (input,) = ctx.saved_tensors
        grad_input = backward.route[direct_backward_ok(grad_output, input)](grad_output, input, *ctx.params)
        return grad_input, None, None, None, None, None, None

    def backward_setup_context(ctx, inputs, output):
        ctx.params = inputs[2:]

    def double_backward(ctx, grad_grad_input):
        # avg pooling is linear: the backward's backward is the forward itself
        return forward.op(grad_grad_input.contiguous(), *ctx.params), None, None, None, None, None, None, None

    backward.op.register_autograd(double_backward, setup_context=backward_setup_context)
    return DifferentiableOp(forward, setup_context, gradients, tensor_count=1, double_backward=True)


_AVG_POOL = {2: _register_avg_pool(_2D), 3: _register_avg_pool(_3D)}


def _avg_pool(dims: int, input: Tensor, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override) -> Tensor:
    k, s, p = _pool_arguments(dims, kernel_size, stride, padding)
    if divisor_override is not None and divisor_override <= 0:
        raise ValueError(f"argument 'divisor_override' must be positive, got {divisor_override}")
    unbatched = input.dim() == dims + 1
    x = input.unsqueeze(0) if unbatched else input
    out = _AVG_POOL[dims](x, k, s, p, bool(ceil_mode), bool(count_include_pad),
                          None if divisor_override is None else int(divisor_override))
    return out.squeeze(0) if unbatched else out


def avg_pool2d(input: Tensor, kernel_size: IntTuple, stride: Optional[IntTuple] = None, padding: IntTuple = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """torch.nn.functional.avg_pool2d on medkern's kernels ((N, C, H, W) or unbatched (C, H, W))."""
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input: Tensor, kernel_size: IntTuple, stride: Optional[IntTuple] = None, padding: IntTuple = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """torch.nn.functional.avg_pool3d on medkern's kernels ((N, C, D, H, W) or unbatched (C, D, H, W))."""
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
