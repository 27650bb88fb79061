"""Group and instance normalization, optionally fused with ReLU / LeakyReLU, as torch custom ops
over medkern's CPU and CUDA kernels.

``medkern::group_norm`` has aten::native_group_norm's arguments and results (output, mean, rstd
per (sample, group)) and two more with defaults: the activation code (_C.ACTIVATION_CODES) and
its negative slope. ``medkern::group_norm_backward`` has aten::native_group_norm_backward's
leading arguments (all but output_mask), then the bias and the activation: with an activation
the pre-activation is recomputed from the saved input and statistics, so the fused op keeps one
activation-sized tensor for its backward (ReLU's output alone cannot give the normalized value
of the elements it clipped, which the normalization's gradient needs at every element).
Instance norm is group norm with one channel per group; with running statistics it updates them
as torch does, and ``use_input_stats=False`` normalizes with them (batch norm's eval kernel).
An empty input runs torch's kernels (see _eager.uses_torch_kernel).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from .. import _backend
from .._backend import _C
from ._arguments import check_grad_output_shape
from ._eager import direct_backward_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp
from .activation import activate_with_torch, activation_code, activation_grad_with_torch
from .batch_norm import _as_rows, _param_grad_dtype, _stats_dtype, batch_norm

__all__ = ["group_norm", "instance_norm"]


def _check_sizes(input: Tensor, N: int, C: int, HxW: int) -> None:
    actual = (input.shape[0], input.shape[1], math.prod(input.shape[2:])) if input.dim() >= 2 else None
    if actual != (N, C, HxW):
        raise ValueError(f"arguments N, C, HxW are ({N}, {C}, {HxW}) but 'input' has shape {tuple(input.shape)}")


def _preactivation_with_torch(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], mean: Tensor,
                              rstd: Tensor, group: int) -> Tensor:
    """(x - mean) * rstd * weight + bias with torch's ops (the fused backward's fallback)."""
    n, c = x.shape[0], x.shape[1]
    xg = x.reshape(n, group, -1)
    z = ((xg - mean.reshape(n, group, 1).to(x.dtype)) * rstd.reshape(n, group, 1).to(x.dtype)).reshape(x.shape)
    view = (1, c) + (1,) * (x.dim() - 2)
    if weight is not None:
        z = z * weight.reshape(view)
    if bias is not None:
        z = z + bias.reshape(view)
    return z


def _group_norm_impl(input: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], N: int, C: int, HxW: int,
                     group: int, eps: float, activation: int = 0,
                     negative_slope: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    _check_sizes(input, N, C, HxW)
    if uses_torch_kernel("group_norm_forward", input):
        out, mean, rstd = torch.native_group_norm(input, weight, bias, N, C, HxW, group, eps)
        return activate_with_torch(out, activation, negative_slope), mean, rstd
    x = _as_rows(input)
    output = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    mean = torch.empty((N, group), dtype=_stats_dtype(x), device=x.device)
    rstd = torch.empty((N, group), dtype=_stats_dtype(x), device=x.device)
    ov = _backend.optional_view
    _C.group_norm_forward(_backend.view(x, "input"), ov(weight, "weight"), ov(bias, "bias"),
                          _backend.view(output, "output"), _backend.view(mean, "mean"), _backend.view(rstd, "rstd"),
                          int(group), float(eps), int(activation), float(negative_slope), _backend.stream_of(x))
    return output, mean, rstd


def _group_norm_backward_impl(grad_output: Tensor, input: Tensor, mean: Tensor, rstd: Tensor,
                              weight: Optional[Tensor], N: int, C: int, HxW: int, group: int,
                              bias: Optional[Tensor] = None, activation: int = 0,
                              negative_slope: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    x, g = _as_rows(input), _as_rows(grad_output)
    param_dtype = _param_grad_dtype(x, weight)
    if uses_torch_kernel("group_norm_backward", x, g):
        check_grad_output_shape(g, x.shape)
        if x.numel() == 0:  # sums over no elements
            zeros = x.new_zeros(C, dtype=param_dtype)
            return torch.zeros_like(x), zeros, zeros.clone()
        z = _preactivation_with_torch(x, weight, bias, mean, rstd, group)
        dz = activation_grad_with_torch(g, z, activation, negative_slope)
        return torch.ops.aten.native_group_norm_backward(dz, x, mean, rstd, weight, N, C, HxW, group,
                                                         [True, True, True])
    _check_sizes(x, N, C, HxW)
    grad_input = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    grad_weight = torch.empty(C, dtype=param_dtype, device=x.device)
    grad_bias = torch.empty(C, dtype=param_dtype, device=x.device)
    channel_sums = torch.empty((2, N, C), dtype=torch.float64, device=x.device)
    ov = _backend.optional_view
    _C.group_norm_backward(_backend.view(g, "grad_output"), _backend.view(x, "input"), _backend.view(mean, "mean"),
                           _backend.view(rstd, "rstd"), ov(weight, "weight"), ov(bias, "bias"),
                           _backend.view(channel_sums, "channel_sums"), _backend.view(grad_input, "grad_input"),
                           _backend.view(grad_weight, "grad_weight"), _backend.view(grad_bias, "grad_bias"),
                           int(group), int(activation), float(negative_slope), _backend.stream_of(x))
    return grad_input, grad_weight, grad_bias


def _group_norm_fake(input, weight, bias, N, C, HxW, group, eps, activation=0, negative_slope=0.01):
    stats = _stats_dtype(input)
    return (input.new_empty(input.shape), input.new_empty((N, group), dtype=stats),
            input.new_empty((N, group), dtype=stats))


def _group_norm_backward_fake(grad_output, input, mean, rstd, weight, N, C, *rest):
    param_dtype = _param_grad_dtype(input, weight)
    return (input.new_empty(input.shape), input.new_empty(C, dtype=param_dtype),
            input.new_empty(C, dtype=param_dtype))


_group_norm = RegisteredOp("group_norm", _group_norm_impl, _group_norm_fake)
_group_norm_backward = RegisteredOp("group_norm_backward", _group_norm_backward_impl, _group_norm_backward_fake)


def _group_norm_setup_context(ctx, inputs, output):
    input, weight, bias, N, C, HxW, group, eps, *activation = inputs
    _, mean, rstd = output
    ctx.save_for_backward(input, weight, bias, mean, rstd)
    ctx.sizes = (N, C, HxW, group)
    ctx.activation = tuple(activation) or (0, 0.01)
    ctx.mark_non_differentiable(mean, rstd)


def _group_norm_gradients(ctx, grad_output, grad_mean, grad_rstd):
    input, weight, bias, mean, rstd = ctx.saved_tensors
    route = _group_norm_backward.route[direct_backward_ok(grad_output, input, weight)]
    grad_input, grad_weight, grad_bias = route(grad_output, input, mean, rstd, weight, *ctx.sizes, bias,
                                               *ctx.activation)
    needs = ctx.needs_input_grad
    return ((grad_input if needs[0] else None, grad_weight if needs[1] else None, grad_bias if needs[2] else None)
            + (None,) * (len(needs) - 3))


_group_norm_differentiable = DifferentiableOp(_group_norm, _group_norm_setup_context, _group_norm_gradients,
                                              tensor_count=3)


def _normalization_input(input, name: str = "input") -> tuple[int, int, int]:
    if not isinstance(input, Tensor):
        raise TypeError(f"argument '{name}' must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() < 2:
        raise ValueError(f"argument '{name}' must be at least 2-D (N, C, *), got shape {tuple(input.shape)}")
    return input.shape[0], input.shape[1], math.prod(input.shape[2:])


def _group_norm_call(input: Tensor, num_groups: int, weight, bias, eps: float, activation,
                     negative_slope: float) -> tuple[Tensor, Tensor, Tensor]:
    N, C, HxW = _normalization_input(input)
    if not isinstance(num_groups, int) or num_groups < 1 or C % num_groups:
        raise ValueError(f"argument 'num_groups' is {num_groups!r}: expected a positive divisor of the input's "
                         f"{C} channels (shape {tuple(input.shape)})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"argument '{name}' has shape {tuple(t.shape)}; expected ({C},), one value per "
                             f"channel of 'input' (shape {tuple(input.shape)})")
    return _group_norm_differentiable(input, weight, bias, N, C, HxW, num_groups, float(eps),
                                      activation_code(activation), float(negative_slope))


def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5, *, activation: Optional[str] = None, negative_slope: float = 0.01) -> Tensor:
    """torch.nn.functional.group_norm on medkern's kernels; ``activation`` ('relu' or
    'leaky_relu' with ``negative_slope``) is applied in the same pass, forward and backward."""
    return _group_norm_call(input, num_groups, weight, bias, eps, activation, negative_slope)[0]


def instance_norm(input: Tensor, running_mean: Optional[Tensor] = None, running_var: Optional[Tensor] = None,
                  weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5, *, activation: Optional[str] = None,
                  negative_slope: float = 0.01) -> Tensor:
    """torch.nn.functional.instance_norm on medkern's kernels (group norm with one channel per
    group); ``activation`` as in group_norm."""
    N, C, HxW = _normalization_input(input)
    if (running_mean is None) != (running_var is None):
        raise ValueError("arguments 'running_mean' and 'running_var' must be given together")
    if momentum is None:
        momentum = 0.0
    if not use_input_stats:
        if running_mean is None:
            raise ValueError("argument 'running_mean' is required when use_input_stats=False")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps,
                          activation=activation, negative_slope=negative_slope)
    if HxW <= 1:
        raise ValueError(f"argument 'input' has shape {tuple(input.shape)}: expected more than 1 spatial element "
                         f"when using input statistics")
    output, mean, rstd = _group_norm_call(input, C, weight, bias, eps, activation, negative_slope)
    if running_mean is not None and N > 0:
        # torch's rule: the running statistics move towards the mean over the batch of each
        # instance's mean and unbiased variance
        with torch.no_grad():
            var = (rstd.double().pow(-2) - eps).clamp_min(0) * (HxW / (HxW - 1))
            running_mean.mul_(1 - momentum).add_(mean.double().mean(0).to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_(var.mean(0).to(running_var.dtype), alpha=momentum)
    return output
