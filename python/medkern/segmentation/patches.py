"""Training data for segmentation: cases held in memory (per-case z-scored images, label maps),
the patch size planned from the data (the median shape rounded up to the network's size divisor,
as nnU-Net plans it), and patches drawn with foreground oversampling. Every draw is keyed by
(seed, epoch, index), so an epoch's batches can be replayed exactly."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

__all__ = ["CaseArrays", "prepare_case", "plan_patch", "PatchSampler", "zscore"]


@dataclasses.dataclass
class CaseArrays:
    name: str
    image: np.ndarray          # (C, *spatial) float32, z-scored per channel
    label: np.ndarray | None   # (*spatial) uint8 class indices
    spacing: tuple
    foreground: list           # per class 1..K-1: (M, dims) int32 voxel coordinates (a sample of them)


def zscore(image: np.ndarray) -> np.ndarray:
    """Per-channel (x - mean) / std over the whole case, float32 (std 0 -> 1)."""
    x = image.astype(np.float32, copy=True)
    for c in range(x.shape[0]):
        mean, std = float(x[c].mean()), float(x[c].std())
        x[c] -= mean
        x[c] /= std if std > 0 else 1.0
    return x


def prepare_case(name: str, image: np.ndarray, label: np.ndarray | None, spacing, num_classes: int,
                 max_locations: int = 10000, seed: int = 0) -> CaseArrays:
    """``image`` (*spatial) or (C, *spatial) in stored values -> z-scored (C, *spatial) float32;
    foreground coordinates of each class sampled (at most ``max_locations``) for oversampling."""
    image = np.asarray(image)
    dims = len(spacing)
    if image.ndim == dims:
        image = image[None]
    if image.ndim != dims + 1:
        raise ValueError(f"{name}: image shape {image.shape} does not match {dims}-D spacing {tuple(spacing)}")
    foreground = []
    if label is not None:
        label = np.asarray(label)
        if label.shape != image.shape[1:]:
            raise ValueError(f"{name}: label shape {label.shape} differs from the image's {image.shape[1:]}")
        if label.size and int(label.max()) >= num_classes:
            raise ValueError(f"{name}: label holds class {int(label.max())} but the task has {num_classes} classes")
        label = label.astype(np.uint8)
        rng = np.random.default_rng([seed, len(name)])
        for c in range(1, num_classes):
            where = np.argwhere(label == c).astype(np.int32)
            if len(where) > max_locations:
                where = where[rng.choice(len(where), max_locations, replace=False)]
            foreground.append(where)
    return CaseArrays(name, zscore(image), label, tuple(float(s) for s in spacing), foreground)


def plan_patch(shapes: Sequence[Sequence[int]], divisor: Sequence[int], limit: Sequence[int] | None = None) -> tuple:
    """The median of the cases' spatial shapes, rounded up to multiples of ``divisor`` per axis
    (and capped at ``limit`` rounded down to the divisor)."""
    if not shapes:
        raise ValueError("argument 'shapes' is empty: no cases to plan a patch from")
    median = np.median(np.asarray([tuple(s) for s in shapes], dtype=np.float64), axis=0)
    patch = [int(math.ceil(m / d) * d) for m, d in zip(median, divisor)]
    if limit is not None:
        patch = [min(p, max(d, (int(lim) // d) * d)) for p, d, lim in zip(patch, divisor, limit)]
    return tuple(patch)


def _crop(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill) -> np.ndarray:
    """array[..., start:start+size] with ``fill`` where the window leaves the array."""
    spatial = array.shape[-len(size):]
    out = np.full(array.shape[:-len(size)] + tuple(size), fill, dtype=array.dtype)
    src, dst = [], []
    for s, n, total in zip(start, size, spatial):
        lo, hi = max(s, 0), min(s + n, total)
        src.append(slice(lo, max(lo, hi)))
        dst.append(slice(lo - s, lo - s + max(0, hi - lo)))
    lead = (slice(None),) * (array.ndim - len(size))
    out[lead + tuple(dst)] = array[lead + tuple(src)]
    return out


class PatchSampler:
    """Draws (image patch (C, *patch), label patch (*patch)) pairs: sample ``index`` of epoch
    ``epoch`` picks a case uniformly and, with probability ``foreground_fraction``, centres the
    patch on a voxel of a random class present in the case (else anywhere, the patch allowed to
    hang over the border by up to half its size, padded with zeros / background)."""

    def __init__(self, cases: Sequence[CaseArrays], patch: Sequence[int], foreground_fraction: float = 0.33,
                 seed: int = 0):
        if not cases:
            raise ValueError("argument 'cases' is empty")
        if not 0.0 <= foreground_fraction <= 1.0:
            raise ValueError(f"argument 'foreground_fraction' must be in [0, 1], got {foreground_fraction}")
        self.cases, self.patch = list(cases), tuple(int(p) for p in patch)
        self.foreground_fraction, self.seed = float(foreground_fraction), int(seed)

    def draw(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        case = self.cases[int(rng.integers(len(self.cases)))]
        spatial = case.image.shape[1:]
        present = [c for c in case.foreground if len(c)]
        if present and rng.random() < self.foreground_fraction:
            where = present[int(rng.integers(len(present)))]
            centre = where[int(rng.integers(len(where)))]
            start = [int(c) - p // 2 + int(rng.integers(-(p // 4), p // 4 + 1)) for c, p in zip(centre, self.patch)]
            start = [min(max(s, -(p // 2)), n - p + p // 2) if n >= p else min(max(s, n - p), 0)
                     for s, p, n in zip(start, self.patch, spatial)]
        else:
            start = [int(rng.integers(-(p // 2), n - p + p // 2 + 1)) if n >= p else int(rng.integers(n - p, 1))
                     for p, n in zip(self.patch, spatial)]
        image = _crop(case.image, start, self.patch, 0.0)
        label = _crop(case.label, start, self.patch, 0)
        return image, label

    def batch(self, epoch: int, first_index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.draw(epoch, first_index + k) for k in range(size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
