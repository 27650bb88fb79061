"""The fused Pipeline against the unfused chain of the same transforms (same seed), batch-split
and worker invariance of the Philox keys, return_params, array kinds and the planner's stages.

Tolerance: one interpolating step per stage -> fused == unfused up to float32 rounding of the
source coordinates (|error| <= ~1e-5 px x the image gradient) and of the values: rtol/atol
1e-4 on O(1) outputs. Several interpolating steps in one stage (affine then resize) -> the fused
pass resamples once; on a smooth image that differs from resampling twice by < 2 % of the range.
"""
import numpy as np
import pytest
import torch

import medkern.transforms as T

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_equals_unfused_2d_one_interpolation(seed):
    x = ct_phantom(4, (37, 41), seed)
    p = T.Pipeline(p1_like(None), seed=seed)
    np.testing.assert_allclose(p(x), p.reference(x), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seed", [0, 5])
def test_fused_equals_unfused_3d_one_interpolation(seed):
    x = ct_phantom(2, (11, 14, 13), seed)
    p = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.Gamma(1.2),
                    T.RandomAffine((10, 5, 8), scale=(0.9, 1.1), translate=0.05, shear=4),
                    T.RandomFlip(axes=(0, -1)), T.RandomCrop((8, 9, 10)), T.GaussianNoise(0.05), T.ZScore()],
                   seed=seed)
    np.testing.assert_allclose(p(x), p.reference(x), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_random_parameter_sets_fused_vs_unfused(seed):
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
    assert sum(1 for s in p._plan(shape, None) if not isinstance(s, tuple)) == 1
    np.testing.assert_allclose(p(x), p.reference(x), rtol=1e-4, atol=1e-3)


def test_fused_resamples_once_close_to_unfused_twice():
    x = smooth(3, (40, 44))
    p = T.Pipeline([T.RandomAffine(10, scale=(0.95, 1.05), padding="border"), T.Resize((23, 31))], seed=1)
    fused, ref = p(x), p.reference(x)
    assert len(p._plan((40, 44), None)) == 1  # the shrinking resize joins the affine's stage
    rng_ = ref.max() - ref.min()
    assert np.abs(fused - ref).max() < 0.02 * rng_
    assert np.abs(fused - ref).max() > 1e-6  # really one resampling, not two


def test_stages_split_where_fusion_would_change_the_result():
    p = T.Pipeline([T.Window(0, 1), T.Affine(degrees=5), T.GaussianNoise(0.1), T.Affine(degrees=5),
                    T.ZScore(), T.Window(0, 2), T.Resize(8, mode="nearest")])
    stages = p._plan((16, 16), None)
    kinds = ["norm" if isinstance(s, tuple) else (len(s.pre), len(s.geometry), len(s.post)) for s in stages]
    assert kinds == [(1, 1, 1), (0, 1, 0), "norm", (1, 1, 0)]
    x = smooth(2, (16, 16))
    np.testing.assert_allclose(p(x), p.reference(x), rtol=1e-4, atol=1e-4)


def test_p1_and_p2_chains_plan_one_resample_and_one_normalize():
    p1 = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomAffine(15, (0.9, 1.1), 0.05),
                     T.RandomFlip(), T.Resize(256), T.GaussianNoise(0.02), T.ZScore()])
    assert len(p1._plan((512, 512), None)) == 2
    p2 = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.ResampleToSpacing(1.5),
                     T.RandomAffine((10, 10, 10), padding="border"), T.RandomCrop(128), T.ZScore()])
    assert len(p2._plan((160, 512, 512), np.array([2.5, 0.7, 0.7]))) == 2


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
    out, params = p(x, return_params=True)
    assert len(params) == 3
    for sample in params:
        names = [d["transform"] for d in sample]
        assert names == ["RandomAffine", "RandomFlip"]
        assert sample[0]["position"] == 2 and sample[1]["position"] == 3
    np.testing.assert_array_equal(out, p(x))


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
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-3)
    v = ct_phantom(1, (40, 64, 64))
    p2 = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.ResampleToSpacing(1.5),
                     T.RandomAffine((10, 10, 10), padding="border"), T.RandomCrop(24), T.ZScore()], seed=1)
    sp = (2.5, 0.7, 0.7)
    torch.testing.assert_close(p2(torch.from_numpy(v).cuda(), spacing=sp).cpu(), p2(torch.from_numpy(v), spacing=sp),
                               rtol=1e-4, atol=1e-3)


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


@pytest.mark.parametrize("dims", [2, 3])
def test_vector_rows_equal_the_scalar_loop_bitwise(dims):
    """The AVX-512 / AVX2 row kernels and noise generator (csrc/cpu/simd/resample_kernels.h)
    round exactly as the scalar loop: int16 / uint16 / float32 sources, strided input, rows that
    leave the image."""
    from medkern._backend import _C
    shape = (70, 90) if dims == 2 else (18, 30, 40)
    x = ct_phantom(3, shape, seed=5)
    inputs = [x, x.astype(np.uint16), smooth(3, shape), np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)), -1, -2),
              x[..., ::-1, :]]  # a negative row stride: the vector rows gather at negative offsets
    chain = [T.Rescale(1.0, -1024.0), T.Window(40, 400),
             T.RandomAffine(25 if dims == 2 else (15, 10, 5), (0.8, 1.2), translate=0.1, padding="reflect"),
             T.Resize(tuple(s // 2 + 3 for s in shape)), T.GaussianNoise(0.1)]  # noise: vector Philox too
    before = _C.simd_level()
    try:
        for batch in inputs:
            results = []
            for level in ("avx512", "avx2", "scalar"):
                _C.set_simd_level(level)  # clamped to what this CPU has
                results.append(T.Pipeline(chain, seed=9)(batch))
            for r in results[1:]:
                np.testing.assert_array_equal(r, results[0])
    finally:
        _C.set_simd_level(before)
