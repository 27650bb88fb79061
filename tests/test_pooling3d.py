"""max_pool3d / avg_pool3d against torch.nn.functional in float64 (values, torch's flat D*H*W
indices, gradients) over random and exhaustive argument sets, the custom op contracts (opcheck,
gradcheck), empty batches, the modules and every argument check; CUDA against torch's CUDA ops
and medkern's CPU kernels. Inputs hold distinct values (a shuffled ramp) so the max and its index
are unique and must match torch exactly."""
import itertools
import os
import random

import pytest
import torch
import torch.nn.functional as F

import medkern
import medkern.nn
from medkern import _backend
from medkern.ops import avg_pool3d, max_pool3d
from pooling_inputs import distinct, gradcheck_avg, gradcheck_max, layouts
from tolerances import assert_close

DTYPES = [torch.float32, torch.float64]

# (input shape, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ((2, 3, 8, 10, 8), 2, 2, 0, 1, False),                 # 3D U-Net encoder pool
    ((2, 2, 7, 9, 5), 2, 2, 0, 1, True),                   # odd sizes, ceil_mode
    ((1, 2, 7, 8, 9), 3, 2, 1, 1, False),                  # 3x3x3/s2/p1 (video stems)
    ((1, 2, 6, 7, 5), 3, 1, 1, 1, True),
    ((2, 1, 9, 7, 8), 3, 1, 1, 2, False),                  # dilation
    ((1, 3, 5, 11, 9), (1, 2, 2), (1, 2, 2), 0, 1, False),  # in-plane only (anisotropic nnU-Net pools)
    ((2, 2, 9, 8, 7), (4, 3, 2), (3, 2, 1), (2, 1, 0), (1, 2, 3), True),
    ((1, 1, 1, 1, 1), 1, 1, 0, 1, False),                  # size 1
    ((1, 2, 5, 6, 7), (2, 3, 1), None, (1, 0, 0), 1, True),  # stride defaults to the kernel
]

# (input shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    ((2, 3, 8, 10, 8), 2, 2, 0, False, True, None),
    ((1, 2, 7, 9, 5), 3, 2, 1, True, True, None),
    ((1, 2, 7, 9, 5), 3, 2, 1, True, False, None),
    ((2, 1, 5, 8, 6), (3, 2, 1), (1, 3, 2), (1, 1, 0), False, False, None),
    ((1, 2, 6, 7, 5), 2, 1, 1, True, True, 5),
    ((1, 1, 1, 1, 1), 1, 1, 0, False, True, None),
    ((2, 2, 5, 6, 7), (5, 1, 2), (1, 2, 2), (2, 0, 1), True, False, None),
]



def torch_accepts(fn, shape, *args):
    try:
        fn(torch.zeros(shape, dtype=torch.float64), *args)
    except RuntimeError:
        return False
    return True


def max_reference(x, k, s, p, d, ceil):
    return F.max_pool3d(x, k, s, p, d, ceil, return_indices=True)


def has_empty_window(ref):
    # a dilated window can miss the input entirely: torch gives -inf at an index past the window
    # (its backward then scatters to that index), an edge case the gradient tests leave out
    return bool(torch.isinf(ref).any())


def check_max(case, dtype, check_layouts=True):
    shape, k, s, p, d, ceil = case
    x = distinct(shape, dtype)
    ref, ref_idx = max_reference(x, k, s, p, d, ceil)
    for name, xv in (layouts(x) if check_layouts else [("dense", x)]):
        out, idx = max_pool3d(xv, k, s, p, d, ceil, return_indices=True)
        assert torch.equal(out, ref), name
        assert torch.equal(idx, ref_idx), name
        assert torch.equal(max_pool3d(xv, k, s, p, d, ceil), ref), name  # values-only path
    if has_empty_window(ref):
        return
    xg = x.clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    g = torch.randn(ref.shape, dtype=dtype) + 0.1
    max_pool3d(xg, k, s, p, d, ceil).backward(g)
    F.max_pool3d(x_ref, k, s, p, d, ceil).backward(g)
    assert_close(xg.grad, x_ref.grad, op="max_pool3d_backward")


def check_avg(case, dtype, check_layouts=True):
    shape, k, s, p, ceil, cip, div = case
    x = distinct(shape, dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    ref = F.avg_pool3d(x_ref, k, s, p, ceil, cip, div)
    for name, xv in (layouts(x.detach()) if check_layouts else [("dense", x.detach())]):
        assert_close(avg_pool3d(xv, k, s, p, ceil, cip, div), ref.detach(), msg=name, op="avg_pool3d")
    out = avg_pool3d(x, k, s, p, ceil, cip, div)
    g = torch.randn_like(ref) + 0.1
    out.backward(g)
    ref.backward(g)
    assert_close(x.grad, x_ref.grad, op="avg_pool3d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool3d_matches_torch(case, dtype):
    check_max(case, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool3d_matches_torch(case, dtype):
    check_avg(case, dtype)


def random_max_cases(count, seed):
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        shape = (rng.randint(1, 2), rng.randint(1, 3), *(rng.randint(1, 9) for _ in range(3)))
        k = tuple(rng.randint(1, 4) for _ in range(3))
        s = tuple(rng.randint(1, 3) for _ in range(3))
        p = tuple(rng.randint(0, kk // 2) for kk in k)
        d = tuple(rng.randint(1, 3) for _ in range(3))
        ceil = rng.random() < 0.5
        if torch_accepts(F.max_pool3d, shape, k, s, p, d, ceil):
            cases.append((shape, k, s, p, d, ceil))
    return cases


def random_avg_cases(count, seed):
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        shape = (rng.randint(1, 2), rng.randint(1, 3), *(rng.randint(1, 9) for _ in range(3)))
        k = tuple(rng.randint(1, 4) for _ in range(3))
        s = tuple(rng.randint(1, 3) for _ in range(3))
        p = tuple(rng.randint(0, kk // 2) for kk in k)
        ceil, cip = rng.random() < 0.5, rng.random() < 0.5
        div = rng.choice([None, None, 1, 7])
        if torch_accepts(F.avg_pool3d, shape, k, s, p, ceil, cip, div):
            cases.append((shape, k, s, p, ceil, cip, div))
    return cases


@pytest.mark.parametrize("case", random_max_cases(60, seed=3))
def test_max_pool3d_random_shapes_float64(case):
    check_max(case, torch.float64, check_layouts=False)


@pytest.mark.parametrize("case", random_avg_cases(60, seed=4))
def test_avg_pool3d_random_shapes_float64(case):
    check_avg(case, torch.float64, check_layouts=False)


# Every (kernel, stride, padding, dilation, ceil_mode) torch accepts on an odd-sized volume, the
# same along each axis; kernel 4 with dilation 3 spans 10, more than the input holds.
GRID_SHAPE = (1, 2, 5, 7, 9)
GRID = [(k, s, p, d, ceil) for k, s, d, ceil in itertools.product((1, 2, 3, 4), (1, 2, 3), (1, 2, 3), (False, True))
        for p in range(k // 2 + 1)]


@pytest.mark.parametrize("k,s,p,d,ceil", GRID)
def test_max_pool3d_every_accepted_argument_combination(k, s, p, d, ceil):
    if not torch_accepts(F.max_pool3d, GRID_SHAPE, k, s, p, d, ceil):
        with pytest.raises(ValueError, match="'kernel_size'"):
            max_pool3d(distinct(GRID_SHAPE, torch.float64), k, s, p, d, ceil)
        return
    check_max((GRID_SHAPE, k, s, p, d, ceil), torch.float64, check_layouts=False)


@pytest.mark.parametrize("k,s,p,ceil,cip", [(k, s, p, ceil, cip) for k, s, p, d, ceil in GRID if d == 1
                                            for cip in (False, True)])
def test_avg_pool3d_every_accepted_argument_combination(k, s, p, ceil, cip):
    for div in (None, 3):
        check_avg((GRID_SHAPE, k, s, p, ceil, cip, div), torch.float64, check_layouts=False)


@pytest.mark.parametrize("level", ["scalar", "avx2", "avx512"])
def test_max_pool3d_every_simd_level(level):
    before = _backend._C.simd_level()
    try:
        _backend._C.set_simd_level(level)  # clamped to what this CPU has
        for shape, k, s, p, d, ceil in MAX_CASES:
            x = distinct(shape, torch.float32)
            out, idx = max_pool3d(x, k, s, p, d, ceil, return_indices=True)
            ref, ref_idx = F.max_pool3d(x, k, s, p, d, ceil, return_indices=True)
            assert torch.equal(out, ref) and torch.equal(idx, ref_idx)
    finally:
        _backend._C.set_simd_level(before)


def test_max_pool3d_propagates_nan_like_torch():
    x = distinct((1, 2, 6, 6, 6), torch.float32)
    x[0, 0, 1, 1, 1] = float("nan")
    x[0, 1, 0, 0, 0] = x[0, 1, 1, 1, 1] = float("nan")  # two NaNs in one window: torch keeps the last
    out, idx = max_pool3d(x, 2, 2, return_indices=True)
    ref, ref_idx = F.max_pool3d(x, 2, 2, return_indices=True)
    assert torch.equal(out.isnan(), ref.isnan())
    assert torch.equal(out[~out.isnan()], ref[~ref.isnan()])
    assert torch.equal(idx, ref_idx)


def test_unbatched_input_like_torch():
    x = distinct((3, 7, 9, 8), torch.float32)
    out, idx = max_pool3d(x, 3, 2, 1, return_indices=True)
    ref, ref_idx = F.max_pool3d(x, 3, 2, 1, return_indices=True)
    assert torch.equal(out, ref) and torch.equal(idx, ref_idx)
    assert_close(avg_pool3d(x, 2, ceil_mode=True), F.avg_pool3d(x, 2, ceil_mode=True), op="avg_pool3d")


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch_like_torch(dtype):
    x = distinct((0, 2, 5, 6, 7), dtype, requires_grad=True)
    out, idx = max_pool3d(x, 2, return_indices=True)
    ref, ref_idx = F.max_pool3d(x.detach(), 2, return_indices=True)
    assert (out.shape, out.dtype, idx.shape, idx.dtype) == (ref.shape, ref.dtype, ref_idx.shape, ref_idx.dtype)
    avg = avg_pool3d(x, 3, 2, 1)
    assert avg.shape == F.avg_pool3d(x.detach(), 3, 2, 1).shape
    (out.sum() + avg.sum()).backward()
    assert x.grad.shape == x.shape and not x.grad.any()


@pytest.mark.parametrize("case", [MAX_CASES[2], MAX_CASES[4], MAX_CASES[6]])
def test_max_pool3d_gradcheck_float64(case):
    gradcheck_max(max_pool3d, case)


@pytest.mark.parametrize("case", [AVG_CASES[1], AVG_CASES[3], AVG_CASES[4]])
def test_avg_pool3d_gradcheck_and_gradgradcheck_float64(case):
    gradcheck_avg(avg_pool3d, case)


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck(dtype):
    x = distinct((2, 3, 7, 9, 8), dtype, requires_grad=True)
    args = ([3, 3, 2], [2, 2, 1], [1, 1, 0], [1, 2, 1], True)
    torch.library.opcheck(torch.ops.medkern.max_pool3d.default, (x, *args))
    torch.library.opcheck(torch.ops.medkern.max_pool3d_values.default, (x.detach(), *args))
    out, idx = torch.ops.medkern.max_pool3d(x.detach(), *args)
    torch.library.opcheck(torch.ops.medkern.max_pool3d_backward.default,
                          (torch.randn_like(out), x.detach(), *args, idx))
    avg_args = ([3, 2, 2], [2, 1, 2], [1, 1, 0], True, False)
    for divisor in (None, 5):
        torch.library.opcheck(torch.ops.medkern.avg_pool3d.default, (x, *avg_args, divisor))
        g = torch.randn_like(torch.ops.medkern.avg_pool3d(x.detach(), *avg_args, divisor)).requires_grad_()
        torch.library.opcheck(torch.ops.medkern.avg_pool3d_backward.default, (g, x.detach(), *avg_args, divisor))


def test_ops_take_atens_arguments():
    x = distinct((1, 2, 6, 7, 5), torch.float64)
    k, s, p, d = [2, 3, 2], [2, 2, 1], [1, 1, 0], [1, 1, 2]
    out, idx = torch.ops.medkern.max_pool3d(x, k, s, p, d, True)
    ref, ref_idx = torch.ops.aten.max_pool3d_with_indices(x, k, s, p, d, True)
    assert torch.equal(out, ref) and torch.equal(idx, ref_idx)
    g = torch.randn_like(out)
    assert_close(torch.ops.medkern.max_pool3d_backward(g, x, k, s, p, d, True, idx),
                 torch.ops.aten.max_pool3d_with_indices_backward(g, x, k, s, p, d, True, idx),
                 op="max_pool3d_backward")
    avg = torch.ops.medkern.avg_pool3d(x, k, s, p, True, False)
    assert_close(avg, torch.ops.aten.avg_pool3d(x, k, s, p, True, False), op="avg_pool3d")
    g = torch.randn_like(avg)
    assert_close(torch.ops.medkern.avg_pool3d_backward(g, x, k, s, p, True, False, None),
                 torch.ops.aten.avg_pool3d_backward(g, x, k, s, p, True, False, None), op="avg_pool3d")


def test_modules_match_torch():
    x = distinct((2, 3, 7, 9, 8), torch.float32)
    for ours, theirs in [
        (medkern.nn.MaxPool3d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool3d(3, 2, 1, ceil_mode=True)),
        (medkern.nn.MaxPool3d((1, 2, 2), dilation=(2, 1, 1)), torch.nn.MaxPool3d((1, 2, 2), dilation=(2, 1, 1))),
        (medkern.nn.AvgPool3d(2, count_include_pad=False, padding=1),
         torch.nn.AvgPool3d(2, count_include_pad=False, padding=1)),
        (medkern.nn.AvgPool3d(3, 2, divisor_override=4), torch.nn.AvgPool3d(3, 2, divisor_override=4)),
    ]:
        assert_close(ours(x), theirs(x), op="avg_pool3d")
        assert ours.state_dict().keys() == theirs.state_dict().keys() and repr(ours) == repr(theirs)
    out, idx = medkern.nn.MaxPool3d(2, return_indices=True)(x)
    assert torch.equal(idx, F.max_pool3d(x, 2, return_indices=True)[1])


def test_accelerate_swaps_the_3d_pools():
    model = torch.nn.Sequential(torch.nn.MaxPool3d(2), torch.nn.AvgPool3d(3, 1, 1, count_include_pad=False))
    x = distinct((1, 2, 8, 8, 8), torch.float32)
    ref = model(x)
    medkern.accelerate(model, strict=True)
    assert isinstance(model[0], medkern.nn.MaxPool3d) and isinstance(model[1], medkern.nn.AvgPool3d)
    assert model.medkern_report["accelerated"] == ["0", "1"]
    assert_close(model(x), ref, op="avg_pool3d")


def test_meta_tensors_get_shapes_from_the_fake_kernels():
    out, idx = max_pool3d(torch.empty(2, 3, 7, 11, 9, device="meta"), 3, 2, 1, ceil_mode=True, return_indices=True)
    assert out.shape == idx.shape == (2, 3, 4, 6, 5) and idx.dtype == torch.int64 and out.device.type == "meta"
    assert avg_pool3d(torch.empty(2, 3, 7, 11, 9, device="meta"), 2).shape == (2, 3, 3, 5, 4)


# ---- argument checks: exception type and the argument's name (torch's rules) -----------------


def test_rejects_integer_dtype():
    with pytest.raises(TypeError, match="'input'"):
        max_pool3d(torch.ones(1, 1, 4, 4, 4, dtype=torch.int32), 2)
    with pytest.raises(TypeError, match="'input'"):
        avg_pool3d(torch.ones(1, 1, 4, 4, 4, dtype=torch.int64), 2)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="'input' must be 5-D"):
        max_pool3d(torch.randn(4, 4, 4), 2)
    with pytest.raises(ValueError, match="'input' must be 5-D"):
        avg_pool3d(torch.randn(1, 1, 1, 4, 4, 4), 2)


def test_shape_rule_rejects_empty_channel_or_spatial_dimension():
    # the ops route empty operands to torch's kernels (tests/test_empty_batch.py); _C's own rule
    # takes an empty batch and names the input for any other empty dimension
    shape = _backend._C.pool_output_shape
    assert shape([0, 2, 5, 6, 7], [2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False) == [0, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="'input'.*empty channel or spatial"):
        shape([1, 0, 4, 4, 4], [2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False)
    with pytest.raises(ValueError, match="'input'.*empty channel or spatial"):
        shape([1, 2, 4, 0, 4], [2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False, True)


def test_rejects_negative_padding():
    with pytest.raises(ValueError, match="'padding'"):
        max_pool3d(torch.randn(1, 1, 4, 4, 4), 2, padding=-1)


def test_rejects_padding_over_half_kernel():
    with pytest.raises(ValueError, match="'padding' should be at most half"):
        max_pool3d(torch.randn(1, 1, 8, 8, 8), 3, padding=(1, 2, 1))
    with pytest.raises(ValueError, match="'padding' should be at most half"):
        avg_pool3d(torch.randn(1, 1, 8, 8, 8), (2, 4, 4), padding=(2, 0, 0))
    with pytest.raises(ValueError, match="'padding' should be at most half"):  # dilation does not widen it
        max_pool3d(torch.randn(1, 1, 9, 9, 9), 3, padding=2, dilation=2)


def test_rejects_window_larger_than_padded_input():
    with pytest.raises(ValueError, match="'kernel_size'.*too small"):
        max_pool3d(torch.randn(1, 1, 2, 4, 4), 5, padding=(1, 2, 2))
    with pytest.raises(ValueError, match="'kernel_size'.*too small"):
        max_pool3d(torch.randn(1, 1, 3, 4, 4), (2, 1, 1), dilation=(4, 1, 1))
    # average pooling in 3-D also wants the unpadded input to hold the kernel (torch's rule)
    with pytest.raises(ValueError, match="'kernel_size'.*larger than the input"):
        avg_pool3d(torch.randn(1, 1, 2, 4, 4), (3, 1, 1), padding=(1, 0, 0))
    assert max_pool3d(torch.randn(1, 1, 2, 4, 4), (3, 1, 1), padding=(1, 0, 0)).shape == (1, 1, 1, 4, 4)


def test_rejects_non_positive_stride_kernel_dilation_divisor():
    with pytest.raises(ValueError, match="'stride'"):
        max_pool3d(torch.randn(1, 1, 4, 4, 4), 2, stride=(1, 0, 1))
    with pytest.raises(ValueError, match="'kernel_size'"):
        avg_pool3d(torch.randn(1, 1, 4, 4, 4), 0)
    with pytest.raises(ValueError, match="'dilation'"):
        max_pool3d(torch.randn(1, 1, 4, 4, 4), 2, dilation=0)
    with pytest.raises(ValueError, match="'divisor_override'"):
        avg_pool3d(torch.randn(1, 1, 4, 4, 4), 2, divisor_override=0)
    with pytest.raises(ValueError, match="'kernel_size'"):
        max_pool3d(torch.randn(1, 1, 4, 4, 4), (2, 2))


def test_kernels_reject_bad_views():
    x = torch.randn(1, 1, 4, 4, 4)
    v = _backend.view
    args = ([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False)
    fake_cuda_out = _backend._C.TensorView(torch.empty(1, 1, 2, 2, 2).data_ptr(), 0, [1, 1, 2, 2, 2],
                                           [8, 8, 4, 2, 1], 1, 0)
    with pytest.raises(ValueError, match="'output'.*device"):
        _backend._C.max_pool3d_forward(v(x), fake_cuda_out, None, *args)
    with pytest.raises(ValueError, match="'output'"):
        _backend._C.max_pool3d_forward(v(x), v(torch.empty(1, 1, 2, 2, 3)), None, *args)
    with pytest.raises(ValueError, match="'output'.*contiguous"):
        _backend._C.max_pool3d_forward(v(x), v(torch.empty(1, 1, 2, 2, 4)[..., ::2]), None, *args)
    with pytest.raises(TypeError, match="'indices'"):
        _backend._C.max_pool3d_forward(v(x), v(torch.empty(1, 1, 2, 2, 2)), v(torch.empty(1, 1, 2, 2, 2)), *args)
    with pytest.raises(ValueError, match="'grad_output'"):
        _backend._C.max_pool3d_backward(v(torch.empty(1, 1, 3, 3, 3)),
                                        v(torch.empty(1, 1, 3, 3, 3, dtype=torch.int64)), v(x), *args)
    with pytest.raises(TypeError, match="'grad_input'"):
        _backend._C.avg_pool3d_backward(v(torch.empty(1, 1, 2, 2, 2)), v(x.double()), [2, 2, 2], [2, 2, 2],
                                        [0, 0, 0], False, True, 0)
    with pytest.raises(ValueError, match="'kernel_size' must have 3 values"):
        _backend._C.avg_pool3d_forward(v(x), v(torch.empty(1, 1, 2, 2, 2)), [2, 2], [2, 2], [0, 0], False, True, 0)


# ---- CUDA: against torch's CUDA ops and medkern's CPU kernels ---------------------------------
# MEDKERN_CUDA_TEST_DEVICE=cpu runs these on the CPU (a dry run of the tests, as test_cuda_ops.py)

DEVICE = os.environ.get("MEDKERN_CUDA_TEST_DEVICE", "cuda")
on_device = pytest.mark.cuda if DEVICE == "cuda" else (lambda test: test)
CUDA_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def device_dtype(dtype):
    if DEVICE != "cuda" and dtype in (torch.float16, torch.bfloat16):
        pytest.skip(f"medkern's CPU kernels take float32/float64, not {dtype}")
    return dtype


@on_device
@pytest.mark.parametrize("dtype", CUDA_DTYPES)
@pytest.mark.parametrize("case", MAX_CASES)
def test_device_max_pool3d_matches_torch_and_cpu(case, dtype):
    shape, k, s, p, d, ceil = case
    x = distinct(shape, torch.float32).to(device_dtype(dtype))  # distinct in float32; reduced precision may tie
    xd = x.to(DEVICE).requires_grad_()
    out, idx = max_pool3d(xd, k, s, p, d, ceil, return_indices=True)
    ref, ref_idx = F.max_pool3d(xd.detach(), k, s, p, d, ceil, return_indices=True)
    assert torch.equal(out, ref)
    if dtype in (torch.float32, torch.float64):
        assert torch.equal(idx, ref_idx)
        cpu_out, cpu_idx = max_pool3d(x, k, s, p, d, ceil, return_indices=True)
        assert torch.equal(out.cpu(), cpu_out) and torch.equal(idx.cpu(), cpu_idx)
    assert torch.equal(max_pool3d(xd.detach(), k, s, p, d, ceil), ref)  # values-only kernel
    if has_empty_window(ref.float()):
        return
    g = torch.randn(out.shape, device=DEVICE).to(dtype) + 0.1
    out.backward(g)
    # every input's gradient sums those of the windows that picked it (indices checked above); the
    # kernel sums 16-bit gradients in float32 and rounds once, so the oracle sums in float32 too and
    # the result may differ from it by that one rounding
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    expected = torch.zeros(xd.shape, dtype=acc, device=DEVICE).flatten(2).scatter_add_(
        2, idx.flatten(2), g.to(acc).flatten(2)).view(xd.shape)
    one_rounding = {} if dtype in (torch.float32, torch.float64) else dict(rtol=torch.finfo(dtype).eps, atol=1e-6)
    torch.testing.assert_close(xd.grad.to(acc), expected, **one_rounding)


@on_device
@pytest.mark.parametrize("dtype", CUDA_DTYPES)
@pytest.mark.parametrize("case", AVG_CASES)
def test_device_avg_pool3d_matches_torch_and_cpu(case, dtype):
    shape, k, s, p, ceil, cip, div = case
    x = distinct(shape, torch.float64)
    xd = x.to(DEVICE, device_dtype(dtype)).requires_grad_()
    out = avg_pool3d(xd, k, s, p, ceil, cip, div)
    g = torch.randn(out.shape, device=DEVICE).to(dtype) + 0.1
    (grad,) = torch.autograd.grad(out, xd, g)
    # float64 reference from torch's CPU kernel; reduced precision within its rounding
    x64 = x.clone().requires_grad_()
    ref = F.avg_pool3d(x64, k, s, p, ceil, cip, div)
    (ref_grad,) = torch.autograd.grad(ref, x64, g.double().cpu())
    tol = dict(rtol=1e-2, atol=1e-2) if dtype in (torch.float16, torch.bfloat16) else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.double().cpu(), ref, **tol)
    torch.testing.assert_close(grad.double().cpu(), ref_grad, **tol)
    if dtype in (torch.float32, torch.float64):
        assert_close(out.cpu(), avg_pool3d(x.to(dtype), k, s, p, ceil, cip, div), op="avg_pool3d")
        assert_close(out, F.avg_pool3d(xd.detach(), k, s, p, ceil, cip, div), op="avg_pool3d")


@on_device
def test_device_opcheck_and_gradcheck():
    x = distinct((2, 3, 7, 9, 8), torch.float64).to(DEVICE).requires_grad_()
    args = ([3, 3, 2], [2, 2, 1], [1, 1, 0], [1, 2, 1], True)
    torch.library.opcheck(torch.ops.medkern.max_pool3d.default, (x, *args))
    torch.library.opcheck(torch.ops.medkern.avg_pool3d.default, (x, [3, 2, 2], [2, 1, 2], [1, 1, 0], True, False))
    small = distinct((1, 2, 5, 6, 5), torch.float64).to(DEVICE).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: max_pool3d(t, 3, 2, 1), (small,))
    assert torch.autograd.gradcheck(lambda t: avg_pool3d(t, 3, 2, 1, True, False), (small,))


@on_device
def test_device_empty_batch():
    x = torch.randn(0, 2, 5, 6, 7, device=DEVICE, requires_grad=True)
    out, idx = max_pool3d(x, 2, return_indices=True)
    assert out.shape == idx.shape == (0, 2, 2, 3, 3)
    (out.sum() + avg_pool3d(x, 2).sum()).backward()
    assert x.grad.shape == x.shape
