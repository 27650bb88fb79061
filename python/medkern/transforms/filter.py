"""Separable filters: Gaussian blur and the taps of (antialiased) linear resizing.

A separable filter is one sparse 1-D linear map per spatial axis, out[.., i, ..] = sum_k
weights[i, k] * in[.., indices[i, k], ..]. The taps depend on the shape only, so they are
computed here in float64 numpy (padding already resolved into the indices, -1 = zero) and one
kernel, ``_C.filter_axis``, runs every such filter; the Pipeline runs it as its own stage.
A ``SeparablePlan`` is immutable (read-only arrays), so a Pipeline's plan cache can share it
between threads.
"""
from __future__ import annotations

import math
import numbers
import types
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .base import Kind, Transform, check_padding, draw_uniform, per_axis

# scipy.ndimage.gaussian_filter's names of the same boundary extensions:
#   zeros   0 0 0 | a b c d | 0 0 0
#   border  a a a | a b c d | d d d
#   reflect c b a | a b c d | d c b   (half-sample symmetric)
SCIPY_FILTER_PADDING = {"zeros": "constant", "border": "nearest", "reflect": "reflect"}


def resolve_taps(indices: np.ndarray, length: int, padding: str) -> np.ndarray:
    """Source indices (any integers) -> indices inside [0, length), or -1 where the padding
    reads zero."""
    j = np.asarray(indices, dtype=np.int64)
    if padding == "border":
        return np.clip(j, 0, length - 1)
    if padding == "reflect":
        m = np.mod(j, 2 * length)
        return np.where(m >= length, 2 * length - 1 - m, m)
    return np.where((j >= 0) & (j < length), j, -1)


def gaussian_taps(sigma: float, truncate: float, length: int, padding: str) -> tuple:
    """(indices, weights) of scipy.ndimage.gaussian_filter1d on an axis of ``length`` samples:
    radius int(truncate * sigma + 0.5), weights exp(-x^2 / (2 sigma^2)) normalized to sum 1."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    indices = resolve_taps(np.arange(length)[:, None] + offsets[None, :], length, padding)
    return indices, np.broadcast_to(kernel, indices.shape).copy()


def linear_resize_taps(in_len: int, out_len: int, padding: str, antialias: bool) -> tuple:
    """(indices, weights) resizing one axis with pixel centres mapped (align_corners=False).

    Growing (or antialias=False): linear interpolation at src = (i + 0.5) * in / out - 0.5, the
    two taps resolved with ``padding`` ('border' = torch.nn.functional.interpolate).
    Shrinking with antialias: torch's antialiased bilinear filter, a triangle whose support is
    widened by scale = in / out: around centre c = (i + 0.5) * scale it covers the samples j in
    [floor(c - scale + 0.5), floor(c + scale + 0.5)) clipped to the image, weight
    max(0, 1 - |j + 0.5 - c| / scale), normalized to sum 1 over the samples inside (so the
    padding is never read).
    """
    scale = in_len / out_len
    i = np.arange(out_len, dtype=np.float64)
    if antialias and scale > 1.0:
        centre = (i + 0.5) * scale
        first = np.maximum(np.floor(centre - scale + 0.5), 0).astype(np.int64)
        stop = np.minimum(np.floor(centre + scale + 0.5).astype(np.int64), in_len)
        taps = int((stop - first).max())
        j = first[:, None] + np.arange(taps)[None, :]
        weights = np.maximum(0.0, 1.0 - np.abs(j + 0.5 - centre[:, None]) / scale)
        weights[j >= stop[:, None]] = 0.0
        weights /= weights.sum(axis=1, keepdims=True)
        return np.where(j < stop[:, None], j, -1), weights
    src = (i + 0.5) * scale - 0.5
    low = np.floor(src)
    frac = src - low
    j = low.astype(np.int64)[:, None] + np.array([0, 1])[None, :]
    return resolve_taps(j, in_len, padding), np.stack([1.0 - frac, frac], axis=1)


def apply_taps(x: np.ndarray, axis: int, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Reference of one pass, in float64 numpy: ``axis`` counts spatial axes of (N, C, *spatial)."""
    moved = np.moveaxis(x, 2 + axis, -1)
    out = np.zeros(moved.shape[:-1] + (indices.shape[0],), dtype=np.float64)
    for k in range(indices.shape[1]):
        inside = indices[:, k] >= 0
        gathered = moved[..., np.where(inside, indices[:, k], 0)]
        out += np.where(inside, weights[:, k], 0.0) * gathered
    return np.moveaxis(out, -1, 2 + axis)


def _read_only(array: Any, dtype) -> np.ndarray:
    out = np.array(array, dtype=dtype, order="C", copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class SeparablePlan:
    """What a separable stage runs: ``passes`` = ((spatial axis, indices int64 (out_len, K),
    weights float64 (out_len, K) or (N, out_len, K) per sample), ...) in order (the kernel gets
    the weights in float32), the output shape and spacing, and the params a Pipeline reports for
    each sample. Immutable: tuples, read-only arrays, a read-only params mapping."""

    passes: tuple
    out_shape: tuple
    out_spacing: tuple | None
    params: Mapping

    def __post_init__(self):
        passes = tuple((int(a), _read_only(i, np.int64), _read_only(w, np.float64)) for a, i, w in self.passes)
        object.__setattr__(self, "passes", passes)
        object.__setattr__(self, "out_shape", tuple(int(s) for s in self.out_shape))
        object.__setattr__(self, "out_spacing",
                           None if self.out_spacing is None else tuple(float(v) for v in self.out_spacing))
        object.__setattr__(self, "params", types.MappingProxyType(dict(self.params)))


class GaussianBlur(Transform):
    """Gaussian blur, separable, with scipy.ndimage.gaussian_filter's kernel: ``sigma`` in voxels
    (a number or one per spatial axis; 0 leaves that axis alone), taps up to radius
    int(truncate * sigma + 0.5), weights normalized to sum 1. ``padding`` extends the image past
    its edges: 'zeros' (scipy 'constant'), 'border' ('nearest') or 'reflect' ('reflect',
    half-sample symmetric). In a Pipeline it runs as a separate stage (one pass per blurred axis).
    """

    kind = Kind.FILTER

    def __init__(self, sigma, truncate: float = 4.0, padding: str = "reflect"):
        values = (sigma,) if isinstance(sigma, numbers.Number) else tuple(sigma)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise ValueError(f"argument 'sigma' must be a finite number >= 0 or one per spatial axis, "
                                 f"got {sigma!r}")
        if isinstance(truncate, bool) or not isinstance(truncate, numbers.Real) or not math.isfinite(truncate) \
                or truncate <= 0:
            raise ValueError(f"argument 'truncate' must be a finite number > 0, got {truncate!r}")
        self.sigma = float(sigma) if isinstance(sigma, numbers.Number) else tuple(float(v) for v in values)
        self.truncate, self.padding = float(truncate), check_padding(padding)

    def _sigmas(self, dims: int) -> tuple:
        return per_axis(self.sigma, dims, "sigma")

    def separable_plan(self, shape: tuple, spacing) -> SeparablePlan:
        sigmas = self._sigmas(len(shape))
        passes = [(a, *gaussian_taps(s, self.truncate, shape[a], self.padding))
                  for a, s in enumerate(sigmas) if s > 0]
        return SeparablePlan(passes, shape, spacing, {"sigma": sigmas})

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        from scipy import ndimage
        sigmas = self._sigmas(x.ndim - 2)
        out = np.empty_like(x)
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                out[n, c] = ndimage.gaussian_filter(x[n, c], sigmas, truncate=self.truncate,
                                                    mode=SCIPY_FILTER_PADDING[self.padding], cval=0.0)
        return out, spacing


class RandomGaussianBlur(GaussianBlur):
    """Gaussian blur with a sigma drawn per sample, uniformly in ``sigma`` = (low, high) voxels
    (the same on every spatial axis, or one draw per axis with ``per_axis``), applied with
    probability p (nnU-Net's / MONAI's RandGaussianSmooth model). Each sample's taps are
    scipy.ndimage.gaussian_filter's for its sigma, laid out in the batch's widest support (the
    extra taps weigh 0), so the result equals scipy's per sample; one filter pass per axis
    covers the whole batch. Draws per sample: apply, then one sigma per spatial axis."""

    draws = 4

    def __init__(self, sigma=(0.5, 1.5), p: float = 1.0, per_axis: bool = False, truncate: float = 4.0,
                 padding: str = "reflect"):
        lo, hi = (sigma, sigma) if isinstance(sigma, numbers.Real) else tuple(sigma)
        super().__init__(float(hi) if isinstance(hi, numbers.Real) else hi, truncate=truncate, padding=padding)
        if isinstance(lo, bool) or not isinstance(lo, numbers.Real) or not math.isfinite(lo) or not 0 <= lo <= hi:
            raise ValueError(f"argument 'sigma' must be a (low, high) range with 0 <= low <= high, got {sigma!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"argument 'p' must be in [0, 1], got {p!r}")
        self.sigma_range, self.p, self.per_axis = (float(lo), float(hi)), float(p), bool(per_axis)

    def _draw(self, u, dims: int) -> tuple:
        if u[0] >= self.p:
            return (0.0,) * dims
        lo, hi = self.sigma_range
        return tuple(lo + (hi - lo) * u[1 + (a if self.per_axis else 0)] for a in range(dims))

    def separable_plan(self, shape: tuple, spacing) -> SeparablePlan:
        # the stage's layout (every axis, widest support); the weights come per call from draws
        hi = self.sigma_range[1]
        passes = [(a, *gaussian_taps(hi, self.truncate, shape[a], self.padding)) for a in range(len(shape))] \
            if hi > 0 else []
        return SeparablePlan(passes, shape, spacing, {})

    def sample_plan(self, plan: SeparablePlan, u: np.ndarray) -> tuple:
        """(SeparablePlan with (N, out_len, K) weights per pass, per-sample params) for draws u,
        in the layout ``plan`` (this transform's separable_plan of the input)."""
        dims = len(plan.out_shape)
        sigmas = [self._draw(u[n], dims) for n in range(len(u))]
        passes = []
        for axis, indices, _ in plan.passes:
            radius = indices.shape[1] // 2
            offsets = np.arange(-radius, radius + 1, dtype=np.float64)
            weights = np.zeros((len(u),) + indices.shape)
            for n, sigma in enumerate(sigmas):
                s = sigma[axis]
                if s <= 0:
                    kernel = (offsets == 0).astype(np.float64)
                else:
                    r = int(self.truncate * s + 0.5)
                    kernel = np.where(np.abs(offsets) <= r, np.exp(-0.5 * (offsets / s) ** 2), 0.0)
                    kernel /= kernel.sum()
                weights[n] = kernel[None, :]
            passes.append((axis, indices, weights))
        return SeparablePlan(passes, plan.out_shape, plan.out_spacing, {}), [{"sigma": s} for s in sigmas]

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        from scipy import ndimage
        u = draw_uniform(seed, indices, stream, self.draws)
        out = x.copy()
        for n in range(x.shape[0]):
            sigma = self._draw(u[n], x.ndim - 2)
            if max(sigma) <= 0:
                continue
            for c in range(x.shape[1]):
                out[n, c] = ndimage.gaussian_filter(x[n, c], sigma, truncate=self.truncate,
                                                    mode=SCIPY_FILTER_PADDING[self.padding], cval=0.0)
        return out, spacing
