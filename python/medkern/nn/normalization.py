"""BatchNorm2d: torch.nn.BatchNorm2d (same constructor, parameters, buffers and state_dict keys,
incl. num_batches_tracked) whose forward runs medkern's batch-norm kernels. The running-stat
bookkeeping follows torch's _BatchNorm: momentum=None means a cumulative average over the
batches seen, and buffers are used/updated only when tracked."""
from __future__ import annotations

import torch

from ..ops.batch_norm import batch_norm

__all__ = ["BatchNorm2d"]


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # batch statistics in training, and in eval when there are no running buffers
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        # buffers are passed only when they are read (eval) or updated (tracked training)
        pass_buffers = not self.training or self.track_running_stats
        return batch_norm(input, self.running_mean if pass_buffers else None,
                          self.running_var if pass_buffers else None, self.weight, self.bias,
                          use_batch_stats, factor, self.eps)
