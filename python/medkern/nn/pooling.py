"""MaxPool2d and AvgPool2d: torch.nn's modules (same constructor arguments, no state) whose
forward runs medkern's pooling kernels."""
from __future__ import annotations

import torch

from ..ops.pooling import avg_pool2d, max_pool2d

__all__ = ["MaxPool2d", "AvgPool2d"]


class MaxPool2d(torch.nn.MaxPool2d):
    def forward(self, input: torch.Tensor):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool2d(torch.nn.AvgPool2d):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)
