"""2-D convolution as the torch custom ops ``torch.ops.medkern.conv2d`` (+ private backward ops).

The public ``conv2d`` / ``conv2d_relu`` take ``torch.nn.functional.conv2d``'s arguments (int or
pair, ``padding='same'|'valid'``); the op itself takes aten::conv2d's arguments in aten's order
as normalised pairs, then ``fuse_relu`` (default False) that makes the kernel's epilogue apply
max(., 0). Outputs are allocated here, shapes and all argument checks come from ``_C`` so they
exist once, in C++; an empty operand runs torch's kernel (see _eager.uses_torch_kernel).

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

from .. import _backend
from .._backend import _C
from ._arguments import IntPair, check_devices, pair as _pair
from ._eager import direct_backward_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp

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
    """The fake kernel's output shape (the implementation, on real tensors, asks _C directly)."""
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
                 dilation: list[int], groups: int, fuse_relu: bool = False) -> Tensor:
    if uses_torch_kernel("conv2d_forward", input, weight):
        out = F.conv2d(input, weight, bias, stride, padding, dilation, groups)
        return F.relu(out) if fuse_relu else out
    shape = _C.conv2d_output_shape(list(input.shape), list(weight.shape), stride, padding, dilation, groups)
    out = torch.empty(shape, dtype=input.dtype, device=input.device)
    ws = _tf32_workspace("forward", input, input.shape, weight.shape, stride, padding, dilation, groups)
    _C.conv2d_forward(_backend.view(input, "input"), _backend.view(weight, "weight"),
                      _backend.optional_view(bias, "bias"), _backend.view(out, "output"), stride, padding, dilation,
                      groups, fuse_relu, torch.backends.cudnn.allow_tf32, _backend.stream_of(input),
                      workspace=_backend.optional_view(ws, "workspace"))
    return out


def _conv2d_backward_input_impl(grad_output: Tensor, weight: Tensor, input_shape: list[int], stride: list[int],
                                padding: list[int], dilation: list[int], groups: int) -> Tensor:
    if uses_torch_kernel("conv2d_backward_input", grad_output, weight):
        return torch.nn.grad.conv2d_input(input_shape, weight, grad_output, stride, padding, dilation, groups)
    grad_input = torch.empty(input_shape, dtype=grad_output.dtype, device=grad_output.device)
    ws = _tf32_workspace("backward_input", grad_output, input_shape, weight.shape, stride, padding, dilation, groups)
    _C.conv2d_backward_input(_backend.view(grad_output, "grad_output"), _backend.view(weight, "weight"),
                             _backend.view(grad_input, "grad_input"), stride, padding, dilation, groups,
                             torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                             workspace=_backend.optional_view(ws, "workspace"))
    return grad_input


def _conv2d_backward_weight_impl(grad_output: Tensor, input: Tensor, weight_shape: list[int], stride: list[int],
                                 padding: list[int], dilation: list[int], groups: int) -> Tensor:
    if uses_torch_kernel("conv2d_backward_weight", grad_output, input):
        return torch.nn.grad.conv2d_weight(input, weight_shape, grad_output, stride, padding, dilation, groups)
    grad_weight = torch.empty(weight_shape, dtype=grad_output.dtype, device=grad_output.device)
    ws = _tf32_workspace("backward_weight", grad_output, input.shape, weight_shape, stride, padding, dilation, groups)
    _C.conv2d_backward_weight(_backend.view(grad_output, "grad_output"), _backend.view(input, "input"),
                              _backend.view(grad_weight, "grad_weight"), stride, padding, dilation, groups,
                              torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                              workspace=_backend.optional_view(ws, "workspace"))
    return grad_weight


def _conv2d_backward_bias_impl(grad_output: Tensor) -> Tensor:
    if uses_torch_kernel("conv2d_backward_bias", grad_output):
        return grad_output.sum(dim=(0, 2, 3))
    grad_bias = torch.empty(grad_output.shape[1], dtype=grad_output.dtype, device=grad_output.device)
    _C.conv2d_backward_bias(_backend.view(grad_output, "grad_output"), _backend.view(grad_bias, "grad_bias"),
                            _backend.stream_of(grad_output))
    return grad_bias


def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups, fuse_relu=False):
    return input.new_empty(_output_shape(input, weight, stride, padding, dilation, groups))


_conv2d = RegisteredOp("conv2d", _conv2d_impl, _conv2d_fake)
_conv2d_backward_input = RegisteredOp("conv2d_backward_input", _conv2d_backward_input_impl,
                                      lambda grad_output, weight, input_shape, *params:
                                      grad_output.new_empty(input_shape))
_conv2d_backward_weight = RegisteredOp("conv2d_backward_weight", _conv2d_backward_weight_impl,
                                       lambda grad_output, input, weight_shape, *params:
                                       grad_output.new_empty(weight_shape))
_conv2d_backward_bias = RegisteredOp("conv2d_backward_bias", _conv2d_backward_bias_impl,
                                     lambda grad_output: grad_output.new_empty(grad_output.shape[1]))


def _conv2d_setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups, fuse_relu = inputs
    ctx.save_for_backward(input, weight, output if fuse_relu else None)
    ctx.params = (list(stride), list(padding), list(dilation), groups)
    ctx.fuse_relu = fuse_relu
    ctx.has_bias = bias is not None


def _conv2d_gradients(ctx, grad):
    input, weight, output = ctx.saved_tensors
    if ctx.fuse_relu:
        grad = grad * (output > 0)
    direct = direct_backward_ok(grad, input, weight)
    params = ctx.params  # stride, padding, dilation, groups
    grad_input = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_input = _conv2d_backward_input.route[direct](grad, weight, list(input.shape), *params)
    if ctx.needs_input_grad[1]:
        grad_weight = _conv2d_backward_weight.route[direct](grad, input, list(weight.shape), *params)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = _conv2d_backward_bias.route[direct](grad)
    return grad_input, grad_weight, grad_bias, None, None, None, None, None


_conv2d_differentiable = DifferentiableOp(_conv2d, _conv2d_setup_context, _conv2d_gradients, tensor_count=3)


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


def _conv2d(input, weight, bias, stride, padding, dilation, groups, fuse_relu):
    check_devices(input, weight, bias)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    input, padding = _resolve_padding(input, weight, padding, stride, dilation)
    unbatched = input.dim() == 3  # (C, H, W), as torch accepts
    out = _conv2d_differentiable(input.unsqueeze(0) if unbatched else input, weight, bias, stride, padding,
                                 dilation, int(groups), fuse_relu)
    return out[0] if unbatched else out


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
           padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """``torch.nn.functional.conv2d`` on medkern's kernels (NCHW, float32/float64)."""
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, False)


def conv2d_relu(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
                padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """``relu(conv2d(...))`` in one pass: the ReLU is applied in the GEMM's epilogue."""
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, True)
