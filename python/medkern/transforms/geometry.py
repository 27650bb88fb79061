"""Geometric transforms. Each one is an affine map from its output array index to its input
array index (sample centres at integers; resizing maps pixel centres, i.e. torch's
``align_corners=False`` / scipy's ``grid_mode=True``), so any chain composes into one
(dims+1)x(dims+1) matrix per sample and the kernel resamples the source once.

``plan(shape, spacing, u)`` returns (matrix output->input, output shape, output spacing,
params) for one sample given its Philox draws ``u``; output shape and spacing never depend on
the draws. The reference path applies that matrix with scipy.ndimage.affine_transform in
float64; tests check the kernel against np.flip, np.rot90, slicing, torch interpolate /
grid_sample and scipy with matrices of their own.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from .base import SCIPY_PADDING, Kind, Transform, check_mode, check_padding, draw_uniform, per_axis
from .filter import SeparablePlan, apply_taps, linear_resize_taps


def _axes(axes, dims: int, name: str = "axes") -> tuple:
    axes = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
    out = []
    for a in axes:
        if not -dims <= a < dims:
            raise ValueError(f"argument '{name}' has axis {a}, out of range for {dims} spatial axes "
                             f"(use -1 for the last spatial axis)")
        out.append(a % dims)
    return tuple(out)


def _sizes(size, dims: int, name: str = "size") -> tuple:
    sizes = per_axis(size, dims, name, cast=int)
    if any(s <= 0 for s in sizes):
        raise ValueError(f"argument '{name}' must be > 0 on every axis, got {sizes}")
    return sizes


def apply_matrix(x: np.ndarray, matrices: np.ndarray, out_shape: tuple, mode: str, padding: str) -> np.ndarray:
    """Reference resampling: out[n, c] = x[n, c] sampled at matrices[n] @ (index, 1)."""
    from scipy import ndimage
    dims = len(out_shape)
    out = np.empty(x.shape[:2] + tuple(out_shape), dtype=np.float64)
    order = 1 if mode == "linear" else 0
    for n in range(x.shape[0]):
        m = matrices[n]
        for c in range(x.shape[1]):
            out[n, c] = ndimage.affine_transform(x[n, c], m[:dims, :dims], offset=m[:dims, dims],
                                                 output_shape=tuple(out_shape), order=order,
                                                 mode=SCIPY_PADDING[padding], cval=0.0, prefilter=False)
    return out


class GeometricTransform(Transform):
    kind = Kind.GEOMETRY
    follows_labels = True
    mode = "linear"
    padding = "zeros"

    def plan(self, shape: tuple, spacing, u: np.ndarray):
        raise NotImplementedError

    def fusable_with_any(self, in_shape: tuple, out_shape: tuple) -> tuple:
        """(mode-free, padding-free): whether this step's result is independent of the
        interpolation mode (integer index maps) and of the padding (never samples outside), so
        the planner may fuse it into a stage whose mode/padding were set by another step."""
        return False, False

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        u = draw_uniform(seed, indices, stream, self.draws)
        mats, shape, out_spacing = [], None, spacing
        for n in range(x.shape[0]):
            m, shape, out_spacing, _ = self.plan(tuple(x.shape[2:]), spacing, u[n])
            mats.append(m)
        return apply_matrix(x, np.stack(mats), shape, self.mode, self.padding), out_spacing


def _identity(dims: int) -> np.ndarray:
    return np.eye(dims + 1)


def _exact_permutation(self, in_shape, out_shape):
    """fusable_with_any of the steps that move whole samples (flip, rot90, crop inside)."""
    return True, True


class Flip(GeometricTransform):
    """Reverse the given spatial axes (-1 = last); same as np.flip."""

    fusable_with_any = _exact_permutation

    def __init__(self, axes: Sequence[int] | int = (-1,)):
        self.axes = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)

    def plan(self, shape, spacing, u):
        dims = len(shape)
        m = _identity(dims)
        for a in _axes(self.axes, dims):
            m[a, a] = -1.0
            m[a, dims] = shape[a] - 1
        return m, shape, spacing, {"flipped": True}


class RandomFlip(Flip):
    """Flip all of ``axes`` together with probability p (one draw per sample)."""

    draws = 1

    def __init__(self, axes: Sequence[int] | int = (-1,), p: float = 0.5):
        super().__init__(axes)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"argument 'p' must be in [0, 1], got {p!r}")
        self.p = float(p)

    def plan(self, shape, spacing, u):
        if u[0] < self.p:
            return super().plan(shape, spacing, u)
        return _identity(len(shape)), shape, spacing, {"flipped": False}


class Rot90(GeometricTransform):
    """Rotate by k * 90 degrees in the plane of ``axes`` (spatial axes), same as np.rot90."""

    fusable_with_any = _exact_permutation

    def __init__(self, k: int = 1, axes: tuple = (-2, -1)):
        self.k, self.axes = int(k), tuple(axes)

    def plan(self, shape, spacing, u):
        dims = len(shape)
        p, q = _axes(self.axes, dims)
        if p == q:
            raise ValueError(f"argument 'axes' must name two different axes, got {self.axes}")
        m = _identity(dims)
        shape = list(shape)
        sp = None if spacing is None else list(spacing)
        for _ in range(self.k % 4):
            # one np.rot90 step: out[.., i (p), .., j (q)] = in[.., j, .., size_q - 1 - i]
            step = _identity(dims)
            step[p, p] = 0.0
            step[p, q] = 1.0
            step[q, q] = 0.0
            step[q, p] = -1.0
            step[q, dims] = shape[q] - 1
            m = m @ step
            shape[p], shape[q] = shape[q], shape[p]
            if sp is not None:
                sp[p], sp[q] = sp[q], sp[p]
        return m, tuple(shape), None if sp is None else np.asarray(sp), {"k": self.k % 4}


def _rotation(dims: int, angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation in index space. 2D (y, x): positive angle turns the content counter-clockwise as
    displayed with row 0 at the top. 3D: R = Rz @ Ry @ Rx, angles (about z, about y, about x),
    each the 2D rule in its plane ((y, x), (z, x), (z, y))."""
    def plane(dims, p, q, deg):
        r = np.eye(dims)
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        r[p, p], r[p, q], r[q, p], r[q, q] = c, -s, s, c
        return r
    if dims == 2:
        return plane(2, 0, 1, angles_deg[0])
    return plane(3, 1, 2, angles_deg[0]) @ plane(3, 0, 2, angles_deg[1]) @ plane(3, 0, 1, angles_deg[2])


def affine_about_centre(shape, degrees, scale, shear_deg, translate_vox) -> np.ndarray:
    """Output->input matrix of p_out = c + R @ Sh @ diag(scale) @ (p_in - c) + t, c = the array
    centre ((size - 1) / 2). scale > 1 enlarges the content; shear moves the last axis in
    proportion to the one before it (x += tan(shear) * y)."""
    dims = len(shape)
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
    shear = np.eye(dims)
    shear[dims - 1, dims - 2] = math.tan(math.radians(shear_deg))
    forward = _rotation(dims, degrees) @ shear @ np.diag(np.asarray(scale, dtype=np.float64))
    inverse = np.linalg.inv(forward)
    m = _identity(dims)
    m[:dims, :dims] = inverse
    m[:dims, dims] = centre - inverse @ (centre + np.asarray(translate_vox, dtype=np.float64))
    return m


class Affine(GeometricTransform):
    """A fixed affine about the array centre (see affine_about_centre), or an explicit
    output->input ``matrix`` ((dims+1)x(dims+1) or dims x (dims+1), index coordinates).
    ``translate`` is a fraction of the image size per axis. Output shape = input shape."""

    def __init__(self, degrees=0.0, scale=1.0, translate=0.0, shear=0.0, matrix=None,
                 mode: str = "linear", padding: str = "zeros"):
        self.degrees, self.scale, self.translate, self.shear = degrees, scale, translate, float(shear)
        self.matrix = None if matrix is None else np.asarray(matrix, dtype=np.float64)
        self.mode, self.padding = check_mode(mode), check_padding(padding)

    def plan(self, shape, spacing, u):
        dims = len(shape)
        if self.matrix is not None:
            m = _identity(dims)
            if self.matrix.shape not in ((dims, dims + 1), (dims + 1, dims + 1)):
                raise ValueError(f"argument 'matrix' must be {dims}x{dims + 1} or {dims + 1}x{dims + 1} "
                                 f"for {dims} spatial axes, got {self.matrix.shape}")
            m[:dims] = self.matrix[:dims]
            return m, shape, spacing, {"matrix": m}
        degrees = per_axis(self.degrees, 1 if dims == 2 else 3, "degrees")
        scale = per_axis(self.scale, dims, "scale")
        t = np.asarray(per_axis(self.translate, dims, "translate")) * np.asarray(shape)
        m = affine_about_centre(shape, degrees, scale, self.shear, t)
        return m, shape, spacing, {"degrees": degrees, "scale": scale, "translate": tuple(t), "shear": self.shear}


class RandomAffine(GeometricTransform):
    """Random rotation / isotropic scale / shear / translation about the centre, applied with
    probability p. degrees: one number for 2D ([-d, d]); for 3D a number or a 3-tuple (about
    z, y, x). scale: (low, high). translate: fraction of the size, drawn in [-t, t] per axis.
    shear: degrees in [-s, s]. Draws per sample: apply, 3 angles, scale, 3 shifts, shear."""

    draws = 9

    def __init__(self, degrees, scale=(1.0, 1.0), translate=0.0, shear=0.0, p: float = 1.0,
                 mode: str = "linear", padding: str = "zeros"):
        self.degrees = degrees
        if isinstance(scale, numbers.Real):
            scale = (1.0 - scale, 1.0 + scale) if scale < 1 else (scale, scale)
        self.scale = (float(scale[0]), float(scale[1]))
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"argument 'scale' must be (low, high) with 0 < low <= high, got {self.scale}")
        self.translate, self.shear = translate, float(shear)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"argument 'p' must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.mode, self.padding = check_mode(mode), check_padding(padding)

    def plan(self, shape, spacing, u):
        dims = len(shape)
        if u[0] >= self.p:
            return _identity(dims), shape, spacing, {"applied": False}
        limits = per_axis(self.degrees, 1 if dims == 2 else 3, "degrees")
        degrees = tuple((2 * u[1 + i] - 1) * limits[i] for i in range(len(limits)))
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * u[4]
        frac = per_axis(self.translate, dims, "translate")
        t = tuple((2 * u[5 + i] - 1) * frac[i] * shape[i] for i in range(dims))
        shear = (2 * u[8] - 1) * self.shear
        m = affine_about_centre(shape, degrees, (s,) * dims, shear, t)
        return m, shape, spacing, {"applied": True, "degrees": degrees, "scale": s, "translate": t, "shear": shear}


class Resize(GeometricTransform):
    """Resize to ``size`` (int or one per spatial axis) mapping pixel centres: src = (dst + 0.5)
    * in / out - 0.5, i.e. torch.nn.functional.interpolate(align_corners=False, antialias=False);
    mode 'nearest' matches interpolate's 'nearest-exact'.

    ``antialias`` (default False, as in interpolate): with mode 'linear', an axis that shrinks is
    low-pass filtered as interpolate(mode='bilinear', antialias=True) does (a triangle filter
    widened by the downsampling factor, see filter.linear_resize_taps; the padding is never
    read); growing axes interpolate linearly with ``padding``. When some axis shrinks, the
    Pipeline then runs this Resize as a separable stage instead of fusing it."""

    def __init__(self, size, mode: str = "linear", padding: str = "border", antialias: bool = False):
        self.size, self.mode, self.padding = size, check_mode(mode), check_padding(padding)
        if not isinstance(antialias, (bool, np.bool_)):
            raise TypeError(f"argument 'antialias' must be a bool, got {antialias!r}")
        if antialias and mode != "linear":
            raise ValueError(f"argument 'antialias' needs mode='linear', got mode={mode!r}")
        self.antialias = bool(antialias)

    def separable_plan(self, shape, spacing):
        """The per-axis filter passes when antialiasing applies (some axis shrinks), else None
        (then this Resize is an ordinary, fusable geometry step)."""
        if not self.antialias:
            return None
        _, out, sp, params = self.plan(shape, spacing, None)
        if not any(o < i for o, i in zip(out, shape)):
            return None
        # the strongest reduction first: later passes then run on the smallest image
        axes = sorted((a for a in range(len(shape)) if out[a] != shape[a]), key=lambda a: out[a] / shape[a])
        passes = [(a, *linear_resize_taps(shape[a], out[a], self.padding, True)) for a in axes]
        return SeparablePlan(passes, out, sp, params)

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        plan = self.separable_plan(tuple(x.shape[2:]), spacing)
        if plan is None:
            return super().reference(x, spacing, seed, indices, stream, mask=mask)
        for axis, taps, weights in plan.passes:
            x = apply_taps(x, axis, taps, weights)
        return x, plan.out_spacing

    def plan(self, shape, spacing, u):
        dims = len(shape)
        out = _sizes(self.size, dims)
        m = _identity(dims)
        for a in range(dims):
            r = shape[a] / out[a]
            m[a, a], m[a, dims] = r, 0.5 * r - 0.5
        sp = None if spacing is None else np.asarray(spacing) * np.asarray(shape) / np.asarray(out)
        return m, out, sp, {"size": out}

    def fusable_with_any(self, in_shape, out_shape):
        # shrinking maps every output centre inside [0, in - 1]: the padding is never read
        return False, all(o <= i for o, i in zip(out_shape, in_shape))


class ResampleToSpacing(GeometricTransform):
    """Resample to ``spacing`` (mm per spatial axis, or one number): out size = round(in * in_sp
    / sp), src = (dst + 0.5) * sp / in_sp - 0.5 (exact requested spacing, first pixel edge kept).
    Needs the input spacing (``pipeline(batch, spacing=...)`` or a Volume's)."""

    def __init__(self, spacing, mode: str = "linear", padding: str = "border"):
        self.spacing, self.mode, self.padding = spacing, check_mode(mode), check_padding(padding)

    def plan(self, shape, spacing, u):
        dims = len(shape)
        if spacing is None:
            raise ValueError("argument 'spacing' is required by ResampleToSpacing: pass "
                             "pipeline(batch, spacing=(...)) with the input's voxel spacing")
        target = np.asarray(per_axis(self.spacing, dims, "spacing"))
        if np.any(~np.isfinite(target)) or np.any(target <= 0):
            raise ValueError(f"argument 'spacing' of ResampleToSpacing must be > 0, got {tuple(target)}")
        spacing = np.asarray(spacing, dtype=np.float64)
        out = tuple(max(1, int(round(shape[a] * spacing[a] / target[a]))) for a in range(dims))
        m = _identity(dims)
        for a in range(dims):
            r = target[a] / spacing[a]
            m[a, a], m[a, dims] = r, 0.5 * r - 0.5
        return m, out, target, {"size": out}


class CropOrPad(GeometricTransform):
    """Centre crop or pad (with the padding mode) to ``size``: a crop starts at (in - out) // 2,
    a pad puts (out - in) // 2 before the image and the rest after it (MONAI's convention)."""

    padding = "zeros"

    def __init__(self, size, padding: str = "zeros"):
        self.size, self.padding = size, check_padding(padding)

    def _offsets(self, shape, out, u):
        return tuple((s - o) // 2 if s >= o else -((o - s) // 2) for s, o in zip(shape, out))

    def plan(self, shape, spacing, u):
        dims = len(shape)
        out = _sizes(self.size, dims)
        offsets = self._offsets(shape, out, u)
        m = _identity(dims)
        m[:dims, dims] = offsets
        return m, out, spacing, {"offset": offsets}


class CenterCrop(CropOrPad):
    """Centre crop to ``size``; raises when the size is larger than the image."""

    fusable_with_any = _exact_permutation

    def _offsets(self, shape, out, u):
        if any(o > s for o, s in zip(out, shape)):
            raise ValueError(f"argument 'size' {out} of {type(self).__name__} is larger than the image {tuple(shape)}")
        return super()._offsets(shape, out, u)


class RandomCrop(CenterCrop):
    """Crop ``size`` at a uniformly drawn offset (one draw per axis); raises when the size is
    larger than the image."""

    draws = 3

    def __init__(self, size):
        super().__init__(size)

    def _offsets(self, shape, out, u):
        super()._offsets(shape, out, u)
        return tuple(min(int(u[a] * (shape[a] - out[a] + 1)), shape[a] - out[a]) for a in range(len(shape)))


class ElasticDeform(GeometricTransform):
    """Random elastic deformation: out(p) = in(p + d(p)), d a smooth displacement field, the
    cubic B-spline of random displacements on a coarse control grid (TorchIO's
    RandomElasticDeformation model). ``num_control_points`` per axis (>= 4; corner points on the
    array corners), each control displacement uniform in [-max_displacement, max_displacement]
    output voxels per axis; ``locked_borders`` keeps the outermost control points still.
    Applied with probability p. In a Pipeline it is the last geometric step of its stage: the
    preceding steps' matrix applies to p + d(p). Spline convention: the field at p equals
    scipy.ndimage.map_coordinates(control_grid, p * (g - 1) / (size - 1), order=3,
    prefilter=False, mode='nearest') (an approximating B-spline, bounded by the largest control
    displacement). Output shape = input shape."""

    is_elastic = True

    def __init__(self, num_control_points=7, max_displacement=5.0, locked_borders: bool = True,
                 mode: str = "linear", padding: str = "border", p: float = 1.0):
        self.num_control_points = num_control_points
        self.max_displacement = max_displacement
        for value in ((num_control_points,) if isinstance(num_control_points, numbers.Number)
                      else tuple(num_control_points)):
            if not isinstance(value, numbers.Integral) or value < 4:
                raise ValueError(f"argument 'num_control_points' must be integers >= 4, got {num_control_points!r}")
        for value in ((max_displacement,) if isinstance(max_displacement, numbers.Number)
                      else tuple(max_displacement)):
            if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
                raise ValueError(f"argument 'max_displacement' must be finite numbers >= 0, got {max_displacement!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"argument 'p' must be in [0, 1], got {p!r}")
        self.locked_borders, self.p = bool(locked_borders), float(p)
        self.mode, self.padding = check_mode(mode), check_padding(padding)
        # draws: the apply flag, then the control displacements of a 3D grid (a 2D image uses the
        # first 2 * gy * gx), or of the per-axis grid given
        if isinstance(num_control_points, numbers.Number):
            self.draws = 1 + 3 * int(num_control_points) ** 3
        else:
            self.draws = 1 + len(num_control_points) * int(np.prod(num_control_points))

    def plan(self, shape, spacing, u):
        return _identity(len(shape)), shape, spacing, {"applied": bool(u[0] < self.p)}

    def control_grid(self, shape, u) -> np.ndarray:
        """(dims, *grid) float64 control displacements (output voxels) of one sample."""
        dims = len(shape)
        grid = per_axis(self.num_control_points, dims, "num_control_points", cast=int)
        limit = np.asarray(per_axis(self.max_displacement, dims, "max_displacement"))
        count = dims * int(np.prod(grid))
        if 1 + count > len(u):
            raise ValueError(f"argument 'num_control_points' {self.num_control_points} does not fit "
                             f"{dims} spatial axes")
        values = (2 * np.asarray(u[1:1 + count]) - 1).reshape((dims,) + grid)
        values *= limit.reshape((dims,) + (1,) * dims)
        if u[0] >= self.p:
            values[:] = 0.0
        if self.locked_borders:
            for a in range(dims):
                index = [slice(None)] * (dims + 1)
                index[a + 1] = [0, grid[a] - 1]
                values[tuple(index)] = 0.0
        return values

    def reference(self, x, spacing, seed, indices, stream, mask=None):
        from scipy import ndimage
        dims = x.ndim - 2
        shape = x.shape[2:]
        u = draw_uniform(seed, indices, stream, self.draws)
        points = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
        out = np.empty_like(x)
        for n in range(x.shape[0]):
            grid = self.control_grid(shape, u[n])
            scaled = np.stack([points[a] * ((grid.shape[1 + a] - 1) / (shape[a] - 1) if shape[a] > 1 else 0.0)
                               for a in range(dims)])
            source = np.stack([points[a] + ndimage.map_coordinates(grid[a], scaled, order=3, prefilter=False,
                                                                   mode="nearest") for a in range(dims)])
            for c in range(x.shape[1]):
                out[n, c] = ndimage.map_coordinates(x[n, c], source, order=1 if self.mode == "linear" else 0,
                                                    mode=SCIPY_PADDING[self.padding], cval=0.0, prefilter=False)
        return out, spacing
