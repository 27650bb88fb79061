"""``medkern.nn.Linear``: ``torch.nn.Linear`` (same constructor, parameters, state_dict keys)
whose forward runs medkern's linear on the shared CPU GEMM."""
from __future__ import annotations

import torch

from .. import ops

__all__ = ["Linear"]


class Linear(torch.nn.Linear):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.linear(input, self.weight, self.bias)
