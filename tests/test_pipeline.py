"""The fused Pipeline against an oracle written here that shares nothing with the planner: the
chain run one transform at a time in float64 with numpy / scipy.ndimage / torch, every
geometric step built in this file from the parameters the Pipeline reports
(``return_params=True``) and the transforms' own arguments, intensity ops as numpy formulas,
noise from the Philox generator alone (checked against Random123's known answers in
test_transforms). Also: the planner's typed stages, batch-split / worker / thread invariance,
concurrent calls on one Pipeline, array kinds.

Tolerances (tests/tolerances.py, PREPROCESS_*): one interpolating step per stage -> fused ==
oracle up to float32 rounding of the source coordinates and values ("resample",
"resample_normalized" after a z-score); several interpolating steps in one stage (affine then
resize) -> the fused pass resamples once, the oracle at every step: on a smooth image they
differ by < PREPROCESS_FUSED_VS_CHAIN of the range.
"""
import dataclasses
import math
import pickle
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial.transform import Rotation

import medkern.transforms as T
from medkern import _C
from medkern.transforms.pipeline import FilterStage, NormalizeStage, ResampleStage
from tolerances import PREPROCESS_FUSED_VS_CHAIN, PREPROCESS_TOLERANCES as TOL

RNG = np.random.default_rng(99)


def ct_phantom(n, shape, seed=0):
    """Smooth CT-like phantom: raw = HU + 1024 (int16): air outside, a soft-tissue ellipse with
    two brighter blobs, gently varying."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    out = np.empty((n, 1) + tuple(shape), np.int16)
    for i in range(n):
        r2 = sum((g / rng.uniform(0.6, 0.9)) ** 2 for g in grids)
        hu = np.where(r2 < 1, 40.0, -1000.0)
        for _ in range(2):
            c = rng.uniform(-0.4, 0.4, len(shape))
            hu += 300 * np.exp(-sum((g - m) ** 2 for g, m in zip(grids, c)) / 0.05)
        out[i, 0] = np.round(hu + 1024).astype(np.int16)
    return out


def smooth(n, shape):
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    out = np.empty((n, 1) + tuple(shape), np.float32)
    for i in range(n):
        c = RNG.uniform(-0.3, 0.3, len(shape))
        out[i, 0] = 0.2 + np.exp(-sum((g - m) ** 2 for g, m in zip(grids, c)) / 0.4)
    return out


def p1_like(size):
    return [T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomAffine(15, scale=(0.9, 1.1), translate=0.05),
            T.RandomFlip(axes=(-1,), p=0.5), T.GaussianNoise(0.02), T.ZScore()]


# ---- the oracle ---------------------------------------------------------------------------------
RESAMPLE_MODE = {"zeros": "grid-constant", "border": "nearest", "reflect": "reflect"}  # scipy names
FILTER_MODE = {"zeros": "constant", "border": "nearest", "reflect": "reflect"}
PAD_MODE = {"zeros": "constant", "border": "edge", "reflect": "symmetric"}  # np.pad names


def rotation(degrees):
    """The documented rotation convention, built independently of medkern. 2D (y, x): the usual
    counter-clockwise turn in display coordinates (X = x, Y = -y: row 0 on top). 3D (z, y, x):
    Rz @ Ry @ Rx, each the 2D rule in its plane ((y, x), (z, x), (z, y)), i.e. scipy's
    right-handed rotations about axis 0, about axis 1 by minus the angle, about axis 2."""
    if len(degrees) == 1:
        th = math.radians(degrees[0])
        to_display = np.array([[0.0, 1.0], [-1.0, 0.0]])
        turn = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        return np.linalg.solve(to_display, turn @ to_display)
    about_z, about_y, about_x = (math.radians(v) for v in degrees)
    r = (Rotation.from_rotvec([about_z, 0, 0]) * Rotation.from_rotvec([0, -about_y, 0]) *
         Rotation.from_rotvec([0, 0, about_x]))
    return r.as_matrix()


def affine_to_source(shape, degrees, scale, shear_deg, translate):
    """(matrix, offset) for scipy.ndimage.affine_transform of the forward map
    p_out = c + R @ Sh @ diag(scale) @ (p_in - c) + t, c the array centre, Sh: x += tan(shear) y."""
    d = len(shape)
    sh = np.eye(d)
    sh[-1, -2] = math.tan(math.radians(shear_deg))
    forward = rotation(degrees) @ sh * np.broadcast_to(np.asarray(scale, float), (d,))[None, :]
    back = np.linalg.inv(forward)
    c = (np.asarray(shape, float) - 1) / 2
    return back, c - back @ (c + np.asarray(translate, float))


def resample(img, matrix, offset, out_shape, order, padding):
    """Every channel of ``img`` (C, *spatial) sampled at matrix @ p + offset."""
    return np.stack([ndimage.affine_transform(channel, matrix, offset=offset, output_shape=tuple(out_shape),
                                              order=order, mode=RESAMPLE_MODE[padding], cval=0.0, prefilter=False)
                     for channel in img])


def resize_to_source(in_shape, out_shape):
    """Pixel centres mapped: src = (dst + 0.5) * in / out - 0.5, as (matrix, offset)."""
    ratio = np.asarray(in_shape, float) / np.asarray(out_shape, float)
    return np.diag(ratio), ratio / 2 - 0.5


def antialiased_resize(img, size):
    """torch's antialiased bilinear interpolate, one axis at a time (its taps on an axis depend on
    that axis alone): each axis becomes the width of a (rows, 1, 1, length) image."""
    x = torch.from_numpy(np.ascontiguousarray(img))
    for axis, n in enumerate(size):
        if x.shape[1 + axis] == n:
            continue
        moved = x.movedim(1 + axis, -1)
        rows = moved.reshape(-1, 1, 1, moved.shape[-1])
        done = F.interpolate(rows, size=(1, n), mode="bilinear", antialias=True, align_corners=False)
        x = done.reshape(moved.shape[:-1] + (n,)).movedim(-1, 1 + axis)
    return x.numpy()


def elastic_control_grid(t, shape, u):
    """ElasticDeform's control displacements from its documented draws: u[0] the apply flag, then
    uniforms -> [-max, max], laid out (axis, *grid); the outermost points stay when locked."""
    d = len(shape)
    grid = tuple(int(g) for g in np.broadcast_to(t.num_control_points, (d,)))
    limit = np.broadcast_to(np.asarray(t.max_displacement, float), (d,))
    size = d * int(np.prod(grid))
    disp = np.asarray(u[1:1 + size]).reshape((d,) + grid) * 2 - 1
    disp *= limit[(slice(None),) + (None,) * d] * (u[0] < t.p)
    if t.locked_borders:
        for a in range(d):
            np.moveaxis(disp, a + 1, 1)[:, [0, -1]] = 0
    return disp


def elastic_warp(img, t, u, order):
    """out(p) = img(p + d(p)), d the cubic B-spline (scipy order 3, unprefiltered) of the control
    grid over the array, corner points on the array corners."""
    shape = img.shape[1:]
    disp = elastic_control_grid(t, shape, u)
    where = np.indices(shape, dtype=float)
    on_grid = [where[a] * (disp.shape[1 + a] - 1) / max(shape[a] - 1, 1) for a in range(len(shape))]
    moved = where + np.stack([ndimage.map_coordinates(disp[a], on_grid, order=3, prefilter=False, mode="nearest")
                              for a in range(len(shape))])
    return np.stack([ndimage.map_coordinates(channel, moved, order=order, mode=RESAMPLE_MODE[t.padding], cval=0.0,
                                             prefilter=False) for channel in img])


@dataclasses.dataclass
class OracleStep:
    t: object       # the transform (its constructor arguments are read, nothing it computes)
    drawn: dict     # what the Pipeline reported for it on this sample ({} if nothing)
    seed: int
    index: int      # the sample's Philox key
    position: int
    labels: bool    # geometry only, nearest neighbour

    def order(self):
        return 0 if self.labels or self.t.mode == "nearest" else 1


ORACLE = {}  # transform class -> (function, is geometric)


def oracle_for(*classes, geometric=False):
    def register(fn):
        ORACLE.update({c: (fn, geometric) for c in classes})
        return fn
    return register


@oracle_for(T.Rescale)
def _(s, img):
    return img * s.t.slope + s.t.intercept


@oracle_for(T.Window)
def _(s, img):
    return np.clip((img - s.t.level + s.t.width / 2) / s.t.width, 0.0, 1.0)


@oracle_for(T.Clip)
def _(s, img):
    return np.clip(img, s.t.low, s.t.high)


@oracle_for(T.Gamma, T.RandomGamma)
def _(s, img):
    g = s.drawn.get("gamma", s.t.gamma)  # RandomGamma reports its draw, Gamma is fixed
    return np.where(np.isnan(img), img, np.maximum(img, 0.0) ** g)


@oracle_for(T.RandomIntensity)
def _(s, img):
    return img * s.drawn["scale"] + s.drawn["shift"]


@oracle_for(T.GaussianNoise)
def _(s, img):
    std = s.drawn.get("std", s.t.std)
    return img + std * _C.philox_normal(s.seed, s.index, s.position, img.size).reshape(img.shape)


@oracle_for(T.BiasField)
def _(s, img):
    axes = np.meshgrid(*[np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in img.shape[1:]], indexing="ij")
    zyx = ([np.zeros_like(axes[0])] if len(axes) == 2 else []) + list(axes)
    log_field = sum(c * np.prod([zyx[k] ** e[k] for k in range(3)], axis=0)
                    for c, e in zip(s.drawn["coefficients"], s.drawn["exponents"]))
    return img * np.exp(log_field)


def _per_image(img, channel_wise, fn):
    groups = [img[c:c + 1] for c in range(img.shape[0])] if channel_wise else [img]
    return np.concatenate([fn(g) for g in groups])


@oracle_for(T.ZScore)
def _(s, img):
    return _per_image(img, s.t.channel_wise, lambda g: (g - g.mean()) / ((g.std() + s.t.eps) or 1.0))


@oracle_for(T.MinMax)
def _(s, img):
    return _per_image(img, s.t.channel_wise, lambda g: (g - g.min()) / ((np.ptp(g) + s.t.eps) or 1.0))


@oracle_for(T.PercentileClip)
def _(s, img):
    def clip(g):
        lo, hi = np.percentile(g, [s.t.lower, s.t.upper])
        return (np.clip(g, lo, hi) - lo) / ((hi - lo) or 1.0) if s.t.rescale else np.clip(g, lo, hi)
    return _per_image(img, s.t.channel_wise, clip)


@oracle_for(T.GaussianBlur, T.RandomGaussianBlur)
def _(s, img):
    sigma = s.drawn["sigma"]
    if max(sigma) == 0:
        return img
    return np.stack([ndimage.gaussian_filter(channel, sigma, truncate=s.t.truncate, mode=FILTER_MODE[s.t.padding])
                     for channel in img])


@oracle_for(T.Flip, T.RandomFlip, geometric=True)
def _(s, img, sp):
    axes = [1 + a % (img.ndim - 1) for a in np.atleast_1d(s.t.axes)]
    return (np.flip(img, axes) if s.drawn["flipped"] else img), sp


@oracle_for(T.Rot90, geometric=True)
def _(s, img, sp):
    a, b = (v % (img.ndim - 1) for v in s.t.axes)
    if sp is not None and s.t.k % 2:
        sp = sp.copy()
        sp[[a, b]] = sp[[b, a]]
    return np.rot90(img, s.t.k, axes=(1 + a, 1 + b)), sp


@oracle_for(T.CropOrPad, T.CenterCrop, T.RandomCrop, geometric=True)
def _(s, img, sp):
    size = np.broadcast_to(s.t.size, (img.ndim - 1,))
    before = [max(-o, 0) for o in s.drawn["offset"]]
    after = [max(n - m + o, 0) for n, m, o in zip(size, img.shape[1:], s.drawn["offset"])]
    img = np.pad(img, [(0, 0)] + list(zip(before, after)), mode=PAD_MODE[s.t.padding])
    start = [max(o, 0) for o in s.drawn["offset"]]
    return img[(slice(None),) + tuple(slice(a, a + n) for a, n in zip(start, size))], sp


@oracle_for(T.Affine, T.RandomAffine, geometric=True)
def _(s, img, sp):
    shape, e = img.shape[1:], s.drawn
    if "matrix" in e:
        matrix, offset = e["matrix"][:len(shape), :len(shape)], e["matrix"][:len(shape), -1]
    elif e.get("applied", True):
        matrix, offset = affine_to_source(shape, np.atleast_1d(e["degrees"]), e["scale"], e["shear"], e["translate"])
    else:
        matrix, offset = np.eye(len(shape)), np.zeros(len(shape))
    return resample(img, matrix, offset, shape, s.order(), s.t.padding), sp


@oracle_for(T.Resize, geometric=True)
def _(s, img, sp):
    size, shape = tuple(s.drawn["size"]), img.shape[1:]
    sp = None if sp is None else sp * np.asarray(shape) / np.asarray(size)
    if s.t.antialias and not s.labels and any(n < m for n, m in zip(size, shape)):
        return antialiased_resize(img, size), sp
    return resample(img, *resize_to_source(shape, size), size, s.order(), s.t.padding), sp


@oracle_for(T.ResampleToSpacing, geometric=True)
def _(s, img, sp):
    target = np.broadcast_to(np.asarray(s.t.spacing, float), sp.shape)
    size = tuple(s.drawn["size"])
    ratio = target / sp
    return resample(img, np.diag(ratio), ratio / 2 - 0.5, size, s.order(), s.t.padding), target


@oracle_for(T.ElasticDeform, geometric=True)
def _(s, img, sp):
    u = _C.philox_uniform(s.seed, [s.index], s.position, s.t.draws)[0]
    return elastic_warp(img, s.t, u, s.order()), sp


def oracle(chain, x, params, seed=0, indices=None, spacing=None, labels=False):
    """The chain on a float64 copy of ``x``, one transform at a time, each sample from its own
    reported parameters; with ``labels`` only the geometric steps, nearest neighbour."""
    x = np.asarray(x, dtype=np.float64)
    indices = range(len(x)) if indices is None else indices
    out = []
    for img, reported, index in zip(x, params, indices):
        drawn = {e["position"]: e for e in reported}
        sp = None if spacing is None else np.asarray(spacing, dtype=np.float64)
        for position, t in enumerate(chain):
            fn, geometric = ORACLE[type(t)]
            step = OracleStep(t, drawn.get(position, {}), seed, int(index), position, labels)
            if geometric:
                img, sp = fn(step, img, sp)
            elif not labels:
                img = fn(step, img)
        out.append(img)
    return np.stack(out)


def stage_kinds(plan):
    """The plan as ('resample', #pre, #geometry, #post) / 'filter' / 'normalize' entries."""
    names = {ResampleStage: "resample", FilterStage: "filter", NormalizeStage: "normalize"}
    return [(names[type(s)], len(s.pre), len(s.geometry), len(s.post)) if isinstance(s, ResampleStage)
            else names[type(s)] for s in plan.stages]


def test_oracle_checks_itself():
    """The oracle's own geometry: a positive angle turns content counter-clockwise as displayed,
    its resizes equal torch's interpolate (plain and antialiased)."""
    probe = np.zeros((1, 21, 21))
    probe[0, 10, 16] = 1.0  # right of the centre (10, 10) ...
    turned = resample(probe, *affine_to_source((21, 21), (90.0,), 1.0, 0.0, (0.0, 0.0)), (21, 21), 1, "zeros")
    assert np.unravel_index(np.argmax(turned[0]), (21, 21)) == (4, 10)  # ... now above it
    x = smooth(1, (21, 26))[0].astype(np.float64)
    resized = resample(x, *resize_to_source((21, 26), (9, 40)), (9, 40), 1, "border")
    expect = F.interpolate(torch.from_numpy(x[None]), size=(9, 40), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(resized, expect[0].numpy(), rtol=1e-12, atol=1e-12)
    expect = F.interpolate(torch.from_numpy(x[None]), size=(7, 13), mode="bilinear", antialias=True,
                           align_corners=False)
    np.testing.assert_allclose(antialiased_resize(x, (7, 13)), expect[0].numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_2d_one_interpolation_matches_oracle(seed):
    x = ct_phantom(4, (37, 41), seed)
    chain = p1_like(None)
    p = T.Pipeline(chain, seed=seed)
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params, seed), **TOL["resample_normalized"])
    np.testing.assert_allclose(out, p.reference(x), **TOL["resample_normalized"])  # fused == unfused


@pytest.mark.parametrize("seed", [0, 5])
def test_fused_3d_one_interpolation_matches_oracle(seed):
    x = ct_phantom(2, (11, 14, 13), seed)
    chain = [T.Rescale(1.0, -1024.0), T.Window(40, 400), T.Gamma(1.2),
             T.RandomAffine((10, 5, 8), scale=(0.9, 1.1), translate=0.05, shear=4),
             T.RandomFlip(axes=(0, -1)), T.RandomCrop((8, 9, 10)), T.GaussianNoise(0.05), T.ZScore()]
    p = T.Pipeline(chain, seed=seed)
    out, params = p(x, return_params=True)
    assert stage_kinds(p.plan((11, 14, 13))) == [("resample", 3, 3, 1), "normalize"]
    np.testing.assert_allclose(out, oracle(chain, x, params, seed), **TOL["resample_normalized"])
    np.testing.assert_allclose(out, p.reference(x), **TOL["resample_normalized"])


@pytest.mark.parametrize("seed", range(4))
def test_random_parameter_sets_match_oracle(seed):
    """Random chains of random transforms; each stage has at most one interpolating step."""
    rng = np.random.default_rng(seed)
    dims = int(rng.integers(2, 4))
    shape = tuple(int(s) for s in rng.integers(9, 16, dims))
    x = ct_phantom(3, shape, seed)
    chain = [T.Rescale(float(rng.uniform(0.5, 2)), float(rng.uniform(-1500, -500))),
             T.Window(float(rng.uniform(-100, 100)), float(rng.uniform(200, 800)))]
    if rng.random() < 0.5:
        chain.append(T.Gamma(float(rng.uniform(0.5, 2))))
    chain.append(T.RandomAffine(float(rng.uniform(0, 30)) if dims == 2 else tuple(rng.uniform(0, 20, 3)),
                                scale=(0.8, 1.2), translate=0.1, shear=float(rng.uniform(0, 10)),
                                padding=str(rng.choice(["zeros", "border", "reflect"]))))
    chain += [T.RandomFlip(axes=(int(rng.integers(0, dims)),)), T.Rot90(int(rng.integers(0, 4))),
              T.RandomCrop(tuple(s - 2 for s in shape))]
    chain += [T.GaussianNoise(float(rng.uniform(0, 0.1))), T.Clip(0.1, 0.9)]
    chain.append(T.ZScore() if rng.random() < 0.5 else T.MinMax())
    p = T.Pipeline(chain, seed=seed)
    assert [k[0] if isinstance(k, tuple) else k for k in stage_kinds(p.plan(shape))] == ["resample", "normalize"]
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params, seed), **TOL["resample_normalized"])


def test_fused_resamples_once_close_to_the_chain_resampling_twice():
    x = smooth(3, (40, 44))
    chain = [T.RandomAffine(10, scale=(0.95, 1.05), padding="border"), T.Resize((23, 31))]
    p = T.Pipeline(chain, seed=1)
    assert stage_kinds(p.plan((40, 44))) == [("resample", 0, 2, 0)]  # the shrinking resize joins the affine
    fused, params = p(x, return_params=True)
    twice = oracle(chain, x, params, 1)
    assert np.abs(fused - twice).max() < PREPROCESS_FUSED_VS_CHAIN * np.ptp(twice)
    assert np.abs(fused - twice).max() > 1e-6  # really one resampling, not two


def test_stages_split_where_fusion_would_change_the_result():
    chain = [T.Window(0, 1), T.Affine(degrees=5), T.GaussianNoise(0.1), T.Affine(degrees=5),
             T.ZScore(), T.Window(0, 2), T.Resize(8, mode="nearest")]
    p = T.Pipeline(chain)
    assert stage_kinds(p.plan((16, 16))) == [("resample", 1, 1, 1), ("resample", 0, 1, 0), "normalize",
                                             ("resample", 1, 1, 0)]
    x = smooth(2, (16, 16))
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params), **TOL["resample_normalized"])


def test_pointwise_after_geometry_reads_the_interpolated_value():
    chain = [T.Window(0.7, 1.0), T.RandomAffine(20, padding="border"), T.Gamma(0.5)]
    p = T.Pipeline(chain, seed=3)
    assert stage_kinds(p.plan((24, 26))) == [("resample", 1, 1, 1)]  # the gamma after the interpolation
    x = smooth(3, (24, 26))
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params, 3), **TOL["resample"])


@pytest.mark.parametrize("second", [T.Affine(degrees=-12, padding="border"), T.Affine(degrees=-12, mode="nearest")],
                         ids=["padding", "mode"])
def test_a_padding_or_mode_change_starts_a_stage(second):
    """Rotating one way with zeros padding and back with border padding (or nearest sampling)
    resamples twice, each with its own rule: the zeros the first step brings in stay zeros."""
    chain = [T.Affine(degrees=12, padding="zeros"), second]
    p = T.Pipeline(chain)
    assert stage_kinds(p.plan((30, 34))) == [("resample", 0, 1, 0), ("resample", 0, 1, 0)]
    x = smooth(2, (30, 34))
    out, params = p(x, return_params=True)
    expected = oracle(chain, x, params)
    if second.mode == "nearest":  # nearest may differ only where a coordinate is within float error of a tie
        assert np.mean(np.abs(out - expected) > 1e-4) < 0.01
    else:
        np.testing.assert_allclose(out, expected, **TOL["resample"])


def test_p1_and_p2_chains_plan_one_resample_and_one_normalize():
    p1 = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomAffine(15, (0.9, 1.1), 0.05),
                     T.RandomFlip(), T.Resize(256), T.GaussianNoise(0.02), T.ZScore()])
    assert stage_kinds(p1.plan((512, 512))) == [("resample", 2, 3, 1), "normalize"]
    p2 = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.ResampleToSpacing(1.5),
                     T.RandomAffine((10, 10, 10), padding="border"), T.RandomCrop(128), T.ZScore()])
    plan = p2.plan((160, 512, 512), (2.5, 0.7, 0.7))
    assert stage_kinds(plan) == [("resample", 2, 3, 0), "normalize"]
    # what comes out, computed here: round(size * spacing / 1.5), then the 128 crop
    resampled = tuple(round(n * s / 1.5) for n, s in zip((160, 512, 512), (2.5, 0.7, 0.7)))
    assert plan.stages[0].geometry[0].out_shape == resampled == (267, 239, 239)
    assert plan.out_shape == (128, 128, 128) and plan.out_spacing == (1.5, 1.5, 1.5)


def test_plan_out_shape_and_spacing_follow_each_step():
    p = T.Pipeline([T.Rot90(1), T.Resize((10, 30), antialias=True), T.GaussianBlur(1.0), T.CropOrPad((12, 25))])
    plan = p.plan((40, 20), (0.5, 2.0))
    # rot90 swaps (40, 20) -> (20, 40) and the spacings; Resize scales the spacing by in / out
    assert plan.out_shape == (12, 25)
    np.testing.assert_allclose(plan.out_spacing, (2.0 * 20 / 10, 0.5 * 40 / 30))
    assert stage_kinds(plan) == [("resample", 0, 1, 0), "filter", "filter", ("resample", 0, 1, 0)]


def test_same_seed_any_batch_split_same_output():
    x = ct_phantom(7, (21, 23))
    p = T.Pipeline(p1_like(None), seed=42)
    full = p(x)
    parts = [p(x[a:b], indices=range(a, b)) for a, b in [(0, 3), (3, 4), (4, 7)]]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    np.testing.assert_array_equal(p(x[5:6], indices=[5])[0], full[5])  # replay one sample alone
    assert not np.allclose(T.Pipeline(p1_like(None), seed=43)(x), full)
    np.testing.assert_array_equal(T.Pipeline(p1_like(None), seed=42)(x), full)


def test_thread_count_does_not_change_the_output():
    import medkern
    x = ct_phantom(5, (33, 35))
    p = T.Pipeline(p1_like(None), seed=3)
    before = medkern.get_num_threads()
    try:
        medkern.set_num_threads(1)
        one = p(x)
        medkern.set_num_threads(2)
        two = p(x)
    finally:
        medkern.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_return_params_reports_each_random_draw():
    x = ct_phantom(3, (20, 20))
    p = T.Pipeline(p1_like(None), seed=7)
    out, params = p(x, return_params=True, indices=[4, 9, 2])
    # the documented draws, from the generator: flip when u < p; the angle (2 u1 - 1) * 15
    flip_u = _C.philox_uniform(7, [4, 9, 2], 3, 1)[:, 0]
    affine_u = _C.philox_uniform(7, [4, 9, 2], 2, 9)
    for i, sample in enumerate(params):
        assert [(d["transform"], d["position"]) for d in sample] == [("RandomAffine", 2), ("RandomFlip", 3)]
        assert sample[1]["flipped"] == (flip_u[i] < 0.5)
        assert sample[0]["degrees"][0] == pytest.approx((2 * affine_u[i, 1] - 1) * 15, abs=1e-12)
        assert sample[0]["scale"] == pytest.approx(0.9 + 0.2 * affine_u[i, 4], abs=1e-12)
    np.testing.assert_array_equal(out, p(x, indices=[4, 9, 2]))


def test_array_kinds_and_non_contiguous_input():
    x = ct_phantom(3, (18, 20))
    p = T.Pipeline(p1_like(None), seed=1)
    ref = p(x)
    t = p(torch.from_numpy(x))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), ref)
    xt = np.ascontiguousarray(np.swapaxes(x, 2, 3))
    swapped_view = np.swapaxes(xt, 2, 3)  # same values as x, strides of a transpose
    assert not swapped_view.flags.c_contiguous
    np.testing.assert_array_equal(p(swapped_view), ref)
    np.testing.assert_array_equal(p(torch.from_numpy(xt).transpose(2, 3)).numpy(), ref)


def test_float16_and_bfloat16_outputs():
    x = torch.from_numpy(ct_phantom(2, (16, 17)))
    for dt in ("float16", "bfloat16"):
        out = T.Pipeline(p1_like(None), seed=2, out_dtype=dt)(x)
        ref = T.Pipeline(p1_like(None), seed=2)(x)
        assert out.dtype == getattr(torch, dt)
        torch.testing.assert_close(out, ref.to(out.dtype), rtol=0, atol=0)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    x = ct_phantom(4, (64, 70))
    p = T.Pipeline(p1_like(None) + [], seed=3)
    cpu = p(torch.from_numpy(x))
    gpu = p(torch.from_numpy(x).cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, **TOL["gpu_vs_cpu"])
    v = ct_phantom(1, (40, 64, 64))
    p2 = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.ResampleToSpacing(1.5),
                     T.RandomAffine((10, 10, 10), padding="border"), T.RandomCrop(24), T.ZScore()], seed=1)
    sp = (2.5, 0.7, 0.7)
    torch.testing.assert_close(p2(torch.from_numpy(v).cuda(), spacing=sp).cpu(), p2(torch.from_numpy(v), spacing=sp),
                               **TOL["gpu_vs_cpu"])


def test_volume_brings_its_spacing():
    import os
    from pydicom.data import get_testdata_file
    from medkern.io import read_dicom_series
    ct2 = os.path.join(os.path.dirname(get_testdata_file("CT_small.dcm")), "dicomdirtests", "77654033", "CT2")
    v = read_dicom_series(ct2)
    p = T.Pipeline([T.Rescale(v.slope, v.intercept), T.ResampleToSpacing(1.0)])
    out = p(v)
    assert out.shape == (1, 1, 5, 8, 8)
    np.testing.assert_array_equal(out, p(v.as_batch(), spacing=v.spacing))


@pytest.mark.parametrize("level", ["avx2", "avx512"])
@pytest.mark.parametrize("dims", [2, 3])
def test_vector_rows_equal_the_scalar_loop_bitwise(dims, level):
    """The AVX-512 / AVX2 row kernels and noise generator (csrc/cpu/simd/resample_kernels.h)
    round exactly as the scalar loop: int16 / uint16 / float32 sources, strided input, rows that
    leave the image. A level this CPU lacks is skipped, not run as a lower one."""
    from simd_levels import simd_level
    shape = (70, 90) if dims == 2 else (18, 30, 40)
    x = ct_phantom(3, shape, seed=5)
    inputs = [x, x.astype(np.uint16), smooth(3, shape), np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)), -1, -2),
              x[..., ::-1, :]]  # a negative row stride: the vector rows gather at negative offsets
    chain = [T.Rescale(1.0, -1024.0), T.Window(40, 400),
             T.RandomAffine(25 if dims == 2 else (15, 10, 5), (0.8, 1.2), translate=0.1, padding="reflect"),
             T.Resize(tuple(s // 2 + 3 for s in shape)), T.GaussianNoise(0.1)]  # noise: vector Philox too
    with simd_level("scalar"):
        scalar = [T.Pipeline(chain, seed=9)(batch) for batch in inputs]
    with simd_level(level):
        vector = [T.Pipeline(chain, seed=9)(batch) for batch in inputs]
    for v, s_ in zip(vector, scalar):
        np.testing.assert_array_equal(v, s_)


def test_concurrent_calls_on_one_pipeline_match_calls_made_alone():
    """Eight threads call one Pipeline with their own shapes (2D and 3D: different plans, stage
    counts and geometry) and labels, many times; every result equals the same call made alone."""
    p = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomAffine(10, scale=(0.9, 1.1)),
                    T.RandomFlip((-1,)), T.Resize(16, antialias=True), T.GaussianNoise(0.05), T.ZScore()], seed=5)
    shapes = [(40, 44), (12, 13), (24, 20), (9, 30), (20, 18, 22), (10, 12, 9), (33, 17), (8, 8, 40)]
    rng = np.random.default_rng(0)
    cases = []
    for k, shape in enumerate(shapes):
        x = ct_phantom(2, shape, seed=k)
        label = rng.integers(0, 4, (2, 1) + shape).astype(np.uint8)
        cases.append((x, label, [3 * k, 3 * k + 1]))
    alone = [p(x, label=label, indices=idx) for x, label, idx in cases]
    start, failures = threading.Barrier(len(cases)), []

    def worker(k):
        x, label, idx = cases[k]
        start.wait()
        for _ in range(30):
            try:
                image, lab = p(x, label=label, indices=idx)
                same = np.array_equal(image, alone[k][0]) and np.array_equal(lab, alone[k][1])
            except Exception as e:  # a mixed-up call may also fail outright
                same = repr(e)
            if same is not True:
                failures.append((shapes[k], same))
                return
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


def test_a_call_leaves_the_pipeline_unchanged_and_plans_are_immutable():
    p = T.Pipeline(p1_like(None) + [T.GaussianBlur(1.0)], seed=4)
    x = ct_phantom(2, (20, 22))
    p.plan((20, 22))
    before = {k: v for k, v in vars(p).items() if k != "_plans"}
    plans_before = dict(p._plans)
    p(x, label=np.ones((2, 1, 20, 22), np.uint8), return_params=True)
    assert {k: v for k, v in vars(p).items() if k != "_plans"} == before
    assert p._plans == plans_before  # a cached shape: nothing added, nothing replaced
    plan = p.plan((20, 22))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stages = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stages[0].mode = "nearest"
    blur = next(s for s in plan.stages if isinstance(s, FilterStage))
    with pytest.raises(ValueError):
        blur.plan.passes[0][2][0, 0] = 5.0  # read-only taps
    with pytest.raises(AttributeError):
        p.transforms = []


def test_pipeline_pickles_without_its_cache():
    p = T.Pipeline(p1_like(None), seed=8)
    x = ct_phantom(2, (18, 19))
    out = p(x)
    q = pickle.loads(pickle.dumps(p))
    assert q._plans == {} and repr(q) == repr(p)
    np.testing.assert_array_equal(q(x), out)


def test_plan_and_seed_errors_name_the_argument():
    p = T.Pipeline([T.ResampleToSpacing(1.0)])
    with pytest.raises(ValueError, match="'spacing'"):
        p.plan((8, 8))
    with pytest.raises(ValueError, match="'spacing'"):
        p.plan((8, 8), (1.0,))
    with pytest.raises(ValueError, match="'seed'"):
        T.Pipeline([], seed=-1)
    with pytest.raises(ValueError, match="'stream'"):
        T.Window(0, 1)(np.ones((1, 1, 4, 4), np.float32), stream=-2)
