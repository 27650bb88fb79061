"""ReLU and LeakyReLU: torch.nn.ReLU / LeakyReLU (same constructors, inplace flag) running
medkern's kernels."""
from __future__ import annotations

import torch

from ..ops.activation import leaky_relu, relu

__all__ = ["ReLU", "LeakyReLU"]


class ReLU(torch.nn.ReLU):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return relu(input, inplace=self.inplace)


class LeakyReLU(torch.nn.LeakyReLU):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return leaky_relu(input, self.negative_slope, self.inplace)
