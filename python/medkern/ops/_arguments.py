"""Argument normalisation and checks shared by the op families: torch.nn.functional accepts an
int or a pair for each spatial parameter, the custom ops take explicit (h, w) lists; operands
must share the input's device before any shape rule reads them."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import Size, Tensor

IntPair = Union[int, Sequence[int]]


def pair(value: IntPair, name: str) -> list[int]:
    """(h, w) from an int or a 1- or 2-sequence; ValueError naming ``name`` otherwise."""
    if isinstance(value, int):
        return [value, value]
    values = [int(v) for v in value]
    if len(values) == 1:
        return values * 2
    if len(values) != 2:
        raise ValueError(f"argument '{name}' must be an int or a pair (h, w), got {value}")
    return values


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
