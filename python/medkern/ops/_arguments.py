"""Argument normalisation shared by the op families: torch.nn.functional accepts an int or a
pair for each spatial parameter; the custom ops take explicit (h, w) lists."""
from __future__ import annotations

from typing import Sequence, Union

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
