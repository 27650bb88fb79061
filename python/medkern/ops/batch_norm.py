"""Batch normalization as torch custom ops over medkern's CPU and CUDA kernels.

``torch.ops.medkern.batch_norm`` returns (output, save_mean, save_invstd) and updates
``running_mean`` / ``running_var`` in place in training mode (declared in ``mutates_args``);
its backward is the op ``medkern::batch_norm_backward``, wired through an autograd.Function
because torch.library allows register_autograd only on ops that mutate nothing. In eval mode save_mean / save_invstd
hold the running statistics used, so one backward kernel serves both modes.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from .. import _backend
from .._backend import _C
from ._eager import direct_call_ok

__all__ = ["batch_norm"]


def _spatial_collapsible(t: torch.Tensor) -> bool:
    expected = t.stride(-1) if t.dim() > 2 else 1
    for d in range(t.dim() - 1, 1, -1):
        if t.size(d) != 1 and t.stride(d) != expected:
            return False
        expected *= t.size(d)
    return True


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    # The kernels read (N, C, *) through strides as long as the spatial axes form one strided
    # run; anything else (e.g. a transposed H/W) is made dense here.
    return t if _spatial_collapsible(t) else t.contiguous()


def _stats_dtype(input: torch.Tensor) -> torch.dtype:
    # float16/bfloat16 activations keep their statistics in float32, as torch's own batch norm does
    return torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype


def _param_grad_dtype(input: torch.Tensor, weight: Optional[torch.Tensor]) -> torch.dtype:
    return weight.dtype if weight is not None else _stats_dtype(input)


def _batch_norm_impl(input: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                running_mean: Optional[torch.Tensor], running_var: Optional[torch.Tensor], training: bool,
                momentum: float, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    channels = input.shape[1] if input.dim() > 1 else 0
    if _backend.needs_torch_fallback(input, "batch_norm_forward"):
        out, save_mean, save_invstd = torch.native_batch_norm(input, weight, bias, running_mean, running_var,
                                                              training, momentum, eps)
        if not training:
            save_mean, save_invstd = running_mean.clone(), torch.rsqrt(running_var + eps)
        return out, save_mean, save_invstd
    x = _as_rows(input)
    output = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    save_mean = torch.empty(channels, dtype=_stats_dtype(x), device=x.device)
    save_invstd = torch.empty(channels, dtype=_stats_dtype(x), device=x.device)
    ov = _backend.optional_view
    _C.batch_norm_forward(_backend.view(x, "input"), ov(weight, "weight"), ov(bias, "bias"),
                          ov(running_mean, "running_mean"), ov(running_var, "running_var"),
                          _backend.view(output, "output"), _backend.view(save_mean, "save_mean"),
                          _backend.view(save_invstd, "save_invstd"), bool(training), float(momentum), float(eps),
                          _backend.stream_of(x))
    return output, save_mean, save_invstd


_batch_norm = torch.library.custom_op("medkern::batch_norm", mutates_args=("running_mean", "running_var"))(
    _batch_norm_impl)


@_batch_norm.register_fake
def _(input, weight, bias, running_mean, running_var, training, momentum, eps):
    channels = input.shape[1]
    stats = _stats_dtype(input)
    return input.new_empty(input.shape), input.new_empty(channels, dtype=stats), input.new_empty(channels, dtype=stats)


def _batch_norm_backward_impl(grad_output: torch.Tensor, input: torch.Tensor, weight: Optional[torch.Tensor],
                              save_mean: torch.Tensor, save_invstd: torch.Tensor, training: bool,
                              eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, g = _as_rows(input), _as_rows(grad_output)
    grad_input = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    param_dtype = _param_grad_dtype(x, weight)
    grad_weight = torch.empty(x.shape[1], dtype=param_dtype, device=x.device)
    grad_bias = torch.empty(x.shape[1], dtype=param_dtype, device=x.device)
    if _backend.needs_torch_fallback(x, "batch_norm_backward"):
        # in eval mode torch's backward reads running statistics; rebuild them from the saved ones
        running_mean = None if training else save_mean
        running_var = None if training else save_invstd.pow(-2) - eps
        return torch.ops.aten.native_batch_norm_backward(g, x, weight, running_mean, running_var, save_mean,
                                                         save_invstd, training, eps, [True, True, True])
    _C.batch_norm_backward(_backend.view(g, "grad_output"), _backend.view(x, "input"),
                           _backend.optional_view(weight, "weight"), _backend.view(save_mean, "save_mean"),
                           _backend.view(save_invstd, "save_invstd"), _backend.view(grad_input, "grad_input"),
                           _backend.view(grad_weight, "grad_weight"), _backend.view(grad_bias, "grad_bias"),
                           bool(training), float(eps), _backend.stream_of(x))
    return grad_input, grad_weight, grad_bias


_batch_norm_backward = torch.library.custom_op("medkern::batch_norm_backward",
                                               mutates_args=())(_batch_norm_backward_impl)


@_batch_norm_backward.register_fake
def _(grad_output, input, weight, save_mean, save_invstd, training, eps):
    channels, param_dtype = input.shape[1], _param_grad_dtype(input, weight)
    return (input.new_empty(input.shape), input.new_empty(channels, dtype=param_dtype),
            input.new_empty(channels, dtype=param_dtype))


class _BatchNormFunction(torch.autograd.Function):
    """Autograd for medkern::batch_norm. torch.library refuses register_autograd on an op that
    mutates its arguments (the running statistics), so the backward op is wired here instead."""

    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, training, momentum, eps):
        op = _batch_norm_impl if direct_call_ok(input, weight, bias, running_mean, running_var) else _batch_norm
        output, save_mean, save_invstd = op(input, weight, bias, running_mean, running_var, training, momentum, eps)
        ctx.save_for_backward(input, weight, save_mean, save_invstd)
        ctx.training, ctx.eps = training, eps
        ctx.mark_non_differentiable(save_mean, save_invstd)
        return output, save_mean, save_invstd

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output, grad_save_mean, grad_save_invstd):
        input, weight, save_mean, save_invstd = ctx.saved_tensors
        op = _batch_norm_backward_impl if direct_call_ok(grad_output, input, weight) else _batch_norm_backward
        grad_input, grad_weight, grad_bias = op(grad_output, input, weight, save_mean, save_invstd, ctx.training,
                                                ctx.eps)
        needs = ctx.needs_input_grad
        return (grad_input if needs[0] else None, grad_weight if needs[1] else None,
                grad_bias if needs[2] else None, None, None, None, None, None)


def batch_norm(input: torch.Tensor, running_mean: Optional[torch.Tensor], running_var: Optional[torch.Tensor],
               weight: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """torch.nn.functional.batch_norm on medkern's kernels, for (N, C) and (N, C, *) inputs."""
    if momentum is None:  # torch.nn.functional accepts None only as "no running update"
        momentum = 0.0
    args = (input, weight, bias, running_mean, running_var, bool(training), float(momentum), float(eps))
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias)):
        return _BatchNormFunction.apply(*args)[0]
    if direct_call_ok(input, weight, bias, running_mean, running_var):
        return _batch_norm_impl(*args)[0]
    return _batch_norm(*args)[0]
