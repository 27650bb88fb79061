"""Intensity transforms. Point-wise ones (Rescale, Window, Clip, Gamma, RandomGamma,
RandomIntensity) become a few ops of the fused kernel applied to the source samples
(csrc/common/intensity_math.h); GaussianNoise adds Philox normals and BiasField a smooth
multiplicative field per output element ('post' kind); ZScore/MinMax/PercentileClip need
per-image statistics and run as a second pass (rules in csrc/common/statistics_math.h).

Random transforms draw their parameters per sample from Philox keyed by (seed, sample index,
position in the pipeline): ``sample_ops(u, position)`` turns one sample's draws ``u`` into its
op list and the parameters reported by ``pipeline(..., return_params=True)``; the reference path
draws the same ``u``.

NaN policy: NaN propagates (a NaN input makes the value that reads it NaN; a NaN among an
image's statistics voxels makes its whole z-score/min-max/percentile-clip output NaN, as
np.percentile would return NaN bounds). ``Pipeline(check_finite=True)`` rejects it instead.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._backend import _C
from .base import Kind, Transform, check_positive, draw_uniform

AFFINE, CLAMP, POWER, NOISE, BIAS_TERM, BIAS_APPLY = (
    _C.INTENSITY_OP_CODES[name] for name in ("affine", "clamp", "power", "noise", "bias_term", "bias_apply"))


def _range(value, name: str, low_limit: float = -np.inf, positive: bool = False) -> tuple:
    """A (low, high) range; a single number v means (v, v)."""
    lo, hi = (value, value) if isinstance(value, numbers.Real) else tuple(value)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or lo < low_limit or (positive and lo <= 0):
        bound = "> 0" if positive else f">= {low_limit}" if np.isfinite(low_limit) else "finite"
        raise ValueError(f"argument '{name}' must be a number or a (low, high) range with low <= high, "
                         f"values {bound}, got {value!r}")
    return float(lo), float(hi)


class RandomIntensityTransform(Transform):
    """Base of the transforms whose ops differ per sample (``draws`` Philox uniforms each)."""

    def sample_ops(self, u: np.ndarray, position: int, dims: int):
        raise NotImplementedError

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        u = draw_uniform(seed, indices, stream, self.draws)
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = self.reference_one(x[i], u[i], stream)
        return out, spacing


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


class RandomGamma(RandomIntensityTransform):
    """max(x, 0) ** g with g drawn per sample, log-uniformly in ``gamma`` = (low, high), applied
    with probability p (TorchIO's RandomGamma draws log(g) uniformly too). For [0, 1] data."""

    draws = 2

    def __init__(self, gamma=(0.7, 1.5), p: float = 1.0):
        self.gamma = _range(gamma, "gamma", positive=True)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"argument 'p' must be in [0, 1], got {p!r}")
        self.p = float(p)

    def _draw(self, u):
        if u[0] >= self.p:
            return 1.0
        lo, hi = np.log(self.gamma[0]), np.log(self.gamma[1])
        return float(np.exp(lo + (hi - lo) * u[1]))

    def sample_ops(self, u, position, dims):
        g = self._draw(u)
        return [(POWER, g, 0.0, 0.0)], {"gamma": g}

    def reference_one(self, x, u, stream):
        return np.where(np.isnan(x), x, np.maximum(x, 0.0) ** self._draw(u))


class RandomIntensity(RandomIntensityTransform):
    """x * s + t with s drawn uniformly in ``scale`` and t in ``shift`` per sample (MONAI's
    RandScaleIntensity / RandShiftIntensity in one step), applied with probability p."""

    draws = 3

    def __init__(self, scale=(0.9, 1.1), shift=(-0.1, 0.1), p: float = 1.0):
        self.scale, self.shift = _range(scale, "scale"), _range(shift, "shift")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"argument 'p' must be in [0, 1], got {p!r}")
        self.p = float(p)

    def _draw(self, u):
        if u[0] >= self.p:
            return 1.0, 0.0
        return (self.scale[0] + (self.scale[1] - self.scale[0]) * u[1],
                self.shift[0] + (self.shift[1] - self.shift[0]) * u[2])

    def sample_ops(self, u, position, dims):
        s, t = self._draw(u)
        return [(AFFINE, s, t, 0.0)], {"scale": s, "shift": t}

    def reference_one(self, x, u, stream):
        s, t = self._draw(u)
        return x * s + t


class GaussianNoise(RandomIntensityTransform):
    """x + std * N(0, 1), per output element. ``std`` is a number, or a (low, high) range from
    which each sample draws its own std uniformly. The normal of element e (flat index in its
    sample's (C, *spatial) output) is Philox draw e of (seed, sample index, noise stream =
    position in the pipeline), the same on CPU and GPU."""

    kind = Kind.POST
    draws = 1

    def __init__(self, std):
        self.std = std if isinstance(std, numbers.Real) else tuple(std)
        self._range = _range(std, "std", low_limit=0.0)
        self.draws = 1 if self._range[1] > self._range[0] else 0  # a fixed std draws nothing

    def _draw(self, u):
        lo, hi = self._range
        return lo + (hi - lo) * u[0] if hi > lo else lo

    def sample_ops(self, u, position, dims):
        std = self._draw(u)
        return [(NOISE, std, 0.0, float(position))], ({"std": std} if self.draws else None)

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        u = draw_uniform(seed, indices, stream, self.draws) if self.draws else [None] * len(indices)
        per_sample = int(np.prod(x.shape[1:]))
        out = np.empty_like(x)
        for k, i in enumerate(indices):
            noise = _C.philox_normal(int(seed), int(i), int(stream), per_sample).astype(np.float64)
            out[k] = x[k] + self._draw(u[k]) * noise.reshape(x.shape[1:])
        return out, spacing


def bias_exponents(dims: int, order: int) -> list:
    """(ez, ey, ex) of the polynomial terms of total degree <= order (ez = 0 in 2D)."""
    terms = []
    for total in range(order + 1):
        for ez in range(total + 1 if dims == 3 else 1):
            for ey in range(total - ez + 1):
                terms.append((ez, ey, total - ez - ey))
    return terms


class BiasField(RandomIntensityTransform):
    """Multiply by a smooth random field exp(sum c_k * z^a y^b x^c), the sum over the
    monomials of total degree <= ``order`` in the output coordinates scaled to [-1, 1] per axis;
    each coefficient is drawn uniformly in [-coefficients, coefficients] per sample (TorchIO's
    RandomBiasField model of MR coil inhomogeneity). Applied to the value at each output element
    ('post' kind: after the stage's geometry), with probability p."""

    kind = Kind.POST
    MAX_ORDER = _C.BIAS_FIELD_MAX_ORDER

    def __init__(self, coefficients: float = 0.5, order: int = 3, p: float = 1.0):
        if not isinstance(coefficients, numbers.Real) or not np.isfinite(coefficients) or coefficients < 0:
            raise ValueError(f"argument 'coefficients' must be a finite number >= 0, got {coefficients!r}")
        if not isinstance(order, numbers.Integral) or not 0 <= order <= self.MAX_ORDER:
            raise ValueError(f"argument 'order' must be an integer in [0, {self.MAX_ORDER}], got {order!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"argument 'p' must be in [0, 1], got {p!r}")
        self.coefficients, self.order, self.p = float(coefficients), int(order), float(p)
        self.draws = 1 + len(bias_exponents(3, self.order))

    def _terms(self, u, dims):
        exps = bias_exponents(dims, self.order)
        applied = u[0] < self.p
        coeffs = [((2 * u[1 + k] - 1) * self.coefficients if applied else 0.0) for k in range(len(exps))]
        return exps, coeffs

    def sample_ops(self, u, position, dims):
        exps, coeffs = self._terms(u, dims)
        weights = _C.BIAS_FIELD_EXPONENT_WEIGHTS  # (ez, ey, ex) packed as the kernel unpacks them
        ops = [(BIAS_TERM, c, float(sum(w * k for w, k in zip(weights, e))), 0.0) for c, e in zip(coeffs, exps)]
        return ops + [(BIAS_APPLY, 0.0, 0.0, 0.0)], {"coefficients": coeffs, "exponents": exps}

    def reference_one(self, x, u, stream):
        spatial = x.shape[1:]
        dims = len(spatial)
        exps, coeffs = self._terms(u, dims)
        axes = [np.linspace(-1.0, 1.0, s) if s > 1 else np.zeros(1) for s in spatial]
        grid = np.meshgrid(*axes, indexing="ij")
        z, y, xx = (list(grid) if dims == 3 else [np.zeros_like(grid[0])] + list(grid))
        log_field = sum(c * z ** e[0] * y ** e[1] * xx ** e[2] for c, e in zip(coeffs, exps))
        return x * np.exp(log_field)[None]


class _Normalize(Transform):
    kind = Kind.NORMALIZE
    code = _C.NORMALIZE_KIND_CODES["zscore"]
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

    code = _C.NORMALIZE_KIND_CODES["zscore"]

    def _normalize_one(self, values, selected):
        if selected.size == 0:
            return values
        mean, std = selected.mean(), selected.std()
        denom = std + self.eps
        return (values - mean) / (denom if denom > 0 else 1.0)


class MinMax(_Normalize):
    """(x - min) / (max - min + eps) per image to [0, 1]; a constant image gives 0."""

    code = _C.NORMALIZE_KIND_CODES["minmax"]

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

    code = _C.NORMALIZE_KIND_CODES["percentile"]

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
