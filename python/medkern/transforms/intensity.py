"""Intensity transforms. Point-wise ones (Rescale, Window, Clip, Gamma) become a few ops of the
fused kernel applied to the source samples (csrc/common/intensity_math.h); GaussianNoise adds
Philox normals per output element; ZScore/MinMax/PercentileClip need per-image statistics and run
as a second pass (rules in csrc/common/statistics_math.h).

NaN policy: NaN propagates (a NaN input makes the value that reads it NaN; a NaN among an
image's statistics voxels makes its whole z-score/min-max/percentile-clip output NaN, as
np.percentile would return NaN bounds). ``Pipeline(check_finite=True)`` rejects it instead.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._backend import _C
from .base import Transform, check_positive

AFFINE, CLAMP, POWER, NOISE = 0, 1, 2, 3


class Rescale(Transform):
    """x * slope + intercept (DICOM RescaleSlope/RescaleIntercept: raw values -> HU for CT)."""

    def __init__(self, slope: float = 1.0, intercept: float = 0.0):
        for name, v in (("slope", slope), ("intercept", intercept)):
            if not isinstance(v, numbers.Real) or not np.isfinite(v):
                raise ValueError(f"argument '{name}' must be a finite number, got {v!r}")
        self.slope, self.intercept = float(slope), float(intercept)

    def ops(self):
        return [(AFFINE, self.slope, self.intercept, 0.0)]

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        return x * self.slope + self.intercept, spacing


class Window(Transform):
    """Window (level, width) to [0, 1]: clip((x - (level - width/2)) / width, 0, 1)."""

    def __init__(self, level: float, width: float):
        if not isinstance(level, numbers.Real) or not np.isfinite(level):
            raise ValueError(f"argument 'level' must be a finite number, got {level!r}")
        self.level, self.width = float(level), check_positive(width, "width")

    def ops(self):
        low = self.level - self.width / 2
        return [(AFFINE, 1.0 / self.width, -low / self.width, 0.0), (CLAMP, 0.0, 1.0, 0.0)]

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        low = self.level - self.width / 2
        return np.clip((x - low) / self.width, 0.0, 1.0), spacing


class Clip(Transform):
    """Clamp to [low, high] (NaN stays NaN)."""

    def __init__(self, low: float, high: float):
        if not (np.isfinite(low) and np.isfinite(high)) or low > high:
            raise ValueError(f"arguments 'low' and 'high' must be finite with low <= high, got ({low}, {high})")
        self.low, self.high = float(low), float(high)

    def ops(self):
        return [(CLAMP, self.low, self.high, 0.0)]

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        return np.clip(x, self.low, self.high), spacing


class Gamma(Transform):
    """max(x, 0) ** gamma (meant for [0, 1] data, e.g. after Window)."""

    def __init__(self, gamma: float):
        self.gamma = check_positive(gamma, "gamma")

    def ops(self):
        return [(POWER, self.gamma, 0.0, 0.0)]

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        return np.where(np.isnan(x), x, np.maximum(x, 0.0) ** self.gamma), spacing


class GaussianNoise(Transform):
    """x + std * N(0, 1); the normal of element e (flat index in its sample's (C, *spatial)
    output) is Philox draw e of (seed, sample index, noise stream = position in the pipeline)."""

    kind = "noise"

    def __init__(self, std: float):
        if not isinstance(std, numbers.Real) or not np.isfinite(std) or std < 0:
            raise ValueError(f"argument 'std' must be a finite number >= 0, got {std!r}")
        self.std = float(std)

    def ops(self, stream: int):
        return [(NOISE, self.std, 0.0, float(stream))]

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        per_sample = int(np.prod(x.shape[1:]))
        noise = np.stack([_C.philox_normal(int(seed), int(i), int(stream), per_sample) for i in indices])
        return x + self.std * noise.reshape(x.shape).astype(np.float64), spacing


class _Normalize(Transform):
    kind = "normalize"
    code = 0
    # the percentile arguments of _C.normalize_intensity (used by PercentileClip only)
    lower, upper, rescale = 0.0, 100.0, False

    def __init__(self, channel_wise: bool = False, eps: float = 0.0):
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"argument 'eps' must be a finite number >= 0, got {eps!r}")
        self.channel_wise, self.eps = bool(channel_wise), float(eps)

    def _groups(self, x):
        n, c = x.shape[:2]
        return x.reshape(n * c, -1) if self.channel_wise else x.reshape(n, -1)

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        groups = self._groups(x)
        if mask is None:
            m = np.ones_like(groups, dtype=bool)
        else:
            m = np.broadcast_to(np.asarray(mask).astype(bool), x.shape[:1] + (
                mask.shape[1] if mask.shape[1] == x.shape[1] else x.shape[1],) + x.shape[2:])
            m = self._groups(np.ascontiguousarray(m))
        out = np.empty_like(groups)
        for g in range(groups.shape[0]):
            out[g] = self._normalize_one(groups[g], groups[g][m[g]])
        return out.reshape(x.shape), spacing


class ZScore(_Normalize):
    """(x - mean) / (std + eps) per image (per sample over all channels, or per channel when
    channel_wise), population std; statistics over ``mask`` voxels when given (applied to all).
    A constant image gives 0; an empty mask leaves the image unchanged."""

    code = 0

    def _normalize_one(self, values, selected):
        if selected.size == 0:
            return values
        mean, std = selected.mean(), selected.std()
        denom = std + self.eps
        return (values - mean) / (denom if denom > 0 else 1.0)


class MinMax(_Normalize):
    """(x - min) / (max - min + eps) per image to [0, 1]; a constant image gives 0."""

    code = 1

    def _normalize_one(self, values, selected):
        if selected.size == 0:
            return values
        lo, hi = selected.min(), selected.max()
        rng = hi - lo + self.eps
        return (values - lo) / (rng if rng > 0 else 1.0)


def _check_percentile(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or not 0 <= value <= 100:
        raise ValueError(f"argument '{name}' must be a finite percentile in [0, 100], got {value!r}")
    return float(value)


class PercentileClip(_Normalize):
    """Clamp each image to [percentile(lower), percentile(upper)] of its values (numpy's default
    'linear' percentile, as ``np.percentile``), per sample over all channels or per (sample,
    channel) when channel_wise; statistics over ``mask`` voxels when given (the clip applies to
    all). ``rescale=True`` also maps [p_lo, p_hi] to [0, 1] (nnU-Net's CT clipping, MONAI's
    ScaleIntensityRangePercentiles); then a constant image gives 0. An empty mask leaves the
    image unchanged; a NaN among the statistics voxels makes the whole image NaN."""

    code = 2

    def __init__(self, lower: float = 0.5, upper: float = 99.5, channel_wise: bool = False, rescale: bool = False):
        super().__init__(channel_wise=channel_wise, eps=0.0)
        self.lower = _check_percentile(lower, "lower")
        self.upper = _check_percentile(upper, "upper")
        if not self.lower < self.upper:
            raise ValueError(f"argument 'upper' must be greater than 'lower' ({self.lower}), got {self.upper}")
        self.rescale = bool(rescale)

    def _normalize_one(self, values, selected):
        if selected.size == 0:
            return values
        lo, hi = np.percentile(selected, [self.lower, self.upper])
        out = np.clip(values, lo, hi)
        if self.rescale:
            rng = hi - lo
            out = (out - lo) / (rng if rng > 0 else 1.0)
        return out
