"""relu as torch custom ops over medkern's CPU and CUDA kernels.

``medkern::relu`` saves only its output for the backward (out > 0 <=> in > 0), so the input
can be freed; ``medkern::relu_`` is the in-place variant (declared as mutating its input)
used by ``relu(x, inplace=True)`` when no gradient flows. ``medkern::relu_backward`` takes
aten::threshold_backward's leading arguments (grad_output, then the tensor whose sign masks it,
relu's result as in aten's relu derivative) and is itself differentiable. An empty operand runs
torch's kernel (see _eager.uses_torch_kernel).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _backend
from .._backend import _C
from ._eager import direct_backward_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp

__all__ = ["relu"]


def _relu_impl(input: Tensor) -> Tensor:
    if uses_torch_kernel("relu_forward", input):
        return F.relu(input)
    output = torch.empty(input.shape, dtype=input.dtype, device=input.device)
    _C.relu_forward(_backend.view(input, "input"), _backend.view(output, "output"), _backend.stream_of(input))
    return output


def _relu_inplace_impl(input: Tensor) -> None:
    if uses_torch_kernel("relu_forward", input):
        F.relu(input, inplace=True)
        return
    v = _backend.view(input, "input")
    _C.relu_forward(v, v, _backend.stream_of(input))


def _relu_backward_impl(grad_output: Tensor, output: Tensor) -> Tensor:
    if uses_torch_kernel("relu_backward", grad_output, output):
        return torch.where(output > 0, grad_output, torch.zeros_like(grad_output))
    grad_input = torch.empty(grad_output.shape, dtype=grad_output.dtype, device=grad_output.device)
    _C.relu_backward(_backend.view(grad_output, "grad_output"), _backend.view(output, "output"),
                     _backend.view(grad_input, "grad_input"), _backend.stream_of(grad_output))
    return grad_input


_relu = RegisteredOp("relu", _relu_impl, lambda input: torch.empty_like(input, memory_format=torch.contiguous_format))
_relu_inplace = RegisteredOp("relu_", _relu_inplace_impl, lambda input: None, mutates_args=("input",))
_relu_backward = RegisteredOp("relu_backward", _relu_backward_impl,
                              lambda grad_output, output: torch.empty_like(grad_output,
                                                                           memory_format=torch.contiguous_format))


def _relu_setup_context(ctx, inputs, output):
    ctx.save_for_backward(output)


def _relu_gradients(ctx, grad_output):
    (output,) = ctx.saved_tensors
    return _relu_backward.route[direct_backward_ok(grad_output, output)](grad_output, output)


_relu_differentiable = DifferentiableOp(_relu, _relu_setup_context, _relu_gradients, tensor_count=1,
                                        double_backward=True)


def _relu_backward_setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _relu_double_backward(ctx, grad_grad_input):
    # linear in grad_output with the same mask; no gradient flows to the (piecewise-constant) mask
    (output,) = ctx.saved_tensors
    return _relu_backward.op(grad_grad_input, output), None


_relu_backward.op.register_autograd(_relu_double_backward, setup_context=_relu_backward_setup_context)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """torch.nn.functional.relu on medkern's kernels."""
    if not inplace:
        return _relu_differentiable(input)
    if (torch.is_grad_enabled() and input.requires_grad) or not input.is_contiguous():
        # autograd cannot see through a mutating custom op: compute out of place, write back
        # with copy_ (which autograd tracks, and which raises for leaves as torch's relu_ does)
        return input.copy_(_relu_differentiable(input))
    _relu_inplace.op(input)  # always dispatched: the dispatcher bumps the version counter autograd checks
    return input
