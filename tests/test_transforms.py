"""Each transform, run through the fused kernel (Pipeline([t]) or the transform called alone),
against an independent reference: numpy formulas, np.flip / np.rot90 / slicing, torch
interpolate and grid_sample (align_corners=False) with matrices built in the tests
(test_pipeline's oracle), scipy.ndimage (boundary modes), parameters recomputed from the Philox
draws, plus the Philox generator against the Random123 known-answer vectors, and one test per
error path. Tolerances: tests/tolerances.py (PREPROCESS_TOLERANCES)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

import medkern.transforms as T
from medkern import _C
from test_pipeline import affine_to_source, oracle
from tolerances import PREPROCESS_TOLERANCES as TOL

RNG = np.random.default_rng(1234)


def ct_batch(n=3, c=1, shape=(17, 23), dtype=np.int16):
    x = RNG.normal(1024, 300, (n, c) + shape)
    return x.clip(0, 4000).astype(dtype)


def smooth_batch(n=2, c=1, shape=(19, 24)):
    """A smooth non-zero image (sum of broad Gaussians): interpolation errors stay small."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    out = np.zeros((n, c) + shape, np.float32)
    for i in range(n):
        for j in range(c):
            centre = RNG.uniform(-0.5, 0.5, len(shape))
            out[i, j] = 1.5 + np.exp(-sum((g - m) ** 2 for g, m in zip(grids, centre)) / 0.5)
    return out


def fused(t, x, **kw):
    return T.Pipeline([t], **{k: v for k, v in kw.items() if k in ("seed", "out_dtype")})(
        x, **{k: v for k, v in kw.items() if k not in ("seed", "out_dtype")})


# ---- Philox ------------------------------------------------------------------------------
KAT = [  # Random123 kat_vectors, philox4x32 10: counter[4], key[2] -> output[4]
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    assert _C.philox4x32_10(counter, key) == expected


def test_philox_uniform_is_built_from_the_block_words():
    seed, sample, stream = 0x1234_5678_9ABC, 7, 3
    key = [seed & 0xFFFFFFFF, seed >> 32]
    u = _C.philox_uniform(seed, [sample], stream, 4)[0]
    for draw in range(4):
        w = _C.philox4x32_10([draw // 2, 0, sample, stream], key)
        a, b = (w[0], w[1]) if draw % 2 == 0 else (w[2], w[3])
        assert u[draw] == ((a >> 5) * 2.0 ** 26 + (b >> 6)) / 2.0 ** 53


def test_philox_normal_is_box_muller_of_the_block_words():
    seed, sample, stream = 99, 5, 2
    z = _C.philox_normal(seed, sample, stream, 8)
    for group in range(2):
        w = _C.philox4x32_10([group, 0, sample, stream | 0x80000000], [seed, 0])
        for half in range(2):
            u1 = ((w[2 * half] >> 8) + 1) * 2.0 ** -24
            u2 = (w[2 * half + 1] >> 8) * 2.0 ** -24
            r = math.sqrt(-2 * math.log(u1))
            np.testing.assert_allclose(z[4 * group + 2 * half], r * math.cos(2 * math.pi * u2), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(z[4 * group + 2 * half + 1], r * math.sin(2 * math.pi * u2), rtol=1e-5,
                                       atol=1e-6)


def test_philox_distributions():
    u = _C.philox_uniform(3, list(range(2000)), 0, 16).ravel()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    z = _C.philox_normal(3, 0, 0, 200_000)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


# ---- point-wise intensity ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.float32])
def test_rescale_window_clip_gamma_match_numpy(dtype):
    x = ct_batch(dtype=dtype) if dtype != np.uint8 else RNG.integers(1, 255, (2, 1, 9, 13)).astype(np.uint8)
    xf = x.astype(np.float64)
    hu = xf * 1.5 - 1024
    cases = [
        (T.Rescale(1.5, -1024), hu),
        (T.Window(40, 400), np.clip((xf - (40 - 200)) / 400, 0, 1)),
        (T.Clip(100, 900), np.clip(xf, 100, 900)),
        (T.Gamma(0.7), np.maximum(xf, 0) ** 0.7),
    ]
    for t, expected in cases:
        got = fused(t, x)
        assert got.dtype == np.float32 and got.shape == x.shape
        np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-5 * max(1, np.abs(expected).max()),
                                   err_msg=repr(t))
    chain = T.Pipeline([T.Rescale(1.5, -1024), T.Window(40, 400), T.Gamma(1.3)])(x)
    np.testing.assert_allclose(chain, np.clip((hu + 160) / 400, 0, 1) ** 1.3, **TOL["pointwise"])


def test_nan_propagates_through_pointwise_and_normalize():
    x = smooth_batch()
    x[0, 0, 3, 4] = np.nan
    out = T.Pipeline([T.Window(1.5, 1.0)])(x)
    assert np.isnan(out[0, 0, 3, 4]) and np.isfinite(out[1]).all()
    z = T.Pipeline([T.ZScore()])(x)
    assert np.isnan(z[0]).all() and np.isfinite(z[1]).all()
    with pytest.raises(ValueError, match="'batch'"):
        T.Pipeline([T.Window(1.5, 1.0)], check_finite=True)(x)


# ---- geometry vs independent references --------------------------------------------------
@pytest.mark.parametrize("shape", [(9, 14), (5, 6, 7)])
def test_flip_matches_np_flip(shape):
    x = ct_batch(shape=shape)
    for axes in [(-1,), (0,), tuple(range(len(shape)))]:
        np.testing.assert_array_equal(fused(T.Flip(axes), x), np.flip(x, [a % len(shape) + 2 for a in axes]))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_matches_np_rot90(k):
    x = ct_batch(shape=(7, 12))
    np.testing.assert_array_equal(fused(T.Rot90(k), x), np.rot90(x, k, axes=(2, 3)))
    v = ct_batch(shape=(4, 6, 9))
    np.testing.assert_array_equal(fused(T.Rot90(k, axes=(0, 2)), v), np.rot90(v, k, axes=(2, 4)))


def test_crops_match_slicing_and_pad():
    x = ct_batch(shape=(15, 20))
    np.testing.assert_array_equal(fused(T.CenterCrop((7, 8)), x), x[:, :, 4:11, 6:14])
    out, params = T.Pipeline([T.RandomCrop((7, 8))], seed=5)(x, return_params=True)
    # the documented draw: offset = floor(u * (size - crop + 1)) per axis
    u = _C.philox_uniform(5, list(range(3)), 0, 3)
    for i, p in enumerate(params):
        oy, ox = int(u[i, 0] * 9), int(u[i, 1] * 13)
        assert tuple(p[0]["offset"]) == (oy, ox)
        np.testing.assert_array_equal(out[i], x[i, :, oy:oy + 7, ox:ox + 8])
    padded = fused(T.CropOrPad((19, 21)), x)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 1))))
    edge = fused(T.CropOrPad((19, 11), padding="border"), x)
    np.testing.assert_array_equal(edge, np.pad(x[:, :, :, 4:15], ((0, 0), (0, 0), (2, 2), (0, 0)), mode="edge"))


@pytest.mark.parametrize("size", [(11, 31), (40, 17), (8, 8)])
def test_resize_linear_matches_torch_interpolate(size):
    x = smooth_batch(shape=(19, 24))
    expected = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(fused(T.Resize(size), x), expected.numpy(), **TOL["resize"])


def test_resize_trilinear_and_nearest_match_torch():
    v = smooth_batch(shape=(6, 9, 11))
    exp = F.interpolate(torch.from_numpy(v), size=(10, 5, 13), mode="trilinear", align_corners=False)
    np.testing.assert_allclose(fused(T.Resize((10, 5, 13)), v), exp.numpy(), **TOL["resize"])
    x = ct_batch(shape=(12, 18)).astype(np.float32)
    for size in [(5, 7), (30, 29)]:
        exp = F.interpolate(torch.from_numpy(x), size=size, mode="nearest-exact")
        np.testing.assert_array_equal(fused(T.Resize(size, mode="nearest"), x), exp.numpy())


def test_resample_to_spacing_matches_interpolate_when_sizes_divide():
    x = smooth_batch(shape=(40, 30))
    out = T.Pipeline([T.ResampleToSpacing(2.0)])(x, spacing=(1.0, 2.0))
    exp = F.interpolate(torch.from_numpy(x), size=(20, 30), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(out, exp.numpy(), **TOL["resize"])
    _, params = T.Pipeline([T.ResampleToSpacing((1.5, 0.5))])(x, spacing=(1.0, 2.0), return_params=True)
    assert params[0][0]["size"] == (27, 120)


def _theta_from_index_matrix(m, in_shape, out_shape):
    """torch affine_grid theta (normalized, align_corners=False, (x, y[, z]) order) for an
    output-index -> input-index matrix."""
    d = len(in_shape)

    def to_norm(shape):  # index -> normalized: n = (2 i + 1) / size - 1
        a = np.eye(d + 1)
        for k, s in enumerate(shape):
            a[k, k], a[k, d] = 2.0 / s, 1.0 / s - 1
        return a
    theta = to_norm(in_shape) @ m @ np.linalg.inv(to_norm(out_shape))
    perm = list(range(d))[::-1] + [d]
    return theta[perm][:, perm][:d]


def index_matrix(shape, degrees, scale, shear, translate_fraction):
    """The output->input index matrix of an Affine, built by the test's own oracle."""
    d = len(shape)
    m = np.eye(d + 1)
    m[:d, :d], m[:d, d] = affine_to_source(shape, degrees, scale, shear,
                                           np.asarray(translate_fraction) * np.asarray(shape))
    return m


@pytest.mark.parametrize("padding,torch_mode", [("zeros", "zeros"), ("border", "border"), ("reflect", "reflection")])
def test_affine_matches_torch_grid_sample(padding, torch_mode):
    x = smooth_batch(n=2, shape=(21, 26))
    t = T.Affine(degrees=23.0, scale=(0.8, 1.1), translate=(0.1, -0.05), shear=7.0, padding=padding)
    out = T.Pipeline([t])(x)
    m = index_matrix((21, 26), (23.0,), (0.8, 1.1), 7.0, (0.1, -0.05))
    theta = torch.from_numpy(_theta_from_index_matrix(m, (21, 26), (21, 26))).float()[None].expand(2, 2, 3)
    grid = F.affine_grid(theta, (2, 1, 21, 26), align_corners=False)
    exp = F.grid_sample(torch.from_numpy(x), grid, mode="bilinear", padding_mode=torch_mode, align_corners=False)
    np.testing.assert_allclose(out, exp.numpy(), **TOL["resample"])


def test_affine_3d_matches_torch_grid_sample_nearest_and_linear():
    v = smooth_batch(n=1, shape=(9, 11, 13))
    t = T.Affine(degrees=(10.0, -15.0, 20.0), scale=1.1, translate=0.05)
    m = index_matrix((9, 11, 13), (10.0, -15.0, 20.0), 1.1, 0.0, 0.05)
    theta = torch.from_numpy(_theta_from_index_matrix(m, (9, 11, 13), (9, 11, 13))).float()[None]
    grid = F.affine_grid(theta, (1, 1, 9, 11, 13), align_corners=False)
    exp = F.grid_sample(torch.from_numpy(v), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    np.testing.assert_allclose(fused(t, v), exp.numpy(), **TOL["resample"])


@pytest.mark.parametrize("padding", ["zeros", "border", "reflect"])
@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("shape", [(13, 17), (6, 7, 9)])
def test_padding_modes_match_scipy(padding, mode, shape):
    x = ct_batch(n=1, shape=shape).astype(np.float32)
    d = len(shape)
    rng = np.random.default_rng(7)
    m = np.eye(d + 1)
    m[:d, :d] += rng.uniform(-0.3, 0.3, (d, d))
    m[:d, d] = rng.uniform(-6, 6, d) + 0.123  # far outside on some sides; avoid exact .5 ties
    out = fused(T.Affine(matrix=m, mode=mode, padding=padding), x)
    scipy_mode = {"zeros": "grid-constant", "border": "nearest", "reflect": "reflect"}[padding]
    exp = ndimage.affine_transform(x[0, 0].astype(np.float64), m[:d, :d], offset=m[:d, d], order=1 if mode == "linear" else 0,
                                   mode=scipy_mode, cval=0.0, prefilter=False)
    if mode == "linear":
        np.testing.assert_allclose(out[0, 0], exp, rtol=1e-4, atol=1e-3 * np.abs(exp).max())
    else:  # nearest may differ only where a coordinate is within float error of a .5 tie
        assert np.mean(out[0, 0] != exp) < 0.01


def test_positive_rotation_turns_content_counter_clockwise():
    x = np.zeros((1, 1, 21, 21), np.float32)
    x[0, 0, 10, 16] = 1.0  # right of the centre (10, 10)
    out = fused(T.Affine(degrees=90.0), x)
    assert np.unravel_index(np.argmax(out[0, 0]), (21, 21)) == (4, 10)  # now above the centre


def test_random_affine_draws_the_documented_parameters():
    """Draws per sample: apply (u0 < p), angle (2 u1 - 1) * degrees, scale low + (high - low) u4,
    shifts (2 u5,6 - 1) * fraction * size, shear (2 u8 - 1) * shear; recomputed here from the
    generator, and the output against the oracle's resampling with those parameters."""
    x = smooth_batch(n=24, shape=(12, 14))
    chain = [T.RandomAffine(15, scale=(0.9, 1.1), translate=0.05, shear=6, p=0.5)]
    out, params = T.Pipeline(chain, seed=3)(x, return_params=True, indices=range(100, 124))
    u = _C.philox_uniform(3, list(range(100, 124)), 0, 9)
    applied = u[:, 0] < 0.5
    assert 0 < applied.sum() < 24
    for i, p in enumerate(params):
        d = p[0]
        assert d["applied"] == applied[i]
        if applied[i]:
            np.testing.assert_allclose(d["degrees"], [(2 * u[i, 1] - 1) * 15], rtol=1e-12)
            assert d["scale"] == pytest.approx(0.9 + 0.2 * u[i, 4], rel=1e-12)
            np.testing.assert_allclose(d["translate"], (2 * u[i, 5:7] - 1) * 0.05 * np.array([12, 14]), rtol=1e-12)
            assert d["shear"] == pytest.approx((2 * u[i, 8] - 1) * 6, rel=1e-12)
    np.testing.assert_allclose(out, oracle(chain, x, params, 3, range(100, 124)), **TOL["resample"])


def test_random_flip_flips_the_documented_samples():
    x = ct_batch(n=20, shape=(5, 6))
    out, params = T.Pipeline([T.RandomFlip(axes=(-1,), p=0.5)], seed=11)(x, return_params=True)
    flipped = _C.philox_uniform(11, list(range(20)), 0, 1)[:, 0] < 0.5  # flip when u < p
    assert [p[0]["flipped"] for p in params] == list(flipped) and 0 < flipped.sum() < 20
    for i, f in enumerate(flipped):
        np.testing.assert_array_equal(out[i], x[i, :, :, ::-1] if f else x[i])


# ---- noise and normalization -------------------------------------------------------------
def test_gaussian_noise_adds_the_philox_normals():
    x = smooth_batch(n=3, c=2, shape=(10, 11))
    out = T.Pipeline([T.GaussianNoise(0.1)], seed=4)(x, indices=[5, 6, 7])
    for i, s in enumerate([5, 6, 7]):
        z = _C.philox_normal(4, s, 0, x[0].size).reshape(x.shape[1:])
        np.testing.assert_allclose(out[i], x[i] + 0.1 * z, **TOL["pointwise"])


def test_zscore_and_minmax_match_numpy():
    x = smooth_batch(n=3, c=2, shape=(9, 10)) * 100
    z = T.Pipeline([T.ZScore()])(x)
    flat = x.reshape(3, -1).astype(np.float64)
    exp = (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)
    np.testing.assert_allclose(z.reshape(3, -1), exp, **TOL["statistics"])
    zc = T.Pipeline([T.ZScore(channel_wise=True)])(x)
    per = x.reshape(6, -1).astype(np.float64)
    np.testing.assert_allclose(zc.reshape(6, -1), (per - per.mean(1, keepdims=True)) / per.std(1, keepdims=True),
                               **TOL["statistics"])
    mm = T.Pipeline([T.MinMax()])(x)
    np.testing.assert_allclose(mm.reshape(3, -1), (flat - flat.min(1, keepdims=True)) / np.ptp(flat, 1, keepdims=True),
                               **TOL["statistics"])
    const = T.Pipeline([T.ZScore()])(np.full((1, 1, 4, 4), 7, np.int16))
    np.testing.assert_array_equal(const, 0)


def test_zscore_mask_restricts_statistics():
    x = smooth_batch(n=2, shape=(8, 9)) * 10
    mask = np.zeros((2, 1, 8, 9), np.uint8)
    mask[:, :, 2:6, 3:7] = 1
    out = T.Pipeline([T.ZScore()])(x, mask=mask)
    for i in range(2):
        sel = x[i, 0][mask[i, 0] == 1].astype(np.float64)
        np.testing.assert_allclose(out[i, 0], (x[i, 0] - sel.mean()) / sel.std(), **TOL["statistics"])
    np.testing.assert_allclose(out, T.ZScore()(x, mask=mask), **TOL["statistics"])


@pytest.mark.parametrize("out_dtype", ["float16", "bfloat16"])
def test_half_outputs_round_like_torch(out_dtype):
    x = torch.from_numpy(ct_batch(shape=(16, 16)))
    p32 = T.Pipeline([T.Rescale(0.37, -500.3), T.Affine(degrees=10)])(x)
    low = T.Pipeline([T.Rescale(0.37, -500.3), T.Affine(degrees=10)], out_dtype=out_dtype)(x)
    assert low.dtype == getattr(torch, out_dtype)
    torch.testing.assert_close(low, p32.to(getattr(torch, out_dtype)), rtol=0, atol=0)
    specials = torch.tensor([0.0, -0.0, 1e-8, 6e-8, 3e-5, 65504.0, 65520.0, 1e6, float("inf"), float("nan")])
    got = T.Pipeline([])(specials.reshape(1, 1, 1, -1), ).to(torch.float32)
    half = T.Pipeline([], out_dtype=out_dtype)(specials.reshape(1, 1, 1, -1))
    torch.testing.assert_close(half, got.to(getattr(torch, out_dtype)), rtol=0, atol=0, equal_nan=True)


# ---- each transform called alone: the kernel on the input's device, float32 ------------------
ALONE = [
    T.Rescale(2, -5), T.Window(1.8, 0.6), T.Clip(1.6, 2.0), T.Gamma(2.0), T.GaussianNoise(0.3),
    T.GaussianNoise((0.1, 0.4)), T.RandomGamma((0.5, 2.0)), T.RandomIntensity(), T.BiasField(0.3),
    T.ZScore(), T.MinMax(), T.PercentileClip(2, 98, rescale=True), T.Flip((-1, -2)), T.RandomFlip(p=0.5),
    T.Rot90(3), T.Affine(degrees=12, shear=5), T.RandomAffine(20, (0.8, 1.2), 0.1, 5), T.Resize((7, 30)),
    T.Resize((9, 12), antialias=True), T.CropOrPad((25, 9)), T.CenterCrop(9), T.RandomCrop((10, 12)),
    T.ElasticDeform(5, 2.0), T.GaussianBlur((1.0, 0.5)), T.RandomGaussianBlur((0.5, 1.5)),
]


@pytest.mark.parametrize("t", ALONE, ids=repr)
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_transform_alone_runs_the_kernel_in_float32(t, kind):
    """``t(x)`` is a one-transform pipeline at position ``stream``: float32, the input's array
    kind and device, within float32 tolerance of the float64 reference with the same draws, and
    (torch or numpy) exactly what Pipeline([t]) gives."""
    x = smooth_batch(n=3, shape=(19, 24))
    batch = torch.from_numpy(x) if kind == "torch" else x
    alone = t(batch, seed=9, indices=[4, 5, 6], stream=2)
    if kind == "torch":
        assert isinstance(alone, torch.Tensor) and alone.dtype == torch.float32 and alone.device == batch.device
        alone = alone.numpy()
    else:
        assert isinstance(alone, np.ndarray) and alone.dtype == np.float32
    expected, _ = t.reference(x.astype(np.float64), None, 9, np.array([4, 5, 6]), 2)
    np.testing.assert_allclose(alone, expected, **TOL["resample"])
    # the stream is the transform's position: the same draws as at position 2 of a pipeline
    in_pipeline = T.Pipeline([T.Clip(-1e9, 1e9), T.Clip(-1e9, 1e9), t], seed=9)(x, indices=[4, 5, 6])
    np.testing.assert_array_equal(alone, in_pipeline)


@pytest.mark.cuda
@pytest.mark.parametrize("t", ALONE, ids=repr)
def test_transform_alone_on_cuda_stays_on_the_gpu(t):
    x = torch.from_numpy(smooth_batch(n=3, shape=(19, 24)))
    gpu = t(x.cuda(), seed=9, stream=1)
    assert gpu.is_cuda and gpu.dtype == torch.float32
    expected, _ = t.reference(x.double().numpy(), None, 9, np.arange(3), 1)
    np.testing.assert_allclose(gpu.cpu().numpy(), expected, **TOL["resample"])


# ---- bad input ---------------------------------------------------------------------------
def test_errors_name_the_parameter():
    x = ct_batch()
    p = T.Pipeline([T.Window(40, 400)])
    with pytest.raises(TypeError, match="'batch'.*float64"):
        p(x.astype(np.float64))
    with pytest.raises(ValueError, match="'batch'.*4-D"):
        p(x[0])
    with pytest.raises(ValueError, match="'batch'.*empty"):
        p(x[:0])
    with pytest.raises(TypeError, match="'batch'"):
        p([[1, 2]])
    with pytest.raises(ValueError, match="'spacing'"):
        p(x, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="'spacing'"):
        p(x, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="'spacing'"):
        T.Pipeline([T.ResampleToSpacing(1.0)])(x)
    with pytest.raises(ValueError, match="'spacing'"):
        T.Pipeline([T.ResampleToSpacing(-1.0)])(x, spacing=(1, 1))
    with pytest.raises(ValueError, match="'width'"):
        T.Window(40, 0)
    with pytest.raises(ValueError, match="'width'"):
        T.Window(40, -3)
    with pytest.raises(ValueError, match="'size'.*larger"):
        T.Pipeline([T.RandomCrop((30, 5))])(x)
    with pytest.raises(ValueError, match="'size'.*larger"):
        T.Pipeline([T.CenterCrop(100)])(x)
    with pytest.raises(ValueError, match="'size'"):
        T.Pipeline([T.Resize((0, 4))])(x)
    with pytest.raises(ValueError, match="'padding'"):
        T.Affine(padding="wrap")
    with pytest.raises(ValueError, match="'mode'"):
        T.Resize(4, mode="cubic")
    with pytest.raises(ValueError, match="'out_dtype'"):
        T.Pipeline([], out_dtype="int8")
    with pytest.raises(TypeError, match="'out_dtype'"):
        T.Pipeline([], out_dtype="bfloat16")(x)
    with pytest.raises(TypeError, match="'transforms'"):
        T.Pipeline([lambda a: a])
    with pytest.raises(ValueError, match="'axes'"):
        T.Pipeline([T.Flip(axes=(3,))])(x)
    with pytest.raises(ValueError, match="'std'"):
        T.GaussianNoise(-1)
    with pytest.raises(ValueError, match="'indices'"):
        p(x, indices=[0, 1])
    with pytest.raises(ValueError, match="'p'"):
        T.RandomFlip(p=2)


def test_c_entry_points_check_their_arguments():
    from medkern._backend import view
    x = ct_batch(n=2, shape=(5, 6))
    out = np.empty((2, 1, 5, 6), np.float32)
    ops = np.zeros((2, 0, 4), np.float32)
    idx = np.arange(2, dtype=np.int64)
    good = np.broadcast_to(np.eye(3)[:2], (2, 2, 3)).copy()
    with pytest.raises(ValueError, match="'matrices'"):
        _C.resample_intensity(view(x), view(np.zeros((2, 3, 3))), view(idx), view(ops), view(ops), view(out), 1, 0, 0)
    with pytest.raises(ValueError, match="'output'"):
        _C.resample_intensity(view(x), view(good), view(idx), view(ops), view(ops), view(out[:1]), 1, 0, 0)
    with pytest.raises(ValueError, match="'padding'"):
        _C.resample_intensity(view(x), view(good), view(idx), view(ops), view(ops), view(out), 1, 7, 0)
    with pytest.raises(TypeError, match="'output'"):
        _C.resample_intensity(view(x), view(good), view(idx), view(ops), view(ops), view(out.astype(np.float64)), 1, 0, 0)
    fake = _C.TensorView(good.ctypes.data, 1, [2, 2, 3], [6, 3, 1], 1, 0)
    with pytest.raises(ValueError, match="'matrices'.*cuda"):
        _C.resample_intensity(view(x), fake, view(idx), view(ops), view(ops), view(out), 1, 0, 0)
    with pytest.raises(ValueError, match="'mask'"):
        _C.normalize_intensity(view(out), view(np.ones((2, 1, 5, 5), np.uint8)), view(out), 0, False, 0.0)
    with pytest.raises(ValueError, match="'stream'"):
        _C.philox_uniform(0, [0], -1, 3)
