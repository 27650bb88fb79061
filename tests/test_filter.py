"""The separable filter stage: _C.filter_axis against a dense numpy matrix product, GaussianBlur
against scipy.ndimage.gaussian_filter, Resize(antialias=True) against torch's antialiased
bilinear interpolate, the Pipeline's separable stages against test_pipeline's oracle (scipy
blur, torch interpolate, numpy intensity ops from the reported parameters), every argument
check, and (with a GPU) CUDA against the CPU kernel.

Tolerance: a pass sums at most a few dozen float32 products of O(1) values: 1e-5 absolute
(tests/tolerances.py, PREPROCESS_TOLERANCES["filter"]).
"""
import numpy as np
import pytest
import torch
from scipy import ndimage

import medkern.transforms as T
from medkern._backend import _C, view
from medkern.transforms.filter import gaussian_taps, linear_resize_taps
from medkern.transforms.pipeline import FilterStage
from test_pipeline import oracle, stage_kinds
from tolerances import PREPROCESS_TOLERANCES as TOL

RNG = np.random.default_rng(2024)
ATOL = TOL["filter"]["atol"]
SCIPY_MODE = {"zeros": "constant", "border": "nearest", "reflect": "reflect"}


def dense_filter(x, axis, indices, weights):
    """Independent reference: the taps as a dense (out_len, in_len) matrix applied along the axis."""
    length = x.shape[2 + axis]
    matrix = np.zeros((indices.shape[0], length))
    for i in range(indices.shape[0]):
        for j, w in zip(indices[i], weights[i]):
            if 0 <= j < length:
                matrix[i, j] += w
    out = np.tensordot(matrix, np.moveaxis(x.astype(np.float64), 2 + axis, 0), axes=(1, 0))
    return np.moveaxis(out, 0, 2 + axis)


def random_taps(in_len, out_len, taps):
    # indices from -1 to in_len: both ends outside the axis must read zero
    indices = RNG.integers(-1, in_len + 1, size=(out_len, taps)).astype(np.int64)
    weights = RNG.uniform(-1, 1, size=(out_len, taps)).astype(np.float32)
    return indices, weights


def run_filter(x, axis, indices, weights, out_dtype=torch.float32):
    shape = list(x.shape)
    shape[2 + axis] = indices.shape[0]
    out = torch.empty(shape, dtype=out_dtype)
    _C.filter_axis(view(x, "input"), view(torch.from_numpy(indices), "indices"),
                   view(torch.from_numpy(weights), "weights"), view(out, "output"), axis, 0)
    return out


# ---- the kernel ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 1, 5), (2, 2, 5, 6, 7), (1, 1, 4, 1, 3)])
@pytest.mark.parametrize("out_len,taps", [(None, 3), (4, 1), (11, 6)])
def test_filter_axis_matches_dense_matrix(shape, out_len, taps):
    x = torch.from_numpy(RNG.uniform(0.5, 2.0, shape).astype(np.float32))
    for axis in range(len(shape) - 2):
        n_out = shape[2 + axis] if out_len is None else out_len
        indices, weights = random_taps(shape[2 + axis], n_out, taps)
        got = run_filter(x, axis, indices, weights)
        np.testing.assert_allclose(got.numpy(), dense_filter(x.numpy(), axis, indices, weights), atol=ATOL,
                                   rtol=1e-5, err_msg=f"axis {axis}")


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_filter_axis_reads_strided_input(axis):
    base = torch.from_numpy(RNG.uniform(0.5, 2.0, (2, 4, 9, 11, 13)).astype(np.float32))
    views = [base[:, 1:3, ::2, 1:, ::3],                  # sliced: no axis has stride 1
             base.permute(0, 1, 4, 3, 2),                 # transposed spatial axes
             base[:, :1].expand(2, 3, 9, 11, 13)]         # a broadcast (stride 0) channel axis
    for x in views:
        assert not x.is_contiguous()
        indices, weights = random_taps(x.shape[2 + axis], 5, 4)
        got = run_filter(x, axis, indices, weights)
        np.testing.assert_allclose(got.numpy(), dense_filter(x.numpy(), axis, indices, weights), atol=ATOL)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("axis", [0, 1])
def test_filter_axis_low_precision_output_is_the_rounded_float32_result(dtype, axis):
    x = torch.from_numpy(RNG.uniform(-3, 3, (2, 2, 10, 12)).astype(np.float32))
    indices, weights = random_taps(x.shape[2 + axis], 7, 5)
    expected = run_filter(x, axis, indices, weights).to(dtype)  # torch rounds to nearest even too
    got = run_filter(x, axis, indices, weights, out_dtype=dtype)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


# ---- GaussianBlur ---------------------------------------------------------------------------
def scipy_blur(x, sigma, padding, truncate=4.0):
    out = np.empty(x.shape, np.float64)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[n, c] = ndimage.gaussian_filter(x[n, c].astype(np.float64), sigma, truncate=truncate,
                                                mode=SCIPY_MODE[padding], cval=0.0)
    return out


@pytest.mark.parametrize("padding", ["zeros", "border", "reflect"])
@pytest.mark.parametrize("sigma", [1.5, (0.6, 2.5), (0.0, 1.2), (4.0, 7.0)])
def test_gaussian_blur_2d_matches_scipy(padding, sigma):
    x = RNG.uniform(0.5, 2.0, (2, 2, 13, 17)).astype(np.float32)
    got = T.Pipeline([T.GaussianBlur(sigma, padding=padding)])(x)
    np.testing.assert_allclose(got, scipy_blur(x, sigma, padding), atol=ATOL)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflect"])
@pytest.mark.parametrize("sigma,truncate", [(1.0, 4.0), ((2.0, 0.0, 0.8), 3.0), ((0.5, 1.5, 3.0), 2.5)])
def test_gaussian_blur_3d_matches_scipy(padding, sigma, truncate):
    x = RNG.uniform(0.5, 2.0, (2, 1, 7, 9, 11)).astype(np.float32)
    got = T.Pipeline([T.GaussianBlur(sigma, truncate=truncate, padding=padding)])(x)
    np.testing.assert_allclose(got, scipy_blur(x, sigma, padding, truncate), atol=ATOL)


def test_gaussian_taps_are_scipys_kernel():
    # scipy's correlation weights: blur a unit impulse far from the edges
    impulse = np.zeros(41)
    impulse[20] = 1.0
    for sigma, truncate in [(1.5, 4.0), (0.7, 3.0), (3.2, 2.0)]:
        indices, weights = gaussian_taps(sigma, truncate, 41, "zeros")
        row = np.zeros(41)
        row[indices[20]] = weights[20]
        np.testing.assert_allclose(row, ndimage.gaussian_filter1d(impulse, sigma, truncate=truncate), atol=1e-15)


def test_gaussian_blur_of_int16_batch_to_float16():
    x = RNG.integers(-1000, 2000, (2, 1, 12, 10)).astype(np.int16)
    p = T.Pipeline([T.Rescale(1.0, -1024.0), T.GaussianBlur(1.3)], out_dtype="float16")
    got = p(x)
    assert got.dtype == np.float16
    expected = scipy_blur(x.astype(np.float64) - 1024.0, 1.3, "reflect")
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=2e-3, atol=1e-2)


def test_gaussian_blur_with_every_sigma_zero_is_the_identity():
    x = torch.from_numpy(RNG.uniform(0.5, 2.0, (2, 1, 6, 7)).astype(np.float32))
    got = T.Pipeline([T.GaussianBlur(0.0)], out_dtype="bfloat16")(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got, x.to(torch.bfloat16), rtol=0, atol=0)


def test_gaussian_blur_alone_is_scipy():
    x = RNG.uniform(0.5, 2.0, (1, 2, 9, 8)).astype(np.float32)
    np.testing.assert_allclose(T.GaussianBlur((1.0, 2.0), padding="border")(x),
                               scipy_blur(x, (1.0, 2.0), "border"), atol=ATOL)


# ---- Resize(antialias=True) -----------------------------------------------------------------
SIZES_2D = [(20, 18), (13, 37), (7, 50), (39, 36), (5, 3), (80, 11), (1, 1), (40, 37)]


@pytest.mark.parametrize("size", SIZES_2D)
def test_resize_antialias_2d_matches_torch(size):
    x = torch.rand(2, 3, 40, 37) + 0.5
    expected = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    resize = T.Resize(size, antialias=True)
    got = T.Pipeline([resize])(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
    torch.testing.assert_close(resize(x), expected, rtol=0, atol=ATOL)  # the unfused reference


def torch_antialias_3d(x, size):
    """3D antialiased resize from torch's 2D one: the filter is separable and each axis' taps
    depend on that axis alone (a 2D call with one axis kept resizes only the other)."""
    n, c, d, h, w = x.shape
    od, oh, ow = size
    interp = torch.nn.functional.interpolate
    y = interp(x.reshape(n, c * d, h, w), size=(oh, ow), mode="bilinear", antialias=True, align_corners=False)
    y = y.reshape(n, c, d, oh, ow).permute(0, 1, 4, 2, 3).reshape(n, c * ow, d, oh)
    y = interp(y, size=(od, oh), mode="bilinear", antialias=True, align_corners=False)
    return y.reshape(n, c, ow, od, oh).permute(0, 1, 3, 4, 2)


@pytest.mark.parametrize("size", [(4, 5, 6), (9, 3, 20), (2, 16, 1), (12, 8, 6)])
def test_resize_antialias_3d_matches_torch_per_axis(size):
    x = torch.rand(2, 2, 12, 16, 10) + 0.5
    got = T.Pipeline([T.Resize(size, antialias=True)])(x)
    torch.testing.assert_close(got, torch_antialias_3d(x, size), rtol=0, atol=ATOL)


def test_resize_antialias_without_shrinking_is_the_plain_resize():
    x = RNG.uniform(0.5, 2.0, (1, 1, 6, 7)).astype(np.float32)
    p = T.Pipeline([T.Resize((9, 14), antialias=True, padding="zeros")])
    assert not any(isinstance(s, FilterStage) for s in p.plan((6, 7)).stages)
    np.testing.assert_allclose(p(x), T.Pipeline([T.Resize((9, 14), padding="zeros")])(x), rtol=0, atol=0)


def test_resize_antialias_growing_axis_uses_the_padding():
    # shrink one axis (separable stage), grow the other with zeros padding: the edge blends with 0
    x = np.ones((1, 1, 12, 4), np.float32)
    got = T.Pipeline([T.Resize((4, 8), antialias=True, padding="zeros")])(x)
    np.testing.assert_allclose(got[0, 0, :, 0], 0.75, atol=ATOL)  # src -0.25: 0.75 * x[0] + 0.25 * 0
    np.testing.assert_allclose(got[0, 0, :, 3], 1.0, atol=ATOL)


def test_linear_resize_taps_downsample_by_two_are_a_box_of_the_triangle():
    indices, weights = linear_resize_taps(8, 4, "border", True)
    # scale 2: centre 2i + 1, samples 2i - 1 .. 2i + 2 with triangle weights 1/4, 3/4, 3/4, 1/4
    np.testing.assert_array_equal(indices[1], [1, 2, 3, 4])
    np.testing.assert_allclose(weights[1], [0.125, 0.375, 0.375, 0.125])
    assert weights[0][indices[0] >= 0].sum() == pytest.approx(1.0)
    assert np.all(indices[0][indices[0] >= 0] >= 0) and indices[0][0] == 0


def test_resize_antialias_updates_spacing():
    x = RNG.uniform(0.5, 2.0, (1, 1, 20, 10)).astype(np.float32)
    out, params = T.Pipeline([T.Resize((10, 10), antialias=True)])(x, spacing=(1.0, 2.0), return_params=True)
    assert out.shape == (1, 1, 10, 10)
    assert params[0] == [{"transform": "Resize", "position": 0, "size": (10, 10)}]
    _, spacing = T.Resize((10, 10), antialias=True).reference(x.astype(np.float64), np.array([1.0, 2.0]), 0,
                                                              np.arange(1), 0)
    np.testing.assert_allclose(spacing, [2.0, 2.0])


# ---- the Pipeline's separable stages ----------------------------------------------------------
def ct_like(n, shape):
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r2 = sum(g ** 2 for g in grids)
    base = np.where(r2 < 0.7, 1064.0, 24.0) + 300 * np.exp(-r2 / 0.1)
    noise = RNG.integers(-20, 20, (n, 1) + tuple(shape))
    return (base + noise).astype(np.int16)


@pytest.mark.parametrize("out_dtype", ["float32", "float16"])
def test_pipeline_with_blur_and_antialias_matches_oracle_2d(out_dtype):
    x = ct_like(3, (40, 44))
    chain = [T.Rescale(1.0, -1024.0), T.Window(40, 400), T.GaussianBlur((1.0, 0.5)),
             T.RandomFlip(axes=(-1,)), T.Resize((17, 30), antialias=True), T.Gamma(1.3), T.ZScore()]
    p = T.Pipeline(chain, seed=7, out_dtype=out_dtype)
    got, params = p(x, return_params=True)
    assert stage_kinds(p.plan((40, 44))) == [("resample", 2, 0, 0), "filter", ("resample", 0, 1, 0), "filter",
                                             ("resample", 1, 0, 0), "normalize"]
    tol = TOL["resample"] if out_dtype == "float32" else TOL["half_output"]
    np.testing.assert_allclose(got.astype(np.float64), oracle(chain, x, params, 7), **tol)
    np.testing.assert_allclose(got.astype(np.float64), p.reference(x), **tol)  # fused == unfused


def test_pipeline_with_blur_and_antialias_matches_oracle_3d_torch():
    x = torch.from_numpy(ct_like(2, (14, 12, 16)))
    chain = [T.Rescale(1.0, -1024.0), T.GaussianBlur((1.2, 0.0, 2.0), padding="zeros"),
             T.Resize((7, 12, 20), antialias=True), T.RandomAffine((5, 3, 4), scale=(0.9, 1.1)),
             T.GaussianBlur(0.8, padding="border")]
    got, params = T.Pipeline(chain, seed=3)(x, return_params=True)
    assert isinstance(got, torch.Tensor) and got.shape == (2, 1, 7, 12, 20)
    expected = oracle(chain, x.numpy(), params, 3)
    scale = np.abs(expected).max()  # values in HU (~1e3): compared as O(1) values
    np.testing.assert_allclose(got.numpy() / scale, expected / scale, **TOL["filter"])


def test_pipeline_separable_stage_reads_the_callers_float32_batch_without_writing_it():
    x = torch.rand(2, 1, 20, 24) + 0.5
    copy = x.clone()
    strided = x.transpose(2, 3)
    got = T.Pipeline([T.GaussianBlur(1.0)])(strided)
    torch.testing.assert_close(x, copy, rtol=0, atol=0)
    expected = torch.from_numpy(scipy_blur(strided.numpy(), 1.0, "reflect")).float()
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)


# ---- argument errors --------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [-1.0, float("nan"), (1.0, -0.5), "big", True])
def test_gaussian_blur_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="'sigma'"):
        T.GaussianBlur(sigma)


def test_gaussian_blur_rejects_wrong_number_of_sigmas():
    with pytest.raises(ValueError, match="'sigma'"):
        T.Pipeline([T.GaussianBlur((1.0, 1.0, 1.0))])(np.ones((1, 1, 5, 5), np.float32))


@pytest.mark.parametrize("truncate", [0.0, -2.0, float("inf")])
def test_gaussian_blur_rejects_bad_truncate(truncate):
    with pytest.raises(ValueError, match="'truncate'"):
        T.GaussianBlur(1.0, truncate=truncate)


def test_gaussian_blur_rejects_bad_padding():
    with pytest.raises(ValueError, match="'padding'"):
        T.GaussianBlur(1.0, padding="wrap")


def test_resize_rejects_antialias_with_nearest_and_non_bool():
    with pytest.raises(ValueError, match="'antialias'"):
        T.Resize(8, mode="nearest", antialias=True)
    with pytest.raises(TypeError, match="'antialias'"):
        T.Resize(8, antialias="yes")


def filter_args(**change):
    args = dict(input=torch.rand(2, 1, 6, 7), indices=torch.zeros(5, 3, dtype=torch.int64),
                weights=torch.ones(5, 3), output=torch.empty(2, 1, 5, 7), axis=0)
    args.update(change)
    return args


def call_filter(args):
    views = {k: v if isinstance(v, (int, _C.TensorView)) else view(v, k) for k, v in args.items()}
    _C.filter_axis(views["input"], views["indices"], views["weights"], views["output"], views["axis"], 0)


def test_filter_axis_valid_arguments_run():
    call_filter(filter_args())  # the baseline the error cases below change one thing of


@pytest.mark.parametrize("change,error,name", [
    (dict(axis=2), ValueError, "'axis'"),
    (dict(axis=-1), ValueError, "'axis'"),
    (dict(weights=torch.ones(5, 2)), ValueError, "'weights'"),
    (dict(weights=torch.ones(4, 3)), ValueError, "'weights'"),
    (dict(weights=torch.ones(5, 3, dtype=torch.float64)), TypeError, "'weights'"),
    (dict(weights=torch.ones(3, 5, 3)), ValueError, "'weights'"),  # per-sample weights for 3 samples, not 2
    (dict(weights=torch.ones(2, 5, 3, 1)), ValueError, "'weights'"),
    (dict(indices=torch.zeros(5, 3, dtype=torch.int32)), TypeError, "'indices'"),
    (dict(indices=torch.zeros(5, 0, dtype=torch.int64), weights=torch.ones(5, 0)), ValueError, "'indices'"),
    (dict(indices=torch.zeros(15, dtype=torch.int64)), ValueError, "'indices'"),
    (dict(indices=torch.zeros(3, 5, dtype=torch.int64).t()), ValueError, "'indices'"),
    (dict(input=torch.rand(2, 1, 6, 7, dtype=torch.float64)), TypeError, "'input'"),
    (dict(input=torch.rand(2, 6)), ValueError, "'input'"),
    (dict(output=torch.empty(2, 1, 6, 7)), ValueError, "'output'"),
    (dict(output=torch.empty(2, 1, 7, 5).transpose(2, 3)), ValueError, "'output'"),
    (dict(output=torch.empty(2, 1, 5, 7, dtype=torch.float64)), TypeError, "'output'"),
])
def test_filter_axis_rejects_bad_argument(change, error, name):
    with pytest.raises(error, match=name):
        call_filter(filter_args(**change))


def test_filter_axis_rejects_output_aliasing_input():
    x = torch.rand(1, 1, 5, 5)
    with pytest.raises(ValueError, match="'output'"):
        call_filter(filter_args(input=x, output=x, indices=torch.zeros(5, 2, dtype=torch.int64),
                                weights=torch.ones(5, 2)))


def fake_cuda_view(t):
    code = _C.DTYPE_CODES[str(t.dtype).rpartition(".")[2]]
    return _C.TensorView(t.data_ptr(), code, list(t.shape), list(t.stride()), 1, 0)


@pytest.mark.parametrize("name", ["indices", "weights", "output"])
def test_filter_axis_rejects_mixed_devices(name):
    args = filter_args()
    args[name] = fake_cuda_view(args[name])
    with pytest.raises(ValueError, match=f"'{name}'"):
        call_filter(args)


@pytest.mark.skipif("filter_axis" in _C.build_info()["cuda_ops"], reason="built with the CUDA kernel")
def test_filter_axis_on_cuda_view_without_cuda_kernel_raises():
    args = {k: fake_cuda_view(v) if not isinstance(v, int) else v for k, v in filter_args().items()}
    with pytest.raises(NotImplementedError, match="filter_axis"):
        call_filter(args)


# ---- CUDA == CPU --------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_filter_axis_cuda_matches_cpu(dtype):
    x = torch.from_numpy(RNG.uniform(-2, 2, (2, 3, 9, 10, 11)).astype(np.float32))
    strided = x.permute(0, 1, 4, 3, 2)
    for axis in range(3):
        indices, weights = random_taps(strided.shape[2 + axis], 6, 5)
        cpu = run_filter(strided, axis, indices, weights, out_dtype=dtype)
        shape = list(strided.shape)
        shape[2 + axis] = 6
        out = torch.empty(shape, dtype=dtype, device="cuda")
        xc = strided.cuda()
        # named: a view borrows the pointer only, a temporary's memory goes back to the allocator
        indices_dev, weights_dev = torch.from_numpy(indices).cuda(), torch.from_numpy(weights).cuda()
        _C.filter_axis(view(xc, "input"), view(indices_dev, "indices"), view(weights_dev, "weights"),
                       view(out, "output"), axis, torch.cuda.current_stream().cuda_stream)
        torch.cuda.synchronize()
        tol = dict(rtol=0, atol=ATOL) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(out.cpu(), cpu, **tol)


@pytest.mark.cuda
def test_pipeline_blur_and_antialias_cuda_matches_cpu():
    x = torch.from_numpy(ct_like(2, (30, 34)))
    p = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.GaussianBlur((1.5, 0.7)),
                    T.Resize((13, 20), antialias=True), T.ZScore()], seed=1)
    cpu = p(x)
    gpu = p(x.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, **TOL["resample"])


# ---- per-sample weights and RandomGaussianBlur ------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 2, 9, 11), (2, 1, 5, 6, 7)])
def test_filter_axis_per_sample_weights(shape):
    """(N, out_len, K) weights: sample n is filtered with its own block, the same as a shared-
    weights call on that sample alone (the dense matrix reference)."""
    x = torch.from_numpy(RNG.uniform(0.5, 2.0, shape).astype(np.float32))
    for axis in range(len(shape) - 2):
        indices, _ = random_taps(shape[2 + axis], 6, 4)
        weights = RNG.uniform(-1, 1, size=(shape[0], 6, 4)).astype(np.float32)
        got = run_filter(x, axis, indices, weights)
        for n in range(shape[0]):
            np.testing.assert_allclose(got[n:n + 1].numpy(), dense_filter(x[n:n + 1].numpy(), axis, indices, weights[n]),
                                       atol=ATOL, rtol=0)


@pytest.mark.parametrize("shape,per_axis", [((30, 26), False), ((12, 14, 16), True)])
def test_random_gaussian_blur_is_scipy_with_each_samples_sigma(shape, per_axis):
    x = ct_like(4, shape)
    blur = T.RandomGaussianBlur((0.4, 2.0), p=0.75, per_axis=per_axis, padding="border")
    p = T.Pipeline([T.Rescale(1.0, -1024.0), blur], seed=3)
    out, params = p(x, return_params=True)
    sigmas = [next(d["sigma"] for d in s if d["transform"] == "RandomGaussianBlur") for s in params]
    for n, sigma in enumerate(sigmas):
        ref = x[n, 0].astype(np.float64) - 1024.0
        if max(sigma) > 0:
            ref = ndimage.gaussian_filter(ref, sigma, mode="nearest")
        np.testing.assert_allclose(out[n, 0], ref, rtol=1e-5, atol=2e-3)
    # the documented draws: applied when u0 < p, sigma = low + (high - low) * u(1 + axis) (u1 on every
    # axis without per_axis)
    u = _C.philox_uniform(3, [0, 1, 2, 3], 1, 4)
    for n, sigma in enumerate(sigmas):
        draws = u[n, 1:1 + len(shape)] if per_axis else np.full(len(shape), u[n, 1])
        np.testing.assert_allclose(sigma, (0.4 + 1.6 * draws) * (u[n, 0] < 0.75), rtol=1e-12)
    assert len({tuple(np.round(s, 6)) for s in sigmas}) >= 3
    np.testing.assert_allclose(out, p.reference(x), rtol=1e-5, atol=2e-3)
    # the draws follow the sample index: any batch split gives the same output
    parts = np.concatenate([p(x[:1], indices=[0]), p(x[1:], indices=[1, 2, 3])])
    np.testing.assert_array_equal(parts, out)


def test_random_gaussian_blur_arguments():
    with pytest.raises(ValueError, match="'sigma'"):
        T.RandomGaussianBlur((2.0, 1.0))
    with pytest.raises(ValueError, match="'sigma'"):
        T.RandomGaussianBlur((-0.5, 1.0))
    with pytest.raises(ValueError, match="'p'"):
        T.RandomGaussianBlur((0.5, 1.0), p=1.5)
    x = ct_like(2, (10, 12)).astype(np.float32)
    np.testing.assert_allclose(T.Pipeline([T.RandomGaussianBlur((0.5, 1.0), p=0.0)])(x), x, rtol=0, atol=0)
