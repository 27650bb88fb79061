"""relu and leaky_relu as torch custom ops over medkern's CPU and CUDA kernels.

``medkern::relu`` saves only its output for the backward (out > 0 <=> in > 0), so the input
can be freed; ``medkern::relu_`` is the in-place variant (declared as mutating its input)
used by ``relu(x, inplace=True)`` when no gradient flows. ``medkern::relu_backward`` takes
aten::threshold_backward's leading arguments (grad_output, then the tensor whose sign masks it,
relu's result as in aten's relu derivative) and is itself differentiable. An empty operand runs
torch's kernel (see _eager.uses_torch_kernel).

``medkern::leaky_relu`` likewise saves its output when the slope is non-negative (the sign is
the input's) and its input otherwise; ``medkern::leaky_relu_backward`` has
aten::leaky_relu_backward's arguments (grad_output, self, negative_slope, self_is_result).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _backend
from .._backend import _C
from ._arguments import check_grad_output_shape
from ._eager import direct_backward_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp

__all__ = ["relu", "leaky_relu"]


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


# ---- leaky_relu ------------------------------------------------------------------------------


def _leaky_relu_impl(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    if uses_torch_kernel("leaky_relu_forward", input):
        return F.leaky_relu(input, negative_slope)
    output = torch.empty(input.shape, dtype=input.dtype, device=input.device)
    _C.leaky_relu_forward(_backend.view(input, "input"), _backend.view(output, "output"), float(negative_slope),
                          _backend.stream_of(input))
    return output


def _leaky_relu_backward_impl(grad_output: Tensor, input: Tensor, negative_slope: float,
                              self_is_result: bool) -> Tensor:
    # ``input`` is aten's ``self``: leaky_relu's input, or its output when self_is_result
    if uses_torch_kernel("leaky_relu_backward", grad_output, input):
        check_grad_output_shape(grad_output, input.shape)
        return torch.ops.aten.leaky_relu_backward(grad_output, input, negative_slope, self_is_result)
    grad_input = torch.empty(grad_output.shape, dtype=grad_output.dtype, device=grad_output.device)
    _C.leaky_relu_backward(_backend.view(grad_output, "grad_output"), _backend.view(input, "self"),
                           _backend.view(grad_input, "grad_input"), float(negative_slope), bool(self_is_result),
                           _backend.stream_of(grad_output))
    return grad_input


def _dense_like(t: Tensor, *args) -> Tensor:
    return torch.empty_like(t, memory_format=torch.contiguous_format)


_leaky_relu = RegisteredOp("leaky_relu", _leaky_relu_impl, _dense_like)
_leaky_relu_backward = RegisteredOp("leaky_relu_backward", _leaky_relu_backward_impl, _dense_like)


def _leaky_relu_setup_context(ctx, inputs, output):
    input, negative_slope = inputs
    ctx.negative_slope = negative_slope
    ctx.self_is_result = negative_slope >= 0  # the output's sign is the input's
    ctx.save_for_backward(output if ctx.self_is_result else input)


def _leaky_relu_gradients(ctx, grad_output):
    (saved,) = ctx.saved_tensors
    route = _leaky_relu_backward.route[direct_backward_ok(grad_output, saved)]
    return route(grad_output, saved, ctx.negative_slope, ctx.self_is_result), None


_leaky_relu_differentiable = DifferentiableOp(_leaky_relu, _leaky_relu_setup_context, _leaky_relu_gradients,
                                              tensor_count=1, double_backward=True)


def _leaky_relu_backward_setup_context(ctx, inputs, output):
    _, saved, ctx.negative_slope, ctx.self_is_result = inputs
    ctx.save_for_backward(saved)


def _leaky_relu_double_backward(ctx, grad_grad_input):
    # linear in grad_output with the same mask; no gradient flows to the (piecewise-constant) mask
    (saved,) = ctx.saved_tensors
    return (_leaky_relu_backward.op(grad_grad_input, saved, ctx.negative_slope, ctx.self_is_result), None, None,
            None)


_leaky_relu_backward.op.register_autograd(_leaky_relu_double_backward,
                                          setup_context=_leaky_relu_backward_setup_context)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """torch.nn.functional.leaky_relu on medkern's kernels."""
    if not isinstance(input, Tensor):
        raise TypeError(f"argument 'input' must be a torch.Tensor, got {type(input).__name__}")
    output = _leaky_relu_differentiable(input, float(negative_slope))
    # in place: the result is written back with copy_, which autograd tracks (and which raises for
    # a leaf requiring grad, as torch's leaky_relu_ does)
    return input.copy_(output) if inplace else output


# ---- the activation a normalization applies in its own pass --------------------------------
# Codes come from _C (medkern/activation.h); "identity" means no activation.

ACTIVATION_CODES = _C.ACTIVATION_CODES
_IDENTITY = ACTIVATION_CODES["identity"]
_RELU = ACTIVATION_CODES["relu"]
_LEAKY_RELU = ACTIVATION_CODES["leaky_relu"]


def activation_code(activation) -> int:
    """The _C code of ``activation``: None (no activation), 'relu' or 'leaky_relu'."""
    name = "identity" if activation is None else activation
    if not isinstance(name, str) or name not in ACTIVATION_CODES:
        raise ValueError(f"argument 'activation' must be None, 'relu' or 'leaky_relu', got {activation!r}")
    return ACTIVATION_CODES[name]


def activate_with_torch(z: Tensor, code: int, negative_slope: float) -> Tensor:
    """torch's activation ``code`` of z: the fused ops' result where torch's kernels run."""
    if code == _RELU:
        return F.relu(z)
    if code == _LEAKY_RELU:
        return F.leaky_relu(z, negative_slope)
    return z


def activation_grad_with_torch(grad: Tensor, z: Tensor, code: int, negative_slope: float) -> Tensor:
    """The gradient through activation ``code`` at the pre-activation z, with torch's ops."""
    if code == _RELU:
        return torch.ops.aten.threshold_backward(grad, z, 0)
    if code == _LEAKY_RELU:
        return torch.ops.aten.leaky_relu_backward(grad, z, negative_slope, False)
    return grad
