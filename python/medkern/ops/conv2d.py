"""2-D convolution as the torch custom ops ``torch.ops.medkern.conv2d`` (+ private backward ops).

The public ``conv2d`` / ``conv2d_relu`` take ``torch.nn.functional.conv2d``'s arguments (int or
pair, ``padding='same'|'valid'``); the op itself takes normalised pairs and a ``fuse_relu`` flag
that makes the kernel's epilogue apply max(., 0). Outputs are allocated here, shapes and all
argument checks come from ``_C`` so they exist once, in C++.

On CUDA, float32 with TF32 allowed (``torch.backends.cudnn.allow_tf32``, torch's default) takes
the tensor-core path when ``_C.conv2d_workspace_bytes`` says it applies: its scratch (the operands
in NHWC/KRSC layouts, split-K partial sums) is allocated here, from torch's caching allocator,
so the op itself neither allocates nor synchronizes (and can be captured in a CUDA graph).
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .. import _backend
from .._backend import _C, needs_torch_fallback
from ._eager import direct_call_ok
from ._arguments import IntPair, pair as _pair

__all__ = ["conv2d", "conv2d_relu"]


def _tf32_workspace(op: str, ref: Tensor, input_shape, weight_shape, stride, padding, dilation,
                    groups) -> Optional[Tensor]:
    """Scratch for the TF32 path of ``op`` (None where that path does not apply)."""
    if ref.device.type != "cuda" or ref.dtype != torch.float32 or not torch.backends.cudnn.allow_tf32:
        return None
    nbytes = _C.conv2d_workspace_bytes(op, list(input_shape), list(weight_shape), stride, padding, dilation,
                                       groups, 0, True, ref.device.index if ref.device.index is not None else -1)
    return torch.empty(nbytes, dtype=torch.uint8, device=ref.device) if nbytes else None


def _output_shape(input: Tensor, weight: Tensor, stride, padding, dilation, groups) -> list:
    shapes = list(input.shape) + list(weight.shape)
    if all(isinstance(s, int) for s in shapes):
        return _C.conv2d_output_shape(list(input.shape), list(weight.shape), stride, padding, dilation, groups)
    # symbolic shapes (torch.compile with dynamic dims) cannot cross into C++; this is the same
    # rule as conv_output_size in csrc/common/conv2d_math.h
    n, _, h, w = input.shape
    k, _, r, s = weight.shape
    p = (h + 2 * padding[0] - dilation[0] * (r - 1) - 1) // stride[0] + 1
    q = (w + 2 * padding[1] - dilation[1] * (s - 1) - 1) // stride[1] + 1
    return [n, k, p, q]




def _conv2d_impl(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
                 dilation: list[int], groups: int, fuse_relu: bool) -> Tensor:
    if needs_torch_fallback(input, "conv2d_forward"):
        out = F.conv2d(input, weight, bias, stride, padding, dilation, groups)
        return F.relu(out) if fuse_relu else out
    shape = _output_shape(input, weight, stride, padding, dilation, groups)
    out = torch.empty(shape, dtype=input.dtype, device=input.device)
    ws = _tf32_workspace("forward", input, input.shape, weight.shape, stride, padding, dilation, groups)
    _C.conv2d_forward(_backend.view(input, "input"), _backend.view(weight, "weight"),
                      _backend.optional_view(bias, "bias"), _backend.view(out, "output"), stride, padding, dilation,
                      groups, fuse_relu, torch.backends.cudnn.allow_tf32, _backend.stream_of(input),
                      workspace=_backend.optional_view(ws, "workspace"))
    return out


_conv2d_op = torch.library.custom_op("medkern::conv2d", mutates_args=())(_conv2d_impl)


@_conv2d_op.register_fake
def _(input, weight, bias, stride, padding, dilation, groups, fuse_relu):
    return input.new_empty(_output_shape(input, weight, stride, padding, dilation, groups))


def _conv2d_backward_input_impl(grad_output: Tensor, weight: Tensor, input_shape: list[int], stride: list[int],
                                padding: list[int], dilation: list[int], groups: int) -> Tensor:
    if needs_torch_fallback(grad_output, "conv2d_backward_input"):
        return torch.nn.grad.conv2d_input(input_shape, weight, grad_output, stride, padding, dilation, groups)
    grad_input = torch.empty(input_shape, dtype=grad_output.dtype, device=grad_output.device)
    ws = _tf32_workspace("backward_input", grad_output, input_shape, weight.shape, stride, padding, dilation, groups)
    _C.conv2d_backward_input(_backend.view(grad_output, "grad_output"), _backend.view(weight, "weight"),
                             _backend.view(grad_input, "grad_input"), stride, padding, dilation, groups,
                             torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                             workspace=_backend.optional_view(ws, "workspace"))
    return grad_input


_conv2d_backward_input = torch.library.custom_op("medkern::conv2d_backward_input",
                                                 mutates_args=())(_conv2d_backward_input_impl)


@_conv2d_backward_input.register_fake
def _(grad_output, weight, input_shape, stride, padding, dilation, groups):
    return grad_output.new_empty(input_shape)


def _conv2d_backward_weight_impl(grad_output: Tensor, input: Tensor, weight_shape: list[int], stride: list[int],
                                 padding: list[int], dilation: list[int], groups: int) -> Tensor:
    if needs_torch_fallback(grad_output, "conv2d_backward_weight"):
        return torch.nn.grad.conv2d_weight(input, weight_shape, grad_output, stride, padding, dilation, groups)
    grad_weight = torch.empty(weight_shape, dtype=grad_output.dtype, device=grad_output.device)
    ws = _tf32_workspace("backward_weight", grad_output, input.shape, weight_shape, stride, padding, dilation, groups)
    _C.conv2d_backward_weight(_backend.view(grad_output, "grad_output"), _backend.view(input, "input"),
                              _backend.view(grad_weight, "grad_weight"), stride, padding, dilation, groups,
                              torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                              workspace=_backend.optional_view(ws, "workspace"))
    return grad_weight


_conv2d_backward_weight = torch.library.custom_op("medkern::conv2d_backward_weight",
                                                  mutates_args=())(_conv2d_backward_weight_impl)


@_conv2d_backward_weight.register_fake
def _(grad_output, input, weight_shape, stride, padding, dilation, groups):
    return grad_output.new_empty(weight_shape)


def _conv2d_backward_bias_impl(grad_output: Tensor) -> Tensor:
    if needs_torch_fallback(grad_output, "conv2d_backward_bias"):
        return grad_output.sum(dim=(0, 2, 3))
    grad_bias = torch.empty(grad_output.shape[1], dtype=grad_output.dtype, device=grad_output.device)
    _C.conv2d_backward_bias(_backend.view(grad_output, "grad_output"), _backend.view(grad_bias, "grad_bias"),
                            _backend.stream_of(grad_output))
    return grad_bias


_conv2d_backward_bias = torch.library.custom_op("medkern::conv2d_backward_bias",
                                                mutates_args=())(_conv2d_backward_bias_impl)


@_conv2d_backward_bias.register_fake
def _(grad_output):
    return grad_output.new_empty(grad_output.shape[1])


def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups, fuse_relu = inputs
    ctx.save_for_backward(input, weight, output if fuse_relu else None)
    ctx.params = (list(stride), list(padding), list(dilation), groups)
    ctx.fuse_relu = fuse_relu
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    input, weight, output = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.params
    if ctx.fuse_relu:
        grad = grad * (output > 0)
    direct = direct_call_ok(grad, input, weight)
    grad_input = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        op = _conv2d_backward_input_impl if direct else _conv2d_backward_input
        grad_input = op(grad, weight, list(input.shape), stride, padding, dilation, groups)
    if ctx.needs_input_grad[1]:
        op = _conv2d_backward_weight_impl if direct else _conv2d_backward_weight
        grad_weight = op(grad, input, list(weight.shape), stride, padding, dilation, groups)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = (_conv2d_backward_bias_impl if direct else _conv2d_backward_bias)(grad)
    return grad_input, grad_weight, grad_bias, None, None, None, None, None


class _Conv2dFunction(torch.autograd.Function):
    """The eager path of the public functions: the same forward and backward as the registered
    op's autograd, calling the implementations directly where ``direct_call_ok`` allows (the
    dispatcher costs more than a small layer's kernels); inside torch.compile the registered op
    is traced instead (see ``_conv2d``)."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, groups, fuse_relu):
        op = _conv2d_impl if direct_call_ok(input, weight, bias) else _conv2d_op
        output = op(input, weight, bias, stride, padding, dilation, groups, fuse_relu)
        _setup_context(ctx, (input, weight, bias, stride, padding, dilation, groups, fuse_relu), output)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return _backward(ctx, grad)


_conv2d_op.register_autograd(_backward, setup_context=_setup_context)


def _resolve_padding(input: Tensor, weight: Tensor, padding, stride: list[int], dilation: list[int]):
    """Maps padding (int, pair, 'same', 'valid') to (input, symmetric pair), padding the input
    itself only for 'same' with an odd total (torch puts the extra row/column at the end)."""
    if not isinstance(padding, str):
        return input, _pair(padding, "padding")
    if padding == "valid":
        return input, [0, 0]
    if padding != "same":
        raise ValueError(f"argument 'padding' must be an int, a pair, 'same' or 'valid', got '{padding}'")
    if stride != [1, 1]:
        raise ValueError("argument 'padding'='same' is not supported for strided convolutions (as in torch)")
    if weight.dim() != 4:
        raise ValueError(f"argument 'weight' must be 4-D (K, C/groups, R, S), got shape {tuple(weight.shape)}")
    totals = [dilation[i] * (weight.shape[2 + i] - 1) for i in range(2)]
    pad = [t // 2 for t in totals]
    if any(t % 2 for t in totals):
        input = F.pad(input, [0, totals[1] % 2, 0, totals[0] % 2])
    return input, pad


def _check_devices(input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"argument 'input' must be a torch.Tensor, got {type(input).__name__}")
    if weight.device != input.device:
        raise ValueError(f"argument 'weight' is on {weight.device} but 'input' is on {input.device}; "
                         f"they must be on the same device")
    if bias is not None and bias.device != input.device:
        raise ValueError(f"argument 'bias' is on {bias.device} but 'input' is on {input.device}; "
                         f"they must be on the same device")


def _conv2d(input, weight, bias, stride, padding, dilation, groups, fuse_relu):
    _check_devices(input, weight, bias)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    input, padding = _resolve_padding(input, weight, padding, stride, dilation)
    unbatched = input.dim() == 3  # (C, H, W), as torch accepts
    args = (input.unsqueeze(0) if unbatched else input, weight, bias, stride, padding, dilation, int(groups),
            fuse_relu)
    if torch.compiler.is_compiling():
        out = _conv2d_op(*args)
    elif torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias)):
        out = _Conv2dFunction.apply(*args)
    elif direct_call_ok(input, weight, bias):
        out = _conv2d_impl(*args)
    else:
        out = _conv2d_op(*args)
    return out[0] if unbatched else out


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
           padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """``torch.nn.functional.conv2d`` on medkern's kernels (NCHW, float32/float64)."""
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, False)


def conv2d_relu(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
                padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """``relu(conv2d(...))`` in one pass: the ReLU is applied in the GEMM's epilogue."""
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, True)
