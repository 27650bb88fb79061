"""Batch normalization as torch custom ops over medkern's CPU and CUDA kernels.

``torch.ops.medkern.batch_norm`` has aten::native_batch_norm's arguments and results (output,
save_mean, save_invstd) and updates ``running_mean`` / ``running_var`` in place in training mode
(declared in ``mutates_args``, so torch.library allows it no registered autograd: its eager
``autograd.Function`` serves every mode). In eval mode save_mean / save_invstd hold the running
statistics used. ``medkern::batch_norm_backward`` has aten::native_batch_norm_backward's leading
arguments and rule: training reads save_mean / save_invstd, eval the running statistics.
An empty input runs torch's batch norm, whose rule for it is an empty output and untouched
running statistics (see _eager.uses_torch_kernel).

Both ops take an activation (_C.ACTIVATION_CODES, default none) and its negative slope after
aten's arguments: the forward applies it in the normalizing pass, the backward (which then also
takes the bias) recomputes the pre-activation from the input and applies its gradient first.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _backend
from .._backend import _C
from ._arguments import check_grad_output_shape
from ._eager import direct_backward_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp
from .activation import activate_with_torch, activation_code, activation_grad_with_torch

__all__ = ["batch_norm"]


def _spatial_collapsible(t: Tensor) -> bool:
    expected = t.stride(-1) if t.dim() > 2 else 1
    for d in range(t.dim() - 1, 1, -1):
        if t.size(d) != 1 and t.stride(d) != expected:
            return False
        expected *= t.size(d)
    return True


def _as_rows(t: Tensor) -> Tensor:
    # The kernels read (N, C, *) through strides as long as the spatial axes form one strided
    # run; anything else (e.g. a transposed H/W) is made dense here.
    return t if _spatial_collapsible(t) else t.contiguous()


def _stats_dtype(input: Tensor) -> torch.dtype:
    # float16/bfloat16 activations keep their statistics in float32, as torch's own batch norm does
    return torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype


def _param_grad_dtype(input: Tensor, weight: Optional[Tensor]) -> torch.dtype:
    return weight.dtype if weight is not None else _stats_dtype(input)


def _channels(input: Tensor) -> int:
    return input.shape[1] if input.dim() > 1 else 0  # a 1-D input is refused by the checks (C++ or torch's)


def _batch_norm_torch(input: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                      running_mean: Optional[Tensor], running_var: Optional[Tensor], training: bool, momentum: float,
                      eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """torch's batch norm with the statistics it normalised by: the running ones in eval mode;
    zeros where it normalised nothing (an empty training batch, whose statistics torch skips)."""
    if training and input.numel() > 0:
        return torch.native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps)
    output = torch.batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, False)
    if not training and running_mean is not None and running_var is not None:
        return output, running_mean.clone(), torch.rsqrt(running_var + eps)
    no_statistics = input.new_zeros(_channels(input), dtype=_stats_dtype(input))
    return output, no_statistics, no_statistics.clone()


def _batch_norm_impl(input: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                     running_mean: Optional[Tensor], running_var: Optional[Tensor], training: bool, momentum: float,
                     eps: float, activation: int = 0, negative_slope: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    if uses_torch_kernel("batch_norm_forward", input):
        output, save_mean, save_invstd = _batch_norm_torch(input, weight, bias, running_mean, running_var, training,
                                                           momentum, eps)
        return activate_with_torch(output, activation, negative_slope), save_mean, save_invstd
    channels = _channels(input)
    x = _as_rows(input)
    output = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    save_mean = torch.empty(channels, dtype=_stats_dtype(x), device=x.device)
    save_invstd = torch.empty(channels, dtype=_stats_dtype(x), device=x.device)
    ov = _backend.optional_view
    _C.batch_norm_forward(_backend.view(x, "input"), ov(weight, "weight"), ov(bias, "bias"),
                          ov(running_mean, "running_mean"), ov(running_var, "running_var"),
                          _backend.view(output, "output"), _backend.view(save_mean, "save_mean"),
                          _backend.view(save_invstd, "save_invstd"), bool(training), float(momentum), float(eps),
                          _backend.stream_of(x), int(activation), float(negative_slope))
    return output, save_mean, save_invstd


def _batch_norm_backward_impl(grad_output: Tensor, input: Tensor, weight: Optional[Tensor],
                              running_mean: Optional[Tensor], running_var: Optional[Tensor],
                              save_mean: Optional[Tensor], save_invstd: Optional[Tensor], training: bool,
                              eps: float, bias: Optional[Tensor] = None, activation: int = 0,
                              negative_slope: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    x, g = _as_rows(input), _as_rows(grad_output)
    param_dtype = _param_grad_dtype(x, weight)
    if not training and running_mean is not None and running_var is not None:
        save_mean, save_invstd = running_mean, torch.rsqrt(running_var + eps)
    if uses_torch_kernel("batch_norm_backward", x, g):
        check_grad_output_shape(g, x.shape)
        if x.numel() == 0:  # sums over no elements; aten's backward kernel would divide by their count
            zeros = x.new_zeros(_channels(x), dtype=param_dtype)
            return torch.zeros_like(x), zeros, zeros.clone()
        if activation:  # the pre-activation from the input and the statistics it was normalized with
            view = (1, -1) + (1,) * (x.dim() - 2)
            z = (x - save_mean.reshape(view).to(x.dtype)) * save_invstd.reshape(view).to(x.dtype)
            z = z * weight.reshape(view) if weight is not None else z
            z = z + bias.reshape(view) if bias is not None else z
            g = activation_grad_with_torch(g, z, activation, negative_slope)
        return torch.ops.aten.native_batch_norm_backward(g, x, weight, running_mean, running_var, save_mean,
                                                         save_invstd, training, eps, [True, True, True])
    grad_input = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    grad_weight = torch.empty(x.shape[1], dtype=param_dtype, device=x.device)
    grad_bias = torch.empty(x.shape[1], dtype=param_dtype, device=x.device)
    _C.batch_norm_backward(_backend.view(g, "grad_output"), _backend.view(x, "input"),
                           _backend.optional_view(weight, "weight"), _backend.view(save_mean, "save_mean"),
                           _backend.view(save_invstd, "save_invstd"), _backend.view(grad_input, "grad_input"),
                           _backend.view(grad_weight, "grad_weight"), _backend.view(grad_bias, "grad_bias"),
                           bool(training), float(eps), _backend.stream_of(x),
                           _backend.optional_view(bias, "bias"), int(activation), float(negative_slope))
    return grad_input, grad_weight, grad_bias


def _batch_norm_fake(input, weight, bias, running_mean, running_var, training, momentum, eps, activation=0,
                     negative_slope=0.01):
    channels, stats = input.shape[1], _stats_dtype(input)
    return input.new_empty(input.shape), input.new_empty(channels, dtype=stats), input.new_empty(channels, dtype=stats)


def _batch_norm_backward_fake(grad_output, input, weight, *statistics_and_params):
    channels, param_dtype = input.shape[1], _param_grad_dtype(input, weight)
    return (input.new_empty(input.shape), input.new_empty(channels, dtype=param_dtype),
            input.new_empty(channels, dtype=param_dtype))


_batch_norm = RegisteredOp("batch_norm", _batch_norm_impl, _batch_norm_fake,
                           mutates_args=("running_mean", "running_var"))
_batch_norm_backward = RegisteredOp("batch_norm_backward", _batch_norm_backward_impl, _batch_norm_backward_fake)


def _batch_norm_setup_context(ctx, inputs, output):
    input, weight, bias, running_mean, running_var, training, momentum, eps, *activation = inputs
    _, save_mean, save_invstd = output
    if training:  # the backward reads the running statistics only in eval mode, as aten's does
        running_mean = running_var = None
    ctx.activation = tuple(activation) or (0, 0.01)
    if not ctx.activation[0]:
        bias = None  # read only to recompute the pre-activation
    ctx.save_for_backward(input, weight, bias, running_mean, running_var, save_mean, save_invstd)
    ctx.training, ctx.eps = training, eps
    ctx.mark_non_differentiable(save_mean, save_invstd)


def _batch_norm_gradients(ctx, grad_output, grad_save_mean, grad_save_invstd):
    input, weight, bias, running_mean, running_var, save_mean, save_invstd = ctx.saved_tensors
    direct = direct_backward_ok(grad_output, input, weight)
    grad_input, grad_weight, grad_bias = _batch_norm_backward.route[direct](
        grad_output, input, weight, running_mean, running_var, save_mean, save_invstd, ctx.training, ctx.eps, bias,
        *ctx.activation)
    needs = ctx.needs_input_grad
    return ((grad_input if needs[0] else None, grad_weight if needs[1] else None,
             grad_bias if needs[2] else None) + (None,) * (len(needs) - 3))


_batch_norm_differentiable = DifferentiableOp(_batch_norm, _batch_norm_setup_context, _batch_norm_gradients,
                                              tensor_count=5)


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, *, activation: Optional[str] = None,
               negative_slope: float = 0.01) -> Tensor:
    """torch.nn.functional.batch_norm on medkern's kernels, for (N, C) and (N, C, *) inputs;
    ``activation`` ('relu' or 'leaky_relu' with ``negative_slope``) is applied in the same pass,
    forward and backward."""
    if momentum is None:  # torch.nn.functional accepts None only as "no running update"
        momentum = 0.0
    code = activation_code(activation)
    if code:
        return _batch_norm_differentiable(input, weight, bias, running_mean, running_var, bool(training),
                                          float(momentum), float(eps), code, float(negative_slope))[0]
    return _batch_norm_differentiable(input, weight, bias, running_mean, running_var, bool(training),
                                      float(momentum), float(eps))[0]
