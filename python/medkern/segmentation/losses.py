"""Segmentation loss: cross-entropy plus soft Dice over the foreground classes (nnU-Net's
"DC_and_CE", batch Dice), with deep-supervision weights halving per level."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .metrics import soft_dice_score

__all__ = ["DiceCELoss", "deep_supervision_weights"]


class DiceCELoss(torch.nn.Module):
    """``loss(logits (N, K, *spatial), target (N, *spatial) int64)`` = CE + (1 - mean foreground
    soft Dice). With a list of logits (deep supervision) each level is compared with the target
    downsampled by nearest neighbour and weighted by ``deep_supervision_weights``."""

    def __init__(self, num_classes: int, dice_weight: float = 1.0, ce_weight: float = 1.0):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"argument 'num_classes' must be >= 2, got {num_classes}")
        self.num_classes, self.dice_weight, self.ce_weight = num_classes, dice_weight, ce_weight

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"argument 'logits' has {logits.shape[1]} channels, expected {self.num_classes}")
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"argument 'target': shape {tuple(target.shape)} does not match logits "
                             f"{tuple(logits.shape)} without the class dimension")
        target = target.long()
        ce = F.cross_entropy(logits, target)
        probabilities = logits.float().softmax(1)
        onehot = F.one_hot(target, self.num_classes).movedim(-1, 1).to(probabilities.dtype)
        dice = soft_dice_score(probabilities, onehot)[1:].mean()
        return self.ce_weight * ce + self.dice_weight * (1 - dice)

    def forward(self, logits, target: torch.Tensor) -> torch.Tensor:
        if isinstance(logits, (list, tuple)):
            weights = deep_supervision_weights(len(logits))
            total = 0
            for w, level in zip(weights, logits):
                t = target if level.shape[2:] == target.shape[1:] else F.interpolate(
                    target[:, None].float(), size=level.shape[2:], mode="nearest")[:, 0].long()
                total = total + w * self.single(level, t)
            return total
        return self.single(logits, target)


def deep_supervision_weights(levels: int) -> list[float]:
    """1, 1/2, 1/4, ... normalised to sum 1, the lowest level left out when there are several
    (as nnU-Net)."""
    w = [0.5 ** i for i in range(levels)]
    if levels > 1:
        w[-1] = 0.0
    s = sum(w)
    return [v / s for v in w]
