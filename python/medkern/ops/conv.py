"""2-D and 3-D convolution and transposed convolution as torch custom ops over one kernel set.

``torch.ops.medkern.conv2d`` / ``conv3d`` take aten::conv2d / conv3d's arguments in aten's order
(normalised lists), then ``fuse_relu`` (default False) that makes the kernel's epilogue apply
max(., 0); ``conv_transpose2d`` / ``conv_transpose3d`` take aten::conv_transpose{2,3}d.input's.
Each has private backward ops, one per gradient. The transposed convolution runs the
convolution's kernels with the roles swapped (its forward is the convolution's input gradient,
its input gradient the convolution's forward, its weight gradient the convolution's weight
gradient of swapped operands: see csrc/include/medkern/conv.h), so one builder per kind registers
both dimensionalities (``_Dimensionality``). The public wrappers take torch.nn.functional's
arguments (int or tuple, ``padding='same'|'valid'`` for the convolution). Outputs are allocated
here; shapes and argument checks come from ``_C`` so they exist once, in C++; an empty operand
runs torch's kernel (see _eager.uses_torch_kernel).

On CUDA, float32 with TF32 allowed (``torch.backends.cudnn.allow_tf32``, torch's default) takes
the tensor-core path when ``_C.conv_workspace_bytes`` says it applies: its scratch is allocated
here, from torch's caching allocator, so the op itself neither allocates nor synchronizes.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _backend
from .._backend import _C
from .activation import _relu_backward
from ._arguments import IntPair, IntTuple, check_devices, spatial
from ._eager import direct_backward_ok, uses_torch_kernel
from ._registration import DifferentiableOp, RegisteredOp

__all__ = ["conv2d", "conv2d_relu", "conv3d", "conv3d_relu", "conv_transpose2d", "conv_transpose3d",
           "prepare_conv_weight"]


@dataclasses.dataclass(frozen=True)
class _Dimensionality:
    """What 2-D and 3-D convolution do not share: the spatial axes and torch's ops."""
    dims: int
    torch_conv: Callable
    torch_conv_transpose: Callable

    def kernel(self, suffix: str, transposed: bool = False) -> str:
        """_C's kernel name (also the name uses_torch_kernel checks)."""
        return f"conv{'_transpose' if transposed else ''}{self.dims}d_{suffix}"


_2D = _Dimensionality(2, F.conv2d, F.conv_transpose2d)
_3D = _Dimensionality(3, F.conv3d, F.conv_transpose3d)


def _tf32_workspace(op: str, ref: Tensor, input_shape, weight_shape, stride, padding, dilation,
                    groups) -> Optional[Tensor]:
    """Scratch for the TF32 path of convolution op ``op`` (None where that path does not apply)."""
    if ref.device.type != "cuda" or ref.dtype != torch.float32 or not torch.backends.cudnn.allow_tf32:
        return None
    device_index = ref.device.index if ref.device.index is not None else torch.cuda.current_device()
    nbytes = _tf32_workspace_bytes(op, tuple(input_shape), tuple(weight_shape), tuple(stride), tuple(padding),
                                   tuple(dilation), groups, device_index)
    return torch.empty(nbytes, dtype=torch.uint8, device=ref.device) if nbytes else None


@functools.lru_cache(maxsize=4096)
def _tf32_workspace_bytes(op: str, input_shape: tuple, weight_shape: tuple, stride: tuple, padding: tuple,
                          dilation: tuple, groups: int, device_index: int) -> int:
    """The TF32 path's workspace size: a pure function of the shapes and the device (its SM count
    sets the split of the weight gradient), asked of C++ once per layer shape rather than per call."""
    return _C.conv_workspace_bytes(op, list(input_shape), list(weight_shape), list(stride), list(padding),
                                   list(dilation), groups, 0, True, device_index)


def _static(*shapes) -> bool:
    return all(isinstance(s, int) for shape in shapes for s in shape)


def _conv_shape(input_shape, weight_shape, stride, padding, dilation, groups) -> list:
    """The convolution's output shape; symbolic shapes (torch.compile with dynamic dims) cannot
    cross into C++, so they get the same rule as conv_output_size in csrc/common/conv_math.h."""
    if _static(input_shape, weight_shape):
        return _C.conv_output_shape(list(input_shape), list(weight_shape), stride, padding, dilation, groups)
    spatial_sizes = [(i + 2 * p - d * (k - 1) - 1) // s + 1
                     for i, k, s, p, d in zip(input_shape[2:], weight_shape[2:], stride, padding, dilation)]
    return [input_shape[0], weight_shape[0], *spatial_sizes]


def _transpose_shape(input_shape, weight_shape, stride, padding, output_padding, groups, dilation) -> list:
    """The transposed convolution's output shape (see _conv_shape for symbolic shapes)."""
    if _static(input_shape, weight_shape):
        return _C.conv_transpose_output_shape(list(input_shape), list(weight_shape), stride, padding,
                                              output_padding, groups, dilation)
    spatial_sizes = [(i - 1) * s - 2 * p + d * (k - 1) + o + 1 for i, k, s, p, o, d in
                     zip(input_shape[2:], weight_shape[2:], stride, padding, output_padding, dilation)]
    return [input_shape[0], weight_shape[1] * groups, *spatial_sizes]


def _torch_backward(grad_output, input, weight, stride, padding, dilation, transposed, output_padding, groups, mask):
    """aten's convolution_backward, for the calls that run torch's kernels (empty operands)."""
    return torch.ops.aten.convolution_backward(grad_output, input, weight, None, stride, padding, dilation, transposed,
                                               output_padding, groups, mask)


def _bias_backward(d: _Dimensionality) -> RegisteredOp:
    kernel_name = d.kernel("backward_bias")
    kernel = getattr(_C, kernel_name)
    axes = (0, *range(2, d.dims + 2))

    def impl(grad_output: Tensor) -> Tensor:
        if uses_torch_kernel(kernel_name, grad_output):
            return grad_output.sum(dim=axes)
        grad_bias = torch.empty(grad_output.shape[1], dtype=grad_output.dtype, device=grad_output.device)
        kernel(_backend.view(grad_output, "grad_output"), _backend.view(grad_bias, "grad_bias"),
               _backend.stream_of(grad_output))
        return grad_bias

    return RegisteredOp(f"conv{d.dims}d_backward_bias", impl, lambda grad_output: grad_output.new_empty(
        grad_output.shape[1]))


# ---- convolution -------------------------------------------------------------------------------


def _register_conv(d: _Dimensionality, bias_backward: RegisteredOp) -> DifferentiableOp:
    name = f"conv{d.dims}d"
    forward_kernel = getattr(_C, d.kernel("forward"))
    input_kernel = getattr(_C, d.kernel("backward_input"))
    weight_kernel = getattr(_C, d.kernel("backward_weight"))
    no_output_padding = [0] * d.dims

    def impl(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
             dilation: list[int], groups: int, fuse_relu: bool = False, prepared: Optional[Tensor] = None) -> Tensor:
        if uses_torch_kernel(d.kernel("forward"), input, weight):
            out = d.torch_conv(input, weight, bias, stride, padding, dilation, groups)
            return F.relu(out) if fuse_relu else out
        shape = _C.conv_output_shape(list(input.shape), list(weight.shape), stride, padding, dilation, groups)
        out = torch.empty(shape, dtype=input.dtype, device=input.device)
        ws = _tf32_workspace("forward", input, input.shape, weight.shape, stride, padding, dilation, groups)
        forward_kernel(_backend.view(input, "input"), _backend.view(weight, "weight"),
                       _backend.optional_view(bias, "bias"), _backend.view(out, "output"), stride, padding, dilation,
                       groups, fuse_relu, torch.backends.cudnn.allow_tf32, _backend.stream_of(input),
                       workspace=_backend.optional_view(ws, "workspace"),
                       prepared=_backend.optional_view(prepared, "prepared"))
        return out

    def backward_input_impl(grad_output: Tensor, weight: Tensor, input_shape: list[int], stride: list[int],
                            padding: list[int], dilation: list[int], groups: int) -> Tensor:
        if uses_torch_kernel(d.kernel("backward_input"), grad_output, weight):
            return _torch_backward(grad_output, grad_output.new_empty(input_shape), weight, stride, padding, dilation,
                                   False, no_output_padding, groups, [True, False, False])[0]
        grad_input = torch.empty(input_shape, dtype=grad_output.dtype, device=grad_output.device)
        ws = _tf32_workspace("backward_input", grad_output, input_shape, weight.shape, stride, padding, dilation,
                             groups)
        input_kernel(_backend.view(grad_output, "grad_output"), _backend.view(weight, "weight"),
                     _backend.view(grad_input, "grad_input"), stride, padding, dilation, groups,
                     torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                     workspace=_backend.optional_view(ws, "workspace"))
        return grad_input

    def backward_weight_impl(grad_output: Tensor, input: Tensor, weight_shape: list[int], stride: list[int],
                             padding: list[int], dilation: list[int], groups: int) -> Tensor:
        if uses_torch_kernel(d.kernel("backward_weight"), grad_output, input):
            return _torch_backward(grad_output, input, input.new_empty(weight_shape), stride, padding, dilation,
                                   False, no_output_padding, groups, [False, True, False])[1]
        grad_weight = torch.empty(weight_shape, dtype=grad_output.dtype, device=grad_output.device)
        ws = _tf32_workspace("backward_weight", grad_output, input.shape, weight_shape, stride, padding, dilation,
                             groups)
        weight_kernel(_backend.view(grad_output, "grad_output"), _backend.view(input, "input"),
                      _backend.view(grad_weight, "grad_weight"), stride, padding, dilation, groups,
                      torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                      workspace=_backend.optional_view(ws, "workspace"))
        return grad_weight

    def fake(input, weight, bias, stride, padding, dilation, groups, fuse_relu=False, prepared=None):
        return input.new_empty(_conv_shape(input.shape, weight.shape, stride, padding, dilation, groups))

    forward = RegisteredOp(name, impl, fake)
    backward_input = RegisteredOp(f"{name}_backward_input", backward_input_impl,
                                  lambda grad_output, weight, input_shape, *params: grad_output.new_empty(input_shape))
    backward_weight = RegisteredOp(f"{name}_backward_weight", backward_weight_impl,
                                   lambda grad_output, input, weight_shape, *params:
                                   grad_output.new_empty(weight_shape))

    def setup_context(ctx, inputs, output):
        input, weight, bias, stride, padding, dilation, groups, fuse_relu = inputs[:8]
        ctx.save_for_backward(input, weight, output if fuse_relu else None)
        ctx.params = (list(stride), list(padding), list(dilation), groups)
        ctx.fuse_relu = fuse_relu
        ctx.has_bias = bias is not None

    def gradients(ctx, grad):
        input, weight, output = ctx.saved_tensors
        direct = direct_backward_ok(grad, input, weight)
        if ctx.fuse_relu:  # the ReLU's mask from the saved output, in one pass (medkern::relu_backward)
            grad = _relu_backward.route[direct_backward_ok(grad, output)](grad, output)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = backward_input.route[direct](grad, weight, list(input.shape), *ctx.params)
        if ctx.needs_input_grad[1]:
            grad_weight = backward_weight.route[direct](grad, input, list(weight.shape), *ctx.params)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = bias_backward.route[direct](grad)
        return grad_input, grad_weight, grad_bias, None, None, None, None, None, None

    return DifferentiableOp(forward, setup_context, gradients, tensor_count=3)


# ---- transposed convolution ----------------------------------------------------------------------


def _register_conv_transpose(d: _Dimensionality, bias_backward: RegisteredOp) -> DifferentiableOp:
    name = f"conv_transpose{d.dims}d"
    forward_kernel = getattr(_C, d.kernel("forward", True))
    input_kernel = getattr(_C, d.kernel("backward_input", True))
    weight_kernel = getattr(_C, d.kernel("backward_weight", True))

    def impl(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
             output_padding: list[int], groups: int, dilation: list[int]) -> Tensor:
        if uses_torch_kernel(d.kernel("forward", True), input, weight):
            return d.torch_conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation)
        shape = _C.conv_transpose_output_shape(list(input.shape), list(weight.shape), stride, padding, output_padding,
                                               groups, dilation)
        out = torch.empty(shape, dtype=input.dtype, device=input.device)
        # the convolution from `out` to `input`: its input gradient is this op's forward
        ws = _tf32_workspace("backward_input", input, shape, weight.shape, stride, padding, dilation, groups)
        forward_kernel(_backend.view(input, "input"), _backend.view(weight, "weight"),
                       _backend.optional_view(bias, "bias"), _backend.view(out, "output"), stride, padding,
                       output_padding, groups, dilation, torch.backends.cudnn.allow_tf32, _backend.stream_of(input),
                       workspace=_backend.optional_view(ws, "workspace"))
        return out

    def backward_input_impl(grad_output: Tensor, weight: Tensor, input_shape: list[int], stride: list[int],
                            padding: list[int], output_padding: list[int], groups: int,
                            dilation: list[int]) -> Tensor:
        if uses_torch_kernel(d.kernel("backward_input", True), grad_output, weight):
            return _torch_backward(grad_output, grad_output.new_empty(input_shape), weight, stride, padding, dilation,
                                   True, output_padding, groups, [True, False, False])[0]
        grad_input = torch.empty(input_shape, dtype=grad_output.dtype, device=grad_output.device)
        ws = _tf32_workspace("forward", grad_output, grad_output.shape, weight.shape, stride, padding, dilation, groups)
        input_kernel(_backend.view(grad_output, "grad_output"), _backend.view(weight, "weight"),
                     _backend.view(grad_input, "grad_input"), stride, padding, output_padding, groups, dilation,
                     torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                     workspace=_backend.optional_view(ws, "workspace"))
        return grad_input

    def backward_weight_impl(grad_output: Tensor, input: Tensor, weight_shape: list[int], stride: list[int],
                             padding: list[int], output_padding: list[int], groups: int,
                             dilation: list[int]) -> Tensor:
        if uses_torch_kernel(d.kernel("backward_weight", True), grad_output, input):
            return _torch_backward(grad_output, input, input.new_empty(weight_shape), stride, padding, dilation,
                                   True, output_padding, groups, [False, True, False])[1]
        grad_weight = torch.empty(weight_shape, dtype=grad_output.dtype, device=grad_output.device)
        ws = _tf32_workspace("backward_weight", grad_output, grad_output.shape, weight_shape, stride, padding,
                             dilation, groups)
        weight_kernel(_backend.view(grad_output, "grad_output"), _backend.view(input, "input"),
                      _backend.view(grad_weight, "grad_weight"), stride, padding, output_padding, groups, dilation,
                      torch.backends.cudnn.allow_tf32, _backend.stream_of(grad_output),
                      workspace=_backend.optional_view(ws, "workspace"))
        return grad_weight

    def fake(input, weight, bias, stride, padding, output_padding, groups, dilation):
        return input.new_empty(_transpose_shape(input.shape, weight.shape, stride, padding, output_padding, groups,
                                                dilation))

    forward = RegisteredOp(name, impl, fake)
    backward_input = RegisteredOp(f"{name}_backward_input", backward_input_impl,
                                  lambda grad_output, weight, input_shape, *params: grad_output.new_empty(input_shape))
    backward_weight = RegisteredOp(f"{name}_backward_weight", backward_weight_impl,
                                   lambda grad_output, input, weight_shape, *params:
                                   grad_output.new_empty(weight_shape))

    def setup_context(ctx, inputs, output):
        input, weight, bias, stride, padding, output_padding, groups, dilation = inputs
        ctx.save_for_backward(input, weight)
        ctx.params = (list(stride), list(padding), list(output_padding), groups, list(dilation))
        ctx.has_bias = bias is not None

    def gradients(ctx, grad):
        input, weight = ctx.saved_tensors
        direct = direct_backward_ok(grad, input, weight)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = backward_input.route[direct](grad, weight, list(input.shape), *ctx.params)
        if ctx.needs_input_grad[1]:
            grad_weight = backward_weight.route[direct](grad, input, list(weight.shape), *ctx.params)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = bias_backward.route[direct](grad)
        return grad_input, grad_weight, grad_bias, None, None, None, None, None, None

    return DifferentiableOp(forward, setup_context, gradients, tensor_count=3)


_BIAS_BACKWARD = {2: _bias_backward(_2D), 3: _bias_backward(_3D)}
_CONV = {d.dims: _register_conv(d, _BIAS_BACKWARD[d.dims]) for d in (_2D, _3D)}
_CONV_TRANSPOSE = {d.dims: _register_conv_transpose(d, _BIAS_BACKWARD[d.dims]) for d in (_2D, _3D)}


# ---- the functional wrappers -----------------------------------------------------------------------


def _weight_rank(weight: Tensor, dims: int) -> None:
    if not isinstance(weight, Tensor) or weight.dim() != dims + 2:
        layout = "(K, C/groups, R, S)" if dims == 2 else "(K, C/groups, T, R, S)"
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"argument 'weight' must be {dims + 2}-D {layout}, got shape {shape}")


def _resolve_padding(dims: int, input: Tensor, weight: Tensor, padding, stride: list[int], dilation: list[int]):
    """Maps padding (int, tuple, 'same', 'valid') to (input, symmetric padding per axis), padding
    the input itself only for 'same' with an odd total (torch puts the extra row at the end)."""
    if not isinstance(padding, str):
        return input, spatial(padding, "padding", dims)
    if padding == "valid":
        return input, [0] * dims
    if padding != "same":
        raise ValueError(f"argument 'padding' must be an int, a tuple, 'same' or 'valid', got '{padding}'")
    if any(s != 1 for s in stride):
        raise ValueError("argument 'padding'='same' is not supported for strided convolutions (as in torch)")
    _weight_rank(weight, dims)
    totals = [dilation[i] * (weight.shape[2 + i] - 1) for i in range(dims)]
    if any(t % 2 for t in totals):
        extra = []
        for t in reversed(totals):  # F.pad lists the last axis first
            extra += [0, t % 2]
        input = F.pad(input, extra)
    return input, [t // 2 for t in totals]


def _conv(dims: int, input, weight, bias, stride, padding, dilation, groups, fuse_relu, prepared=None):
    check_devices(input, weight, bias)
    stride, dilation = spatial(stride, "stride", dims), spatial(dilation, "dilation", dims)
    input, padding = _resolve_padding(dims, input, weight, padding, stride, dilation)
    unbatched = input.dim() == dims + 1  # (C, [D,] H, W), as torch accepts
    if prepared is not None and not isinstance(prepared, Tensor):
        raise TypeError(f"argument 'prepared' must be a Tensor from prepare_conv_weight or None, "
                        f"got {type(prepared).__name__}")
    out = _CONV[dims](input.unsqueeze(0) if unbatched else input, weight, bias, stride, padding, dilation,
                      int(groups), fuse_relu, prepared)
    return out[0] if unbatched else out


def prepare_conv_weight(weight: Tensor, input_shape, stride=1, padding=0, dilation=1,
                        groups: int = 1) -> Optional[Tensor]:
    """The weights of a CPU convolution forward packed (or Winograd-transformed) once, for
    inference calls that pass them as ``prepared=`` instead of packing the weights per call;
    None where that layer's kernel has nothing to prepare (CUDA, other dtypes, the direct kernel).
    ``input_shape`` is the (batched) input's shape; the batch size does not matter. The buffer
    holds a header naming the shapes, path and SIMD level it was made for, and a forward it does
    not match ignores it. It is valid while ``weight`` is unchanged."""
    dims = weight.dim() - 2 if isinstance(weight, Tensor) else 0
    if dims not in (2, 3):
        _weight_rank(weight, 2)
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64):
        return None
    input_shape = [int(s) for s in input_shape]
    if len(input_shape) != dims + 2:
        raise ValueError(f"argument 'input_shape' must have {dims + 2} entries (N, C, spatial...), got {input_shape}")
    stride, dilation = spatial(stride, "stride", dims), spatial(dilation, "dilation", dims)
    padding = spatial(padding, "padding", dims)
    nbytes = _C.conv_prepared_weight_bytes(input_shape, list(weight.shape), stride, padding, dilation, int(groups),
                                           _backend.DTYPE_CODES[_backend._torch_dtype_name(weight.dtype)])
    if nbytes == 0:
        return None
    prepared = torch.empty(nbytes, dtype=torch.uint8)
    _C.conv_prepare_weight(_backend.view(weight, "weight"), input_shape, stride, padding, dilation, int(groups),
                           _backend.view(prepared, "prepared"))
    return prepared


def _conv_transpose(dims: int, input, weight, bias, stride, padding, output_padding, groups, dilation):
    check_devices(input, weight, bias)
    unbatched = input.dim() == dims + 1
    out = _CONV_TRANSPOSE[dims](input.unsqueeze(0) if unbatched else input, weight, bias,
                                spatial(stride, "stride", dims), spatial(padding, "padding", dims),
                                spatial(output_padding, "output_padding", dims), int(groups),
                                spatial(dilation, "dilation", dims))
    return out[0] if unbatched else out


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
           padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1, *,
           prepared: Optional[Tensor] = None) -> Tensor:
    """``torch.nn.functional.conv2d`` on medkern's kernels (NCHW, float32/float64)."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, False, prepared)


def conv2d_relu(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
                padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1, *,
                prepared: Optional[Tensor] = None) -> Tensor:
    """``relu(conv2d(...))`` in one pass: the ReLU is applied in the GEMM's epilogue."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, True, prepared)


def conv3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntTuple = 1,
           padding: Union[IntTuple, str] = 0, dilation: IntTuple = 1, groups: int = 1, *,
           prepared: Optional[Tensor] = None) -> Tensor:
    """``torch.nn.functional.conv3d`` on medkern's kernels (NCDHW or unbatched CDHW, float32/float64)."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, False, prepared)


def conv3d_relu(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntTuple = 1,
                padding: Union[IntTuple, str] = 0, dilation: IntTuple = 1, groups: int = 1, *,
                prepared: Optional[Tensor] = None) -> Tensor:
    """``relu(conv3d(...))`` in one pass: the ReLU is applied in the GEMM's epilogue."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, True, prepared)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
                     padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                     dilation: IntPair = 1) -> Tensor:
    """``torch.nn.functional.conv_transpose2d`` on medkern's convolution kernels; weight
    (C_in, C_out/groups, R, S)."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntTuple = 1,
                     padding: IntTuple = 0, output_padding: IntTuple = 0, groups: int = 1,
                     dilation: IntTuple = 1) -> Tensor:
    """``torch.nn.functional.conv_transpose3d`` on medkern's convolution kernels; weight
    (C_in, C_out/groups, T, R, S)."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation)
