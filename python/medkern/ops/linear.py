"""Fully connected layer as the torch custom op ``torch.ops.medkern.linear`` (+ private backward
ops), on the same CPU GEMM as convolution. The public ``linear`` has ``F.linear``'s signature;
leading axes of the input are flattened to (M, in_features) here, so the kernel sees 2-D only.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _backend
from .._backend import _C, needs_torch_fallback

__all__ = ["linear"]




@torch.library.custom_op("medkern::linear", mutates_args=())
def _linear_op(input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    if needs_torch_fallback(input, "linear_forward"):
        return F.linear(input, weight, bias)
    out = torch.empty((input.shape[0], weight.shape[0]), dtype=input.dtype, device=input.device)
    _C.linear_forward(_backend.view(input, "input"), _backend.view(weight, "weight"),
                      _backend.optional_view(bias, "bias"), _backend.view(out, "output"),
                      torch.backends.cuda.matmul.allow_tf32, _backend.stream_of(input))
    return out


@_linear_op.register_fake
def _(input, weight, bias):
    return input.new_empty((input.shape[0], weight.shape[0]))


@torch.library.custom_op("medkern::linear_backward_input", mutates_args=())
def _linear_backward_input(grad_output: Tensor, weight: Tensor) -> Tensor:
    if needs_torch_fallback(grad_output, "linear_backward_input"):
        return grad_output @ weight
    grad_input = torch.empty((grad_output.shape[0], weight.shape[1]), dtype=grad_output.dtype,
                             device=grad_output.device)
    _C.linear_backward_input(_backend.view(grad_output, "grad_output"), _backend.view(weight, "weight"),
                             _backend.view(grad_input, "grad_input"), torch.backends.cuda.matmul.allow_tf32,
                             _backend.stream_of(grad_output))
    return grad_input


@_linear_backward_input.register_fake
def _(grad_output, weight):
    return grad_output.new_empty((grad_output.shape[0], weight.shape[1]))


@torch.library.custom_op("medkern::linear_backward_weight", mutates_args=())
def _linear_backward_weight(grad_output: Tensor, input: Tensor) -> Tensor:
    if needs_torch_fallback(grad_output, "linear_backward_weight"):
        return grad_output.t() @ input
    grad_weight = torch.empty((grad_output.shape[1], input.shape[1]), dtype=grad_output.dtype,
                              device=grad_output.device)
    _C.linear_backward_weight(_backend.view(grad_output, "grad_output"), _backend.view(input, "input"),
                              _backend.view(grad_weight, "grad_weight"), torch.backends.cuda.matmul.allow_tf32,
                              _backend.stream_of(grad_output))
    return grad_weight


@_linear_backward_weight.register_fake
def _(grad_output, input):
    return grad_output.new_empty((grad_output.shape[1], input.shape[1]))


@torch.library.custom_op("medkern::linear_backward_bias", mutates_args=())
def _linear_backward_bias(grad_output: Tensor) -> Tensor:
    if needs_torch_fallback(grad_output, "linear_backward_bias"):
        return grad_output.sum(0)
    grad_bias = torch.empty(grad_output.shape[1], dtype=grad_output.dtype, device=grad_output.device)
    _C.linear_backward_bias(_backend.view(grad_output, "grad_output"), _backend.view(grad_bias, "grad_bias"),
                            _backend.stream_of(grad_output))
    return grad_bias


@_linear_backward_bias.register_fake
def _(grad_output):
    return grad_output.new_empty(grad_output.shape[1])


def _setup_context(ctx, inputs, output):
    input, weight, bias = inputs
    ctx.save_for_backward(input, weight)
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    input, weight = ctx.saved_tensors
    grad_input = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_input = _linear_backward_input(grad, weight)
    if ctx.needs_input_grad[1]:
        grad_weight = _linear_backward_weight(grad, input)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = _linear_backward_bias(grad)
    return grad_input, grad_weight, grad_bias


_linear_op.register_autograd(_backward, setup_context=_setup_context)


def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``torch.nn.functional.linear`` on medkern's GEMM: input (..., in_features)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"argument 'input' must be a torch.Tensor, got {type(input).__name__}")
    if weight.device != input.device:
        raise ValueError(f"argument 'weight' is on {weight.device} but 'input' is on {input.device}; "
                         f"they must be on the same device")
    if bias is not None and bias.device != input.device:
        raise ValueError(f"argument 'bias' is on {bias.device} but 'input' is on {input.device}; "
                         f"they must be on the same device")
    if input.dim() < 1:
        raise ValueError("argument 'input' must have at least 1 dimension, got a 0-D tensor")
    lead = input.shape[:-1]
    flat = input.reshape(-1, input.shape[-1])
    out = _linear_op(flat, weight, bias)
    return out.reshape(*lead, out.shape[-1])
