"""The statistics pass of the pipeline (ZScore, MinMax, PercentileClip; _C.normalize_intensity):
PercentileClip against np.percentile + np.clip computed here (not through the transform's own
reference), masks, rescale, ties, NaN, each argument error, the workspace contract, and on a GPU
the CUDA kernels (one-block, multi-block and radix-select paths) against medkern's CPU kernels.

Tolerances: without rescale the clip bounds are order statistics interpolated in float64 and
rounded once to float32, so the output is within 1 float32 ulp of the reference (rtol 2e-7 plus
an absolute floor of 1e-7 * max|x|); rescale and z-score add one float32 multiply (rtol 1e-6).
GPU vs CPU: percentile bounds come from the same shared formulas (FMA contraction may move the
interpolation by a double ulp: rtol 1e-6); z-score/min-max sum in another order in float64
(rtol 1e-5, atol 1e-5).
"""
import numpy as np
import pytest
import torch

import medkern.transforms as T
from medkern import _C
from medkern._backend import DTYPE_CODES, view
from tolerances import PREPROCESS_TOLERANCES as TOL

RNG = np.random.default_rng(4321)


def random_batch(shape, low=-300.0, high=1200.0):
    """Non-zero random float32 data with a heavy tail, so the percentiles clip something."""
    x = RNG.uniform(low, high, shape) + RNG.standard_cauchy(shape) * 20
    x = x.astype(np.float32)
    x[x == 0] = 1.0
    return x


def expected_clip(x, lower, upper, channel_wise=False, mask=None, rescale=False):
    """np.percentile + np.clip per image, in float64 (the obvious reference)."""
    x = x.astype(np.float64)
    n, c = x.shape[:2]
    out = np.empty_like(x)
    if mask is not None:
        mask = np.broadcast_to(mask.astype(bool), x.shape)
    for i in range(n):
        for j in (range(c) if channel_wise else [slice(None)]):
            img = x[i, j]
            sel = img if mask is None else img[mask[i, j]]
            if sel.size == 0:
                out[i, j] = img
                continue
            lo, hi = np.percentile(sel, [lower, upper])
            clipped = np.clip(img, lo, hi)
            if rescale:
                clipped = (clipped - lo) / (hi - lo if hi > lo else 1.0)
            out[i, j] = clipped
    return out


def assert_clip_close(got, expected, rtol=2e-7):
    scale = np.nanmax(np.abs(expected))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-7 * scale)


# ---- PercentileClip against np.percentile ------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 1, 17, 23), (1, 2, 9, 11, 13), (4, 3, 5, 1), (1, 1, 1, 1)])
@pytest.mark.parametrize("lower,upper", [(0.5, 99.5), (0.0, 100.0), (25.0, 75.0), (37.3, 37.4), (0.0, 3.0)])
@pytest.mark.parametrize("channel_wise", [False, True])
def test_percentile_clip_matches_np_percentile(shape, lower, upper, channel_wise):
    x = random_batch(shape)
    got = T.Pipeline([T.PercentileClip(lower, upper, channel_wise=channel_wise)])(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert_clip_close(got, expected_clip(x, lower, upper, channel_wise))


@pytest.mark.parametrize("shape", [(5, 2, 16, 16), (1, 1, 24, 20, 18)])
@pytest.mark.parametrize("channel_wise", [False, True])
def test_percentile_clip_rescale_maps_to_unit_range(shape, channel_wise):
    x = random_batch(shape)
    t = T.PercentileClip(2.0, 98.0, channel_wise=channel_wise, rescale=True)
    got = T.Pipeline([t])(x)
    np.testing.assert_allclose(got, expected_clip(x, 2.0, 98.0, channel_wise, rescale=True), **TOL["statistics"])
    assert got.min() == 0.0 and got.max() == pytest.approx(1.0, abs=1e-6)


def test_percentile_clip_changes_exactly_the_tails():
    x = random_batch((2, 1, 30, 30))
    got = T.Pipeline([T.PercentileClip(5, 95)])(x)
    for i in range(2):
        lo, hi = np.percentile(x[i].astype(np.float64), [5, 95])
        outside = (x[i] < lo) | (x[i] > hi)  # the voxels np.percentile puts in the tails, and only those
        np.testing.assert_array_equal(got[i] != x[i], outside)
        assert 0 < outside.mean() < 0.2


@pytest.mark.parametrize("mask_channels", [1, 2])
def test_percentile_clip_statistics_over_mask(mask_channels):
    x = random_batch((3, 2, 12, 14))
    mask = RNG.uniform(size=(3, mask_channels, 12, 14)) < 0.3
    mask[2] = False  # an empty mask leaves that sample unchanged
    for channel_wise in (False, True):
        t = T.PercentileClip(10, 90, channel_wise=channel_wise, rescale=True)
        got = T.Pipeline([t])(x, mask=mask.astype(np.uint8))
        want = expected_clip(x, 10, 90, channel_wise, mask=mask, rescale=True)
        np.testing.assert_allclose(got, want, **TOL["statistics"])
        np.testing.assert_array_equal(got[2], x[2])
        unmasked = T.Pipeline([t])(x)
        assert np.abs(unmasked[:2] - got[:2]).max() > 1e-3  # the mask changes the statistics


def test_percentile_clip_ties_and_constant_images():
    x = RNG.integers(0, 4, (3, 1, 7, 9)).astype(np.float32) + 1  # values 1..4, many ties
    x[1] = 7.0  # a constant image
    for lower, upper in [(0.5, 99.5), (10, 60), (50, 51)]:
        got = T.Pipeline([T.PercentileClip(lower, upper)])(x)
        assert_clip_close(got, expected_clip(x, lower, upper))
        np.testing.assert_array_equal(got[1], 7.0)
    got = T.Pipeline([T.PercentileClip(1, 99, rescale=True)])(x)
    np.testing.assert_array_equal(got[1], 0.0)  # zero range: constant image -> 0
    np.testing.assert_allclose(got, expected_clip(x, 1, 99, rescale=True), **TOL["statistics"])


def test_percentile_clip_negative_zero_and_infinities():
    x = random_batch((2, 1, 8, 8))
    x[0, 0, 0, :4] = -0.0
    x[1, 0, 0, 0] = np.inf
    x[1, 0, 0, 1] = -np.inf
    # straight to the kernel: the pipeline's identity resampling would smear the infinities
    out = np.empty_like(x)
    _C.normalize_intensity(view(x), None, view(out), 2, False, 0.0, lower=5.0, upper=95.0)
    assert_clip_close(out, expected_clip(x, 5, 95))
    assert np.isfinite(out).all()


def test_percentile_clip_nan_makes_the_image_nan():
    x = random_batch((3, 1, 10, 10))
    x[0, 0, 3, 4] = np.nan
    got = T.Pipeline([T.PercentileClip(1, 99)])(x)
    assert np.isnan(got[0]).all()
    assert_clip_close(got[1:], expected_clip(x[1:], 1, 99))
    # a NaN outside the mask stays where it is and does not spoil the statistics
    mask = np.ones((3, 1, 10, 10), np.uint8)
    mask[0, 0, 3, 4] = 0
    got = np.empty_like(x)  # straight to the kernel: the pipeline's identity resampling smears NaN
    _C.normalize_intensity(view(x), view(mask), view(got), 2, False, 0.0, lower=1.0, upper=99.0)
    assert np.isnan(got[0, 0, 3, 4]) and np.isnan(got[0]).sum() == 1
    finite = expected_clip(np.nan_to_num(x), 1, 99, mask=mask)
    ok = ~np.isnan(got)
    np.testing.assert_allclose(got[ok], finite[ok], rtol=2e-7, atol=1e-4)


def test_percentile_clip_in_a_pipeline_matches_numpy_chain():
    x = random_batch((3, 2, 13, 17))
    p = T.Pipeline([T.Rescale(1.5, -3.0), T.Flip((-1,)), T.PercentileClip(1, 99, channel_wise=True),
                    T.Rescale(0.5, 1.0), T.PercentileClip(20, 80, rescale=True), T.ZScore()])
    got = p(x)
    chain = expected_clip(np.flip(x.astype(np.float64) * 1.5 - 3.0, -1), 1, 99, channel_wise=True)
    chain = expected_clip(chain * 0.5 + 1.0, 20, 80, rescale=True)
    flat = chain.reshape(3, -1)
    chain = ((flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)).reshape(x.shape)
    np.testing.assert_allclose(got, chain, **TOL["statistics"])
    np.testing.assert_allclose(got, p.reference(x), **TOL["statistics"])  # fused == unfused
    single = T.PercentileClip(3, 97)(x)  # the transform alone: the kernel, float32
    assert single.dtype == np.float32
    assert_clip_close(single, expected_clip(x, 3, 97))


def test_percentile_clip_output_dtypes_and_torch_input():
    x = random_batch((2, 1, 11, 12))
    want = expected_clip(x, 1, 99, rescale=True)
    half = T.Pipeline([T.PercentileClip(1, 99, rescale=True)], out_dtype="float16")(x)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float64), want, rtol=1e-3, atol=1e-3)
    got = T.Pipeline([T.PercentileClip(1, 99, rescale=True)])(torch.from_numpy(x))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), want, **TOL["statistics"])


# ---- argument errors ----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    (dict(lower=-0.1), "lower"), (dict(lower=100.5), "lower"), (dict(lower=float("nan")), "lower"),
    (dict(lower="1"), "lower"), (dict(upper=100.01), "upper"), (dict(upper=float("inf")), "upper"),
    (dict(lower=50, upper=50), "upper"), (dict(lower=60, upper=40), "upper"), (dict(lower=True), "lower"),
])
def test_percentile_clip_argument_errors(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        T.PercentileClip(**kwargs)


def test_normalize_intensity_checks_percentile_arguments():
    x = random_batch((2, 1, 5, 5))
    out = np.empty_like(x)
    with pytest.raises(ValueError, match="'upper'"):
        _C.normalize_intensity(view(x), None, view(out), 2, False, 0.0, lower=50.0, upper=10.0)
    with pytest.raises(ValueError, match="'lower'"):
        _C.normalize_intensity(view(x), None, view(out), 2, False, 0.0, lower=-1.0, upper=10.0)
    with pytest.raises(ValueError, match="'upper'"):
        _C.normalize_intensity(view(x), None, view(out), 2, False, 0.0, lower=1.0, upper=float("nan"))
    with pytest.raises(ValueError, match="'kind'"):
        _C.normalize_intensity(view(x), None, view(out), 3, False, 0.0)
    _C.normalize_intensity(view(x), None, view(out), 2, False, 0.0, lower=0.0, upper=100.0)  # bounds inclusive
    np.testing.assert_array_equal(out, x)


def fake_cuda(array):
    """A view claiming to live on cuda:0 (the checks run before any kernel touches it)."""
    v = view(array)
    return _C.TensorView(array.ctypes.data, DTYPE_CODES[str(array.dtype)], v.shape, v.strides, 1, 0)


def test_normalize_workspace_contract():
    shape = [1, 1, 64, 64, 64]
    assert _C.normalize_workspace_bytes(shape, 2, False, 0) == 0  # the CPU needs none
    need = _C.normalize_workspace_bytes(shape, 2, False, 1)
    assert need > 0
    assert _C.normalize_workspace_bytes(shape, 0, False, 1) > 0  # one big volume: multi-block z-score
    assert _C.normalize_workspace_bytes([256, 1, 32, 32], 0, False, 1) == 0  # many images: one block each
    with pytest.raises(ValueError, match="'shape'"):
        _C.normalize_workspace_bytes([1, -1, 4, 4], 0, False, 1)
    x = np.ones(shape, np.float32)
    out = np.empty_like(x)
    with pytest.raises(ValueError, match="'workspace'"):  # missing on a GPU input
        _C.normalize_intensity(fake_cuda(x), None, fake_cuda(out), 2, False, 0.0, lower=1.0, upper=99.0)
    small = np.empty(need - 1, np.uint8)
    with pytest.raises(ValueError, match="'workspace'"):  # too small
        _C.normalize_intensity(fake_cuda(x), None, fake_cuda(out), 2, False, 0.0, lower=1.0, upper=99.0,
                               workspace=fake_cuda(small))
    with pytest.raises(ValueError, match="'workspace'"):  # on another device
        _C.normalize_intensity(fake_cuda(x), None, fake_cuda(out), 0, False, 0.0, workspace=view(small))


# ---- CUDA kernels vs the CPU kernels --------------------------------------------------------
NORMALIZERS = [
    T.ZScore(), T.ZScore(channel_wise=True, eps=1e-3), T.MinMax(), T.MinMax(channel_wise=True),
    T.PercentileClip(0.5, 99.5), T.PercentileClip(2, 98, channel_wise=True, rescale=True), T.PercentileClip(0, 100),
]


def gpu_vs_cpu(t, x, mask=None):
    p = T.Pipeline([t])
    cpu = p(x, mask=mask)
    gpu = p(torch.from_numpy(x).cuda(), mask=None if mask is None else torch.from_numpy(mask).cuda())
    assert gpu.is_cuda
    tol = dict(rtol=1e-6, atol=1e-6) if isinstance(t, T.PercentileClip) else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu, **tol, err_msg=repr(t))
    return gpu


@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(1, 1, 96, 96, 96), (8, 2, 64, 64), (200, 1, 32, 32), (3, 2, 20, 21, 22)])
@pytest.mark.parametrize("t", NORMALIZERS, ids=repr)
def test_cuda_normalize_matches_cpu(shape, t):
    x = random_batch(shape)
    gpu_vs_cpu(t, x)
    mask = (RNG.uniform(size=(shape[0], 1) + shape[2:]) < 0.4).astype(np.uint8)
    gpu_vs_cpu(t, x, mask)


@pytest.mark.cuda
def test_cuda_percentile_clip_matches_np_percentile():
    x = random_batch((2, 1, 40, 50, 30))
    got = T.Pipeline([T.PercentileClip(0.5, 99.5)])(torch.from_numpy(x).cuda()).cpu().numpy()
    assert_clip_close(got, expected_clip(x, 0.5, 99.5))


@pytest.mark.cuda
def test_cuda_nan_and_empty_mask_rules_match_cpu():
    x = random_batch((3, 1, 40, 40, 40))
    x[0, 0, 5, 5, 5] = np.nan
    mask = np.ones((3, 1, 40, 40, 40), np.uint8)
    mask[2] = 0
    for t in NORMALIZERS:
        gpu = gpu_vs_cpu(t, x, mask).cpu().numpy()
        assert np.isnan(gpu[0]).all() and np.isfinite(gpu[1:]).all()
        np.testing.assert_array_equal(gpu[2], x[2])


@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(1, 1, 256, 256, 256), (1, 1, 330, 330, 330)])
def test_cuda_large_volume_multi_block_is_reproducible(shape):
    # 16.7M voxels: 512 z-score chunks / 1024 histogram chunks per image; 36M: larger chunks
    x = random_batch(shape)
    assert _C.normalize_workspace_bytes(list(shape), 0, False, 1) > 0
    for t in (T.ZScore(), T.MinMax(), T.PercentileClip(0.5, 99.5, rescale=True)):
        first = gpu_vs_cpu(t, x)
        again = T.Pipeline([t])(torch.from_numpy(x).cuda())
        assert torch.equal(first, again), f"{t!r}: two GPU runs differ"
