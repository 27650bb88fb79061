"""Argument normalisation and checks shared by the op families: torch.nn.functional accepts an
int or one value per axis for each spatial parameter, the custom ops take explicit (h, w) or
(d, h, w) lists; operands must share the input's device before any shape rule reads them."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import Size, Tensor

IntPair = Union[int, Sequence[int]]
IntTuple = Union[int, Sequence[int]]  # an int or one value per spatial axis
_AXES = {2: "a pair (h, w)", 3: "a triple (d, h, w)"}


def spatial(value: IntTuple, name: str, dims: int) -> list[int]:
    """One value per spatial axis ((h, w) or (d, h, w)) from an int or a 1- or ``dims``-sequence;
    ValueError naming ``name`` otherwise."""
    if isinstance(value, int):
        return [value] * dims
    values = [int(v) for v in value]
    if len(values) == 1:
        return values * dims
    if len(values) != dims:
        raise ValueError(f"argument '{name}' must be an int or {_AXES[dims]}, got {value}")
    return values


def pair(value: IntPair, name: str) -> list[int]:
    """(h, w) from an int or a 1- or 2-sequence; ValueError naming ``name`` otherwise."""
    return spatial(value, name, 2)


def check_devices(input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> None:
    """TypeError unless ``input`` is a tensor; ValueError naming 'weight' or 'bias' when one is on
    another device than ``input``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"argument 'input' must be a torch.Tensor, got {type(input).__name__}")
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.device != input.device:
            raise ValueError(f"argument '{name}' is on {tensor.device} but 'input' is on {input.device}; "
                             f"they must be on the same device")


def check_grad_output_shape(grad_output: Tensor, expected: Size) -> None:
    """ValueError unless ``grad_output`` has the forward output's shape ``expected``. medkern's
    kernels check it in C++; this guards the calls that run torch's backward kernels instead
    (empty operands, CUDA fallback), some of which crash on a mismatch rather than raise."""
    if grad_output.shape != expected:
        raise ValueError(f"argument 'grad_output' has shape {tuple(grad_output.shape)}; expected {tuple(expected)}, "
                         f"the shape of the forward's output")
