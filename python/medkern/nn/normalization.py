"""Normalization layers with torch.nn's constructors, parameters, buffers and state_dict keys
(incl. num_batches_tracked), running medkern's kernels: BatchNorm2d / 3d, InstanceNorm2d / 3d and
GroupNorm. The running-stat bookkeeping follows torch's: momentum=None means a cumulative average
over the batches seen, and buffers are used/updated only when tracked.

Each layer can apply ReLU or LeakyReLU in its own pass (forward and backward): ``NormAct`` is the
base of the fused variants (BatchNormAct2d, ..., GroupNormAct), which are the same layers with an
``activation`` attribute. ``fuse_norm_act(norm, activation)`` turns a norm layer followed by a
ReLU / LeakyReLU module into one, in place: same parameters, buffers and state_dict keys, so
checkpoints of the unfused model load unchanged (the activation module has no state).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..ops.activation import leaky_relu
from ..ops.batch_norm import batch_norm
from ..ops.group_norm import group_norm, instance_norm
from .fusion import passes_through

__all__ = ["BatchNorm2d", "BatchNorm3d", "InstanceNorm2d", "InstanceNorm3d", "GroupNorm", "NormAct",
           "BatchNormAct2d", "BatchNormAct3d", "InstanceNormAct2d", "InstanceNormAct3d", "GroupNormAct",
           "fuse_norm_act"]


class _Activation:
    # no activation unless fused (NormAct); class attributes, so plain layers carry no extra state
    activation: Optional[str] = None
    negative_slope: float = 0.01


class _BatchNorm(_Activation):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if passes_through(self):  # folded into the convolution before it (eval mode, see fusion.py)
            return leaky_relu(input, self.negative_slope) if self.activation == "leaky_relu" else input
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
                          use_batch_stats, factor, self.eps, activation=self.activation,
                          negative_slope=self.negative_slope)


class _InstanceNorm(_Activation):
    def _apply_instance_norm(self, input: torch.Tensor) -> torch.Tensor:  # torch's _InstanceNorm.forward calls it
        return instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                             self.training or not self.track_running_stats,
                             self.momentum if self.momentum is not None else 0.0, self.eps,
                             activation=self.activation, negative_slope=self.negative_slope)


class BatchNorm2d(_BatchNorm, torch.nn.BatchNorm2d):
    pass


class BatchNorm3d(_BatchNorm, torch.nn.BatchNorm3d):
    pass


class InstanceNorm2d(_InstanceNorm, torch.nn.InstanceNorm2d):
    pass


class InstanceNorm3d(_InstanceNorm, torch.nn.InstanceNorm3d):
    pass


class GroupNorm(_Activation, torch.nn.GroupNorm):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps, activation=self.activation,
                          negative_slope=self.negative_slope)


class NormAct(_Activation):
    """A normalization layer that applies ``activation`` ('relu' or 'leaky_relu', with
    ``negative_slope``) in the same pass; made by ``fuse_norm_act``."""

    def extra_repr(self) -> str:
        slope = f", negative_slope={self.negative_slope}" if self.activation == "leaky_relu" else ""
        return f"{super().extra_repr()}, activation={self.activation}{slope}"


class BatchNormAct2d(NormAct, BatchNorm2d):
    pass


class BatchNormAct3d(NormAct, BatchNorm3d):
    pass


class InstanceNormAct2d(NormAct, InstanceNorm2d):
    pass


class InstanceNormAct3d(NormAct, InstanceNorm3d):
    pass


class GroupNormAct(NormAct, GroupNorm):
    pass


# torch's layer -> medkern's -> medkern's fused
MEDKERN_NORMS = {torch.nn.BatchNorm2d: BatchNorm2d, torch.nn.BatchNorm3d: BatchNorm3d,
                 torch.nn.InstanceNorm2d: InstanceNorm2d, torch.nn.InstanceNorm3d: InstanceNorm3d,
                 torch.nn.GroupNorm: GroupNorm}
FUSED_NORMS = {BatchNorm2d: BatchNormAct2d, BatchNorm3d: BatchNormAct3d, InstanceNorm2d: InstanceNormAct2d,
               InstanceNorm3d: InstanceNormAct3d, GroupNorm: GroupNormAct}


def fusable_activation(module: torch.nn.Module) -> Optional[tuple[str, float]]:
    """(activation, negative_slope) when ``module`` is exactly a ReLU or LeakyReLU (torch's or
    medkern's) without hooks, else None."""
    from .activation import LeakyReLU, ReLU
    if module._forward_hooks or module._forward_pre_hooks:
        return None
    if type(module) in (torch.nn.ReLU, ReLU):
        return "relu", 0.01
    if type(module) in (torch.nn.LeakyReLU, LeakyReLU):
        return "leaky_relu", float(module.negative_slope)
    return None


def fuse_norm_act(norm: torch.nn.Module, activation: torch.nn.Module) -> NormAct:
    """Make ``norm`` (a BatchNorm2d/3d, InstanceNorm2d/3d or GroupNorm, torch's or medkern's)
    apply ``activation`` (a ReLU or LeakyReLU module) in its own pass, in place, and return it.
    Replace the activation module by ``torch.nn.Identity()`` where it was called."""
    base = MEDKERN_NORMS.get(type(norm), type(norm))
    if base not in FUSED_NORMS:
        raise TypeError(f"argument 'norm' must be a BatchNorm2d/3d, InstanceNorm2d/3d or GroupNorm, "
                        f"got {type(norm).__name__}")
    fused = fusable_activation(activation)
    if fused is None:
        raise TypeError(f"argument 'activation' must be a ReLU or LeakyReLU module without hooks, "
                        f"got {type(activation).__name__}")
    norm.__class__ = FUSED_NORMS[base]
    norm.activation, norm.negative_slope = fused
    return norm
