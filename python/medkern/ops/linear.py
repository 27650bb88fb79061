"""Fully connected layer as the torch custom op ``torch.ops.medkern.linear`` (+ private backward
ops), on the same CPU GEMM as convolution. The public ``linear`` has ``F.linear``'s signature;
leading axes of the input are flattened to (M, in_features) here, so the kernel sees 2-D only.
The op has aten::linear's arguments; aten has no per-gradient backward ops to mirror (its
linear_backward computes all three), so each gradient here is its own op, skipped when unneeded.
An empty operand runs torch's kernel (see _eager.uses_torch_kernel).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _backend
from .._backend import _C
from ._arguments import check_devices
from ._eager import direct_backward_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp

__all__ = ["linear"]


def _linear_impl(input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    if uses_torch_kernel("linear_forward", input, weight):
        return F.linear(input, weight, bias)
    out = torch.empty((input.shape[0], weight.shape[0]), dtype=input.dtype, device=input.device)
    _C.linear_forward(_backend.view(input, "input"), _backend.view(weight, "weight"),
                      _backend.optional_view(bias, "bias"), _backend.view(out, "output"),
                      torch.backends.cuda.matmul.allow_tf32, _backend.stream_of(input))
    return out


def _linear_backward_input_impl(grad_output: Tensor, weight: Tensor) -> Tensor:
    if uses_torch_kernel("linear_backward_input", grad_output, weight):
        return grad_output @ weight
    grad_input = torch.empty((grad_output.shape[0], weight.shape[1]), dtype=grad_output.dtype,
                             device=grad_output.device)
    _C.linear_backward_input(_backend.view(grad_output, "grad_output"), _backend.view(weight, "weight"),
                             _backend.view(grad_input, "grad_input"), torch.backends.cuda.matmul.allow_tf32,
                             _backend.stream_of(grad_output))
    return grad_input


def _linear_backward_weight_impl(grad_output: Tensor, input: Tensor) -> Tensor:
    if uses_torch_kernel("linear_backward_weight", grad_output, input):
        return grad_output.t() @ input
    grad_weight = torch.empty((grad_output.shape[1], input.shape[1]), dtype=grad_output.dtype,
                              device=grad_output.device)
    _C.linear_backward_weight(_backend.view(grad_output, "grad_output"), _backend.view(input, "input"),
                              _backend.view(grad_weight, "grad_weight"), torch.backends.cuda.matmul.allow_tf32,
                              _backend.stream_of(grad_output))
    return grad_weight


def _linear_backward_bias_impl(grad_output: Tensor) -> Tensor:
    if uses_torch_kernel("linear_backward_bias", grad_output):
        return grad_output.sum(0)
    grad_bias = torch.empty(grad_output.shape[1], dtype=grad_output.dtype, device=grad_output.device)
    _C.linear_backward_bias(_backend.view(grad_output, "grad_output"), _backend.view(grad_bias, "grad_bias"),
                            _backend.stream_of(grad_output))
    return grad_bias


_linear = RegisteredOp("linear", _linear_impl,
                       lambda input, weight, bias: input.new_empty((input.shape[0], weight.shape[0])))
_linear_backward_input = RegisteredOp("linear_backward_input", _linear_backward_input_impl,
                                      lambda grad_output, weight: grad_output.new_empty((grad_output.shape[0],
                                                                                         weight.shape[1])))
_linear_backward_weight = RegisteredOp("linear_backward_weight", _linear_backward_weight_impl,
                                       lambda grad_output, input: grad_output.new_empty((grad_output.shape[1],
                                                                                         input.shape[1])))
_linear_backward_bias = RegisteredOp("linear_backward_bias", _linear_backward_bias_impl,
                                     lambda grad_output: grad_output.new_empty(grad_output.shape[1]))


def _linear_setup_context(ctx, inputs, output):
    input, weight, bias = inputs
    ctx.save_for_backward(input, weight)
    ctx.has_bias = bias is not None


def _linear_gradients(ctx, grad):
    input, weight = ctx.saved_tensors
    direct = direct_backward_ok(grad, input, weight)
    grad_input = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_input = _linear_backward_input.route[direct](grad, weight)
    if ctx.needs_input_grad[1]:
        grad_weight = _linear_backward_weight.route[direct](grad, input)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = _linear_backward_bias.route[direct](grad)
    return grad_input, grad_weight, grad_bias


_linear_differentiable = DifferentiableOp(_linear, _linear_setup_context, _linear_gradients, tensor_count=3)


def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``torch.nn.functional.linear`` on medkern's GEMM: input (..., in_features)."""
    check_devices(input, weight, bias)
    if input.dim() < 1:
        raise ValueError("argument 'input' must have at least 1 dimension, got a 0-D tensor")
    lead = input.shape[:-1]
    # flatten(0, -2) rather than reshape(-1, in_features), which is ambiguous for in_features == 0
    flat = input.flatten(0, -2) if input.dim() > 1 else input.unsqueeze(0)
    out = _linear_differentiable(flat, weight, bias)
    return out.reshape(*lead, out.shape[-1])
