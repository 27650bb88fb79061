"""Random augmentation in the fused Pipeline: per-sample random intensity parameters
(RandomGamma, RandomIntensity, GaussianNoise with a std range), the bias field, the elastic
deformation, and labels / masks that follow the geometry with nearest-neighbour sampling.

References: test_pipeline's oracle (scipy.ndimage.map_coordinates of the test's own B-spline
control grid for the elastic field, numpy meshgrid polynomials for the bias field, numpy
formulas for the intensity ops, each from the parameters the pipeline reports), the parameters
themselves recomputed from the Philox draws, and the transforms' float64 reference path
(fused == unfused). Tolerances (tests/tolerances.py): PREPROCESS_TOLERANCES["resample"] on O(1)
values (float32 coordinates and exp/pow in float32); labels: identical except where a
nearest-neighbour tie (source coordinate within float32 rounding of x.5) may round either way,
at most PREPROCESS_LABEL_MISMATCH of the voxels.
"""
import numpy as np
import pytest
import torch

import medkern.transforms as T
from medkern._backend import _C

from test_pipeline import ct_phantom, elastic_control_grid, oracle, smooth, stage_kinds
from tolerances import PREPROCESS_LABEL_MISMATCH, PREPROCESS_TOLERANCES

TOL = PREPROCESS_TOLERANCES["resample"]
POINTWISE = PREPROCESS_TOLERANCES["pointwise"]


# ---- per-sample random intensity parameters ------------------------------------------------------
@pytest.mark.parametrize("shape", [(24, 30), (10, 12, 14)])
def test_random_intensity_transforms_match_oracle(shape):
    x = smooth(5, shape)
    chain = [T.RandomIntensity(scale=(0.8, 1.2), shift=(-0.2, 0.2)), T.Clip(0.0, 2.0),
             T.RandomGamma((0.6, 1.6)), T.RandomAffine(10 if len(shape) == 2 else (5, 5, 5)),
             T.GaussianNoise((0.0, 0.05)), T.BiasField(0.3, order=2)]
    p = T.Pipeline(chain, seed=11)
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params, 11), **TOL)
    np.testing.assert_allclose(out, p.reference(x), **TOL)  # fused == unfused
    # the documented draws: scale/shift uniform (u1, u2), log(gamma) uniform (u1), std uniform (u0)
    samples = list(range(5))
    u_int, u_gamma, u_noise = (_C.philox_uniform(11, samples, position, count)
                               for position, count in ((0, 3), (2, 2), (4, 1)))
    for i, sample in enumerate(params):
        d = {e["transform"]: e for e in sample}
        assert d["RandomIntensity"]["scale"] == pytest.approx(0.8 + 0.4 * u_int[i, 1], rel=1e-12)
        assert d["RandomIntensity"]["shift"] == pytest.approx(-0.2 + 0.4 * u_int[i, 2], rel=1e-12)
        assert d["RandomGamma"]["gamma"] == pytest.approx(0.6 * (1.6 / 0.6) ** u_gamma[i, 1], rel=1e-12)
        assert d["GaussianNoise"]["std"] == pytest.approx(0.05 * u_noise[i, 0], rel=1e-12)


def test_random_intensity_draws_follow_the_sample_index():
    x = smooth(6, (16, 16))
    p = T.Pipeline([T.RandomIntensity((0.5, 2.0), (-1, 1)), T.RandomGamma((0.5, 2.0)), T.GaussianNoise((0.0, 0.1))],
                   seed=5)
    whole = p(x, indices=np.arange(10, 16))
    parts = np.concatenate([p(x[:2], indices=[10, 11]), p(x[2:], indices=[12, 13, 14, 15])])
    np.testing.assert_array_equal(whole, parts)
    assert not np.allclose(whole, p(x))  # other keys, other draws


def test_random_intensity_against_reported_parameters():
    """Independent of the reference path: rebuild each sample's output from its reported scale,
    shift and gamma with numpy."""
    x = smooth(4, (12, 13))
    p = T.Pipeline([T.RandomIntensity((0.5, 1.5), (-0.3, 0.3)), T.RandomGamma((0.5, 2.0))], seed=3)
    out, params = p(x, return_params=True)
    for i in range(4):
        d = {e["transform"]: e for e in params[i]}
        expect = np.maximum(x[i] * d["RandomIntensity"]["scale"] + d["RandomIntensity"]["shift"], 0) ** \
            d["RandomGamma"]["gamma"]
        np.testing.assert_allclose(out[i], expect, **POINTWISE)


def test_probability_zero_is_identity():
    x = smooth(3, (10, 11))
    for t in (T.RandomGamma((0.5, 2.0), p=0.0), T.RandomIntensity(p=0.0), T.BiasField(0.5, p=0.0),
              T.ElasticDeform(5, 4.0, p=0.0)):
        np.testing.assert_allclose(T.Pipeline([t], seed=1)(x), x, **POINTWISE, err_msg=repr(t))


# ---- bias field ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,order", [((20, 24), 3), ((9, 10, 11), 3), ((16, 16), 1), ((6, 7, 8), 0)])
def test_bias_field_matches_the_reported_polynomial(shape, order):
    x = smooth(3, shape)
    p = T.Pipeline([T.BiasField(0.4, order=order)], seed=2)
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, p.reference(x), **TOL)
    axes = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    z, y, xx = list(axes) if len(shape) == 3 else [0.0] + list(axes)
    for i in range(3):
        d = params[i][0]
        terms = (order + 1) * (order + 2) // 2 if len(shape) == 2 else (order + 1) * (order + 2) * (order + 3) // 6
        assert len(d["coefficients"]) == terms
        log_field = sum(c * np.power(z, e[0]) * y ** e[1] * xx ** e[2] for c, e in zip(d["coefficients"], d["exponents"]))
        np.testing.assert_allclose(out[i, 0] / x[i, 0], np.exp(log_field), **POINTWISE)


def test_bias_field_after_geometry_uses_output_coordinates():
    x = smooth(2, (30, 30))
    chain = [T.Resize(15), T.BiasField(0.5)]
    p = T.Pipeline(chain, seed=4)
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params, 4), **TOL)
    assert stage_kinds(p.plan((30, 30))) == [("resample", 0, 1, 1)]


# ---- elastic deformation -------------------------------------------------------------------------
def test_bspline_field_convention_matches_scipy():
    """The kernel's displacement at each output pixel equals scipy's order-3 unprefiltered
    B-spline of the control grid: a ramp image turns the displacement into the output."""
    shape = (23, 29)
    ramp = np.broadcast_to(np.arange(shape[1], dtype=np.float32), shape)[None, None].copy()
    t = T.ElasticDeform(6, 2.0, locked_borders=False, padding="border")
    p = T.Pipeline([t], seed=8)
    out, params = p(ramp, return_params=True)
    from scipy import ndimage
    grid = elastic_control_grid(t, shape, _C.philox_uniform(8, [0], 0, t.draws)[0])
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    dx = ndimage.map_coordinates(grid[1], [yy * 5 / 22, xx * 5 / 28], order=3, prefilter=False, mode="nearest")
    expect = np.clip(xx + dx, 0, shape[1] - 1)
    np.testing.assert_allclose(out[0, 0] - xx, expect - xx, **TOL)  # the displacement, O(1) values
    assert np.abs(dx).max() > 0.3  # the field did move things
    assert params[0][0]["max_control_displacement"] <= 2.0


@pytest.mark.parametrize("shape,padding", [((26, 30), "zeros"), ((26, 30), "reflect"), ((12, 14, 16), "border")])
def test_elastic_matches_oracle(shape, padding):
    x = smooth(3, shape)
    chain = [T.Rescale(2.0, 1.0), T.Flip(-1), T.ElasticDeform(5, 3.0, padding=padding), T.GaussianNoise(0.01)]
    p = T.Pipeline(chain, seed=21)
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params, 21), **TOL)
    np.testing.assert_allclose(out, p.reference(x), **TOL)  # fused == unfused
    assert stage_kinds(p.plan(shape)) == [("resample", 1, 2, 1)]


def test_geometry_after_elastic_starts_a_stage_and_matches_oracle():
    x = ct_phantom(2, (40, 40))
    chain = [T.Rescale(1.0, -1024.0), T.Window(40, 400), T.ElasticDeform(5, 3.0), T.Resize(20)]
    p = T.Pipeline(chain, seed=2)
    assert stage_kinds(p.plan((40, 40))) == [("resample", 2, 1, 0), ("resample", 0, 1, 0)]
    out, params = p(x, return_params=True)
    np.testing.assert_allclose(out, oracle(chain, x, params, 2), **TOL)


def test_elastic_locked_borders_and_zero_displacement():
    x = smooth(2, (20, 21))
    np.testing.assert_allclose(T.Pipeline([T.ElasticDeform(4, 0.0)])(x), x, **POINTWISE)
    t = T.ElasticDeform((4, 5), 3.0)
    grid = t.control_grid((20, 21), np.random.default_rng(0).random(t.draws))
    assert grid.shape == (2, 4, 5)
    assert np.all(grid[:, [0, -1], :] == 0) and np.all(grid[:, :, [0, -1]] == 0)
    assert np.abs(grid[:, 1:-1, 1:-1]).max() > 0


# ---- labels and masks ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(33, 37), (14, 16, 18)])
def test_label_follows_geometry_with_nearest(shape):
    x = ct_phantom(3, shape)
    rng = np.random.default_rng(1)
    label = rng.integers(0, 4, size=(3, 1) + shape).astype(np.uint8)
    dims = len(shape)
    chain = [T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomAffine(12 if dims == 2 else (8, 8, 8), (0.9, 1.1)),
             T.RandomFlip((-1,)), T.ElasticDeform(5, 2.0), T.Resize(tuple(s // 2 for s in shape)), T.GaussianNoise(0.1),
             T.ZScore()]
    p = T.Pipeline(chain, seed=4)
    image, lab, params = p(x, label=label, return_params=True)
    assert lab.dtype == np.uint8 and lab.shape == (3, 1) + tuple(s // 2 for s in shape)
    np.testing.assert_array_equal(image, p(x))  # the label does not change the image
    # the oracle's geometry from the reported parameters, nearest neighbour, no intensity op
    mismatch = np.mean(lab != oracle(chain, label, params, 4, labels=True))
    assert mismatch <= PREPROCESS_LABEL_MISMATCH, mismatch
    assert set(np.unique(lab)) <= {0, 1, 2, 3}


def test_label_kinds_and_dtypes():
    x = torch.from_numpy(ct_phantom(2, (20, 22)))
    label = torch.randint(0, 3, (2, 2, 20, 22))
    p = T.Pipeline([T.RandomAffine(10), T.CenterCrop(16)], seed=1)
    image, lab, params = p(x, label=label, return_params=True)
    assert lab.dtype == torch.int64 and lab.shape == (2, 2, 16, 16) and len(params) == 2
    same, lab_b = p(x, label=label.to(torch.bool))
    assert lab_b.dtype == torch.bool
    torch.testing.assert_close(lab_b, lab.to(torch.bool))
    # a pure crop moves labels exactly
    crop = T.Pipeline([T.CenterCrop(16)])
    _, cropped = crop(x, label=label)
    torch.testing.assert_close(cropped, label[:, :, 2:18, 3:19])


def test_label_errors():
    x = ct_phantom(2, (20, 22))
    p = T.Pipeline([T.RandomAffine(10)])
    with pytest.raises(ValueError, match="'label'"):
        p(x, label=np.zeros((2, 1, 20, 21), np.uint8))
    with pytest.raises(ValueError, match="'label'"):
        p(x, label=np.zeros((3, 1, 20, 22), np.uint8))
    with pytest.raises(TypeError, match="'label'"):
        p(x, label=torch.zeros((2, 1, 20, 22), dtype=torch.uint8))
    with pytest.raises(TypeError, match="'label'"):
        p(x, label=np.zeros((2, 1, 20, 22), np.complex64))
    with pytest.raises(TypeError, match="'label'"):
        p(x, label=[[0]])
    with pytest.raises(ValueError, match="2\\*\\*24"):
        p(x, label=np.full((2, 1, 20, 22), 2 ** 25, np.int64))


# ---- argument errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("make,name", [
    (lambda: T.RandomGamma((0.0, 1.0)), "gamma"), (lambda: T.RandomGamma((2.0, 1.0)), "gamma"),
    (lambda: T.RandomGamma(p=1.5), "p"), (lambda: T.RandomIntensity(scale=(1, float("nan"))), "scale"),
    (lambda: T.RandomIntensity(shift=(1, 0)), "shift"), (lambda: T.GaussianNoise((-0.1, 0.2)), "std"),
    (lambda: T.GaussianNoise(float("inf")), "std"),
    (lambda: T.BiasField(-1.0), "coefficients"), (lambda: T.BiasField(0.5, order=4), "order"),
    (lambda: T.BiasField(0.5, p=-0.1), "p"), (lambda: T.ElasticDeform(3), "num_control_points"),
    (lambda: T.ElasticDeform(5, -1.0), "max_displacement"), (lambda: T.ElasticDeform(5, 1.0, padding="wrap"), "padding"),
    (lambda: T.ElasticDeform(5, 1.0, mode="cubic"), "mode"), (lambda: T.ElasticDeform(5, 1.0, p=2), "p"),
])
def test_argument_errors_name_the_argument(make, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        make()


def test_elastic_grid_rank_mismatch_is_reported():
    with pytest.raises(ValueError, match="'num_control_points'"):
        T.Pipeline([T.ElasticDeform((5, 5, 5), 1.0)])(smooth(1, (10, 10)))


def test_kernel_checks_the_field_argument():
    x = smooth(2, (8, 9))
    mats = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (2, 1, 1))
    idx = np.arange(2, dtype=np.int64)
    ops = np.zeros((2, 0, 4), np.float32)
    out = np.empty((2, 1, 8, 9), np.float32)
    v = _C.TensorView
    from medkern._backend import view
    args = [view(a, n) for a, n in ((x, "input"), (mats, "matrices"), (idx, "sample_indices"), (ops, "pre_ops"),
                                    (ops, "post_ops"), (out, "output"))]
    for bad in (np.zeros((2, 3, 4, 4), np.float32), np.zeros((2, 2, 4, 4), np.float64), np.zeros((1, 2, 4, 4), np.float32),
                np.zeros((2, 2, 0, 4), np.float32)):
        with pytest.raises((ValueError, TypeError), match="'field'"):
            _C.resample_intensity(*args, 1, 0, 0, 0, field=view(bad, "field"))
    assert v is not None
    good = np.zeros((2, 2, 4, 4), np.float32)
    _C.resample_intensity(*args, 1, 0, 0, 0, field=view(good, "field"))
    np.testing.assert_allclose(out, x, **POINTWISE)


# ---- GPU == CPU ----------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(48, 52), (20, 24, 28)])
def test_cuda_augmentation_matches_cpu(shape):
    x = ct_phantom(3, shape)
    label = np.random.default_rng(0).integers(0, 3, (3, 1) + shape).astype(np.uint8)
    dims = len(shape)
    p = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomIntensity(), T.RandomGamma(),
                    T.RandomAffine(10 if dims == 2 else (5, 5, 5)), T.ElasticDeform(5, 2.0), T.BiasField(0.3),
                    T.GaussianNoise((0.0, 0.05)), T.RandomGaussianBlur((0.5, 1.5), p=0.7), T.ZScore()], seed=6)
    cpu_img, cpu_lab = p(torch.from_numpy(x), label=torch.from_numpy(label))
    gpu_img, gpu_lab = p(torch.from_numpy(x).cuda(), label=torch.from_numpy(label).cuda())
    torch.testing.assert_close(gpu_img.cpu(), cpu_img, **PREPROCESS_TOLERANCES["gpu_vs_cpu"])
    assert (gpu_lab.cpu() != cpu_lab).float().mean() <= 2e-3


def test_intensity_only_stage_copies_nan_without_spreading():
    x = smooth(2, (9, 10))
    x[0, 0, 4, 5] = np.nan
    x[1, 0, 2, 2] = np.inf
    out = T.Pipeline([T.Rescale(2.0, 1.0)])(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(x))
    finite = np.isfinite(x)
    np.testing.assert_allclose(out[finite], 2 * x[finite] + 1, **POINTWISE)


def test_label_through_separable_stages():
    """An antialiased Resize runs as filter passes for the image; the label takes the plain
    nearest resize (torch's 'nearest-exact'); a blur leaves the label alone."""
    x = smooth(2, (40, 36))
    label = np.random.default_rng(2).integers(0, 5, (2, 1, 40, 36)).astype(np.int16)
    p = T.Pipeline([T.GaussianBlur(1.0), T.Resize((20, 12), antialias=True)])
    image, lab = p(x, label=label)
    assert image.shape == lab.shape == (2, 1, 20, 12) and lab.dtype == np.int16
    expect = torch.nn.functional.interpolate(torch.from_numpy(label).float(), size=(20, 12), mode="nearest-exact")
    np.testing.assert_array_equal(lab, expect.numpy().astype(np.int16))
