"""ReLU: torch.nn.ReLU (same constructor, inplace flag) running medkern's relu kernel."""
from __future__ import annotations

import torch

from ..ops.activation import relu

__all__ = ["ReLU"]


class ReLU(torch.nn.ReLU):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return relu(input, inplace=self.inplace)
