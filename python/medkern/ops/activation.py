"""relu as torch custom ops over medkern's CPU and CUDA kernels.

``medkern::relu`` saves only its output for the backward (out > 0 <=> in > 0), so the input
can be freed; ``medkern::relu_`` is the in-place variant (declared as mutating its input)
used by ``relu(x, inplace=True)`` when no gradient flows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _backend
from .._backend import _C
from ._eager import direct_call_ok

__all__ = ["relu"]


def _relu_impl(input: torch.Tensor) -> torch.Tensor:
    if _backend.needs_torch_fallback(input, "relu_forward"):
        return F.relu(input)
    output = torch.empty(input.shape, dtype=input.dtype, device=input.device)
    _C.relu_forward(_backend.view(input, "input"), _backend.view(output, "output"), _backend.stream_of(input))
    return output


_relu = torch.library.custom_op("medkern::relu", mutates_args=())(_relu_impl)


@_relu.register_fake
def _(input):
    return torch.empty_like(input, memory_format=torch.contiguous_format)


@torch.library.custom_op("medkern::relu_", mutates_args=("input",))
def _relu_(input: torch.Tensor) -> None:
    if _backend.needs_torch_fallback(input, "relu_forward"):
        F.relu(input, inplace=True)
        return
    v = _backend.view(input, "input")
    _C.relu_forward(v, v, _backend.stream_of(input))


@_relu_.register_fake
def _(input):
    return None


@torch.library.custom_op("medkern::relu_backward", mutates_args=())
def _relu_backward(grad_output: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    if _backend.needs_torch_fallback(grad_output, "relu_backward"):
        return torch.where(output > 0, grad_output, torch.zeros_like(grad_output))
    grad_input = torch.empty(grad_output.shape, dtype=grad_output.dtype, device=grad_output.device)
    _C.relu_backward(_backend.view(grad_output, "grad_output"), _backend.view(output, "output"),
                     _backend.view(grad_input, "grad_input"), _backend.stream_of(grad_output))
    return grad_input


@_relu_backward.register_fake
def _(grad_output, output):
    return torch.empty_like(grad_output, memory_format=torch.contiguous_format)


def _relu_setup(ctx, inputs, output):
    ctx.save_for_backward(output)


def _relu_grad(ctx, grad_output):
    (output,) = ctx.saved_tensors
    return _relu_backward(grad_output, output)


_relu.register_autograd(_relu_grad, setup_context=_relu_setup)


def _relu_backward_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _relu_backward_grad(ctx, grad_grad_input):
    # linear in grad_output with the same mask; no gradient flows to the (piecewise-constant) mask
    (output,) = ctx.saved_tensors
    return _relu_backward(grad_grad_input, output), None


_relu_backward.register_autograd(_relu_backward_grad, setup_context=_relu_backward_setup)


def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """torch.nn.functional.relu on medkern's kernels."""
    if not inplace:
        if not (torch.is_grad_enabled() and input.requires_grad) and direct_call_ok(input):
            return _relu_impl(input)
        return _relu(input)
    if (torch.is_grad_enabled() and input.requires_grad) or not input.is_contiguous():
        # autograd cannot see through a mutating custom op: compute out of place, write back
        # with copy_ (which autograd tracks, and which raises for leaves as torch's relu_ does)
        return input.copy_(_relu(input))
    _relu_(input)
    return input
