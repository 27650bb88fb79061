"""Sliding-window inference (nnU-Net's scheme): windows of the training patch size, a step of
(1 - overlap) x patch, Gaussian weighting (sigma = patch / 8) so window centres count more than
their borders, windows run in batches, optional mirroring over every spatial axis; the image is
padded to at least one patch and the result cropped back."""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["sliding_window", "gaussian_importance", "window_starts"]


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 0.125, device=None) -> torch.Tensor:
    """Product of per-axis Gaussians centred on the patch, max 1, no zeros."""
    weight = None
    for n in patch:
        x = torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2
        g = torch.exp(-0.5 * (x / max(n * sigma_scale, 1e-6)) ** 2)
        weight = g if weight is None else weight[..., None] * g
    weight = weight / weight.max()
    floor = weight[weight > 0].min()
    return torch.clamp(weight, min=float(floor)).float()


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Evenly spaced starts covering [0, size) with windows of ``patch`` and step at most
    (1 - overlap) * patch; the last window ends at ``size``."""
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    count = int(math.ceil((size - patch) / step)) + 1
    return [int(round(k * (size - patch) / (count - 1))) for k in range(count)]


@torch.inference_mode()
def sliding_window(model: torch.nn.Module, image, patch: Sequence[int], num_classes: int | None = None,
                   overlap: float = 0.5, batch_size: int = 4, mirror: bool | Sequence[int] = False,
                   gaussian: bool = True, device=None) -> torch.Tensor:
    """Averaged logits (K, *spatial) of ``model`` over ``image`` ((C, *spatial) tensor or array).
    ``mirror``: also average over mirror images, along every spatial axis (True) or along the
    given spatial axes (0-based or negative), every combination of them.
    ``model`` maps (N, C, *patch) to (N, K, *patch); it is run in eval mode on ``device``
    (default: the model's). Returns float32 on that device."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"argument 'overlap' must be in [0, 1), got {overlap}")
    if batch_size < 1:
        raise ValueError(f"argument 'batch_size' must be >= 1, got {batch_size}")
    params = next(model.parameters(), None)
    device = torch.device(device) if device is not None else (params.device if params is not None else
                                                              torch.device("cpu"))
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    patch = tuple(int(p) for p in patch)
    if x.dim() != len(patch) + 1:
        raise ValueError(f"argument 'image': expected (C, {len(patch)} spatial dims), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"argument 'image' is empty: shape {tuple(x.shape)}")
    x = x.to(device=device, dtype=torch.float32)
    spatial = tuple(x.shape[1:])
    dims = len(patch)
    if isinstance(mirror, bool):
        mirror_spatial = tuple(range(dims)) if mirror else ()
    else:
        mirror_spatial = tuple(sorted({int(a) % dims for a in mirror}))
        if any(not -dims <= int(a) < dims for a in mirror):
            raise ValueError(f"argument 'mirror': axes {tuple(mirror)} out of range for {dims} spatial dims")
    mirrored = tuple(2 + a for a in mirror_spatial)  # axes of the (N, C, *spatial) window batch
    pad = [max(0, p - n) for p, n in zip(patch, spatial)]
    if any(pad):  # centre the image in a zero border of at least one patch
        flat = []
        for p in reversed(pad):
            flat += [p // 2, p - p // 2]
        x = F.pad(x, flat)
    padded = tuple(x.shape[1:])
    starts = list(itertools.product(*(window_starts(n, p, overlap) for n, p in zip(padded, patch))))
    weight = gaussian_importance(patch, device=device) if gaussian else torch.ones(patch, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # inference: no autograd graph, no saved activations
            total = None
            norm = torch.zeros(padded, device=device)
            flips = [()] + [axes for r in range(1, len(mirrored) + 1) for axes in itertools.combinations(mirrored, r)]
            for b in range(0, len(starts), batch_size):
                chunk = starts[b:b + batch_size]
                windows = torch.stack([x[(slice(None),) + tuple(slice(s, s + p) for s, p in zip(st, patch))]
                                       for st in chunk])
                logits = None
                for axes in flips:
                    inp = windows.flip(axes) if axes else windows
                    out = model(inp)
                    out = out.flip(axes) if axes else out
                    logits = out.float() if logits is None else logits + out.float()
                logits = logits / len(flips)
                if total is None:
                    k = logits.shape[1]
                    if num_classes is not None and k != num_classes:
                        raise ValueError(f"argument 'model' gives {k} channels, expected num_classes={num_classes}")
                    total = torch.zeros((k,) + padded, device=device)
                for st, out in zip(chunk, logits):
                    region = tuple(slice(s, s + p) for s, p in zip(st, patch))
                    total[(slice(None),) + region] += out * weight
                    norm[region] += weight
    finally:
        model.train(was_training)
    total /= norm
    crop = tuple(slice(p // 2, p // 2 + n) for p, n in zip(pad, spatial))
    return total[(slice(None),) + crop]
