"""MaxPool2d/3d and AvgPool2d/3d: torch.nn's modules (same constructor arguments, no state) whose
forward runs medkern's pooling kernels; one forward per pooling kind serves both dimensionalities."""
from __future__ import annotations

from typing import Callable

import torch

from ..ops.pooling import avg_pool2d, avg_pool3d, max_pool2d, max_pool3d

__all__ = ["MaxPool2d", "AvgPool2d", "MaxPool3d", "AvgPool3d"]


class _MaxPoolForward:
    _pool: Callable  # medkern's functional op of the module's dimensionality

    def forward(self, input: torch.Tensor):
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class _AvgPoolForward:
    _pool: Callable

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, self.divisor_override)


class MaxPool2d(_MaxPoolForward, torch.nn.MaxPool2d):
    _pool = staticmethod(max_pool2d)


class AvgPool2d(_AvgPoolForward, torch.nn.AvgPool2d):
    _pool = staticmethod(avg_pool2d)


class MaxPool3d(_MaxPoolForward, torch.nn.MaxPool3d):
    _pool = staticmethod(max_pool3d)


class AvgPool3d(_AvgPoolForward, torch.nn.AvgPool3d):
    _pool = staticmethod(avg_pool3d)
