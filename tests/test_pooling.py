"""max_pool2d / avg_pool2d against torch.nn.functional: values, indices, gradients, the custom
op contracts (opcheck) and every argument check. Inputs hold distinct values (a shuffled ramp)
so the max and its index are unique and must match torch exactly."""
import pytest
import torch
import torch.nn.functional as F

import medkern.nn
from medkern import _backend
from medkern.ops import avg_pool2d, max_pool2d
from simd_levels import SIMD_LEVELS, simd_level
from pooling_inputs import distinct, gradcheck_avg, gradcheck_max, layouts
from tolerances import assert_close

DTYPES = [torch.float32, torch.float64]

# (input shape, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ((2, 3, 26, 26), 2, 2, 0, 1, False),     # seed CNN pool 1
    ((2, 4, 11, 11), 2, 2, 0, 1, False),     # seed CNN pool 2 (odd size, floor)
    ((2, 4, 11, 11), 2, 2, 0, 1, True),      # ... with ceil_mode
    ((1, 2, 17, 15), 3, 2, 1, 1, False),     # ResNet stem pool
    ((1, 2, 16, 16), 3, 2, 1, 1, True),
    ((2, 3, 13, 17), 3, 1, 1, 2, False),     # dilation
    ((2, 3, 9, 8), (4, 3), (3, 2), (2, 1), (1, 2), True),
    ((1, 1, 1, 1), 1, 1, 0, 1, False),       # size 1
    ((3, 1, 7, 5), (1, 3), (2, 1), (0, 1), 1, True),
    ((1, 2, 5, 9), 3, None, 0, 1, True),     # stride defaults to kernel
]

# (input shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    ((2, 3, 26, 26), 2, 2, 0, False, True, None),
    ((2, 4, 11, 11), 3, 2, 1, True, True, None),
    ((2, 4, 11, 11), 3, 2, 1, True, False, None),
    ((1, 2, 7, 10), (3, 2), (2, 3), (1, 1), False, False, None),
    ((1, 2, 7, 10), 2, 1, 1, True, True, 3),
    ((1, 1, 1, 1), 1, 1, 0, False, True, None),
    ((3, 2, 5, 6), (5, 1), (1, 2), (2, 0), True, False, None),
]



@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_matches_torch(case, dtype):
    shape, k, s, p, d, ceil = case
    x = distinct(shape, dtype)
    ref, ref_idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    for name, xv in layouts(x):
        out, idx = max_pool2d(xv, k, s, p, d, ceil, return_indices=True)
        assert_close(out, ref, name, op="max_pool2d")
        assert_close(idx, ref_idx, name, op="max_pool2d")
        assert_close(max_pool2d(xv, k, s, p, d, ceil), ref, name, op="max_pool2d")  # values-only path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_gradient_matches_torch(case, dtype):
    shape, k, s, p, d, ceil = case
    x = distinct(shape, dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out = max_pool2d(x, k, s, p, d, ceil)
    ref = F.max_pool2d(x_ref, k, s, p, d, ceil)
    g = torch.randn_like(ref) + 0.1
    out.backward(g)
    ref.backward(g)
    assert_close(x.grad, x_ref.grad, op="max_pool2d_backward")


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_max_pool2d_every_simd_level(level):
    with simd_level(level):
        for shape, k, s, p, d, ceil in MAX_CASES:
            x = distinct(shape, torch.float32)
            out, idx = max_pool2d(x, k, s, p, d, ceil, return_indices=True)
            ref, ref_idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
            assert_close(out, ref, str(shape), op="max_pool2d")
            assert_close(idx, ref_idx, str(shape), op="max_pool2d")


def test_max_pool2d_propagates_nan_like_torch():
    x = distinct((1, 1, 6, 6), torch.float32)
    x[0, 0, 1, 1] = float("nan")
    out, idx = max_pool2d(x, 2, 2, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, 2, 2, return_indices=True)
    assert_close(out, ref, op="max_pool2d", equal_nan=True)
    assert_close(idx, ref_idx, op="max_pool2d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool2d_matches_torch(case, dtype):
    shape, k, s, p, ceil, cip, div = case
    x = distinct(shape, dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    ref = F.avg_pool2d(x_ref, k, s, p, ceil, cip, div)
    for name, xv in layouts(x.detach()):
        assert_close(avg_pool2d(xv, k, s, p, ceil, cip, div), ref.detach(), name, op="avg_pool2d")
    out = avg_pool2d(x, k, s, p, ceil, cip, div)
    g = torch.randn_like(ref) + 0.1
    out.backward(g)
    ref.backward(g)
    assert_close(x.grad, x_ref.grad, op="avg_pool2d")


def test_unbatched_input_like_torch():
    x = distinct((3, 9, 10), torch.float32)
    out, idx = max_pool2d(x, 3, 2, 1, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert_close(out, ref, op="max_pool2d")
    assert_close(idx, ref_idx, op="max_pool2d")
    assert_close(avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(x, 2, ceil_mode=True), op="avg_pool2d")


@pytest.mark.parametrize("case", [MAX_CASES[3], MAX_CASES[5], MAX_CASES[6]])
def test_max_pool2d_gradcheck_float64(case):
    gradcheck_max(max_pool2d, case)


@pytest.mark.parametrize("case", [AVG_CASES[1], AVG_CASES[3], AVG_CASES[4]])
def test_avg_pool2d_gradcheck_and_gradgradcheck_float64(case):
    gradcheck_avg(avg_pool2d, case)


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck(dtype):
    x = distinct((2, 3, 9, 8), dtype, requires_grad=True)
    args = ([3, 3], [2, 2], [1, 1], [1, 1], True)
    torch.library.opcheck(torch.ops.medkern.max_pool2d.default, (x, *args))
    torch.library.opcheck(torch.ops.medkern.max_pool2d_values.default, (x.detach(), *args))
    out, idx = torch.ops.medkern.max_pool2d(x.detach(), *args)
    torch.library.opcheck(torch.ops.medkern.max_pool2d_backward.default,
                          (torch.randn_like(out), x.detach(), *args, idx))
    for avg_args in [([3, 2], [2, 1], [1, 1], True, False, None), ([3, 2], [2, 1], [1, 1], True, False, 5),
                     ([2, 2], [2, 2], [0, 0], False, True)]:  # divisor_override defaults to None, as in aten
        torch.library.opcheck(torch.ops.medkern.avg_pool2d.default, (x, *avg_args))
        g = torch.randn_like(torch.ops.medkern.avg_pool2d(x.detach(), *avg_args)).requires_grad_()
        torch.library.opcheck(torch.ops.medkern.avg_pool2d_backward.default, (g, x.detach(), *avg_args))


def test_modules_match_torch():
    x = distinct((2, 3, 11, 11), torch.float32)
    for op, ours, theirs in [
        ("max_pool2d", medkern.nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        ("avg_pool2d", medkern.nn.AvgPool2d(2, count_include_pad=False, padding=1),
         torch.nn.AvgPool2d(2, count_include_pad=False, padding=1)),
    ]:
        assert_close(ours(x), theirs(x), op=op)
    out, idx = medkern.nn.MaxPool2d(2, return_indices=True)(x)
    ref, ref_idx = F.max_pool2d(x, 2, return_indices=True)
    assert_close(out, ref, op="max_pool2d")
    assert_close(idx, ref_idx, op="max_pool2d")


# ---- argument checks: exception type and the argument's name ---------------------------------


def test_rejects_integer_dtype():
    with pytest.raises(TypeError, match="'input'"):
        max_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.int32), 2)
    with pytest.raises(TypeError, match="'input'"):
        avg_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.int32), 2)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="'input'"):
        max_pool2d(torch.randn(4, 4), 2)
    with pytest.raises(ValueError, match="'input'"):
        avg_pool2d(torch.randn(1, 1, 1, 4, 4), 2)


def test_rejects_negative_padding():
    with pytest.raises(ValueError, match="'padding'"):
        max_pool2d(torch.randn(1, 1, 4, 4), 2, padding=-1)


def test_rejects_padding_over_half_kernel():
    with pytest.raises(ValueError, match="'padding'"):
        max_pool2d(torch.randn(1, 1, 8, 8), 3, padding=2)
    with pytest.raises(ValueError, match="'padding'"):
        avg_pool2d(torch.randn(1, 1, 8, 8), (2, 4), padding=(2, 0))


def test_rejects_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match="'kernel_size'.*too small"):
        max_pool2d(torch.randn(1, 1, 2, 2), 5, padding=1)
    with pytest.raises(ValueError, match="'kernel_size'"):
        max_pool2d(torch.randn(1, 1, 4, 4), 3, dilation=2)


def test_rejects_non_positive_stride_kernel_dilation_divisor():
    with pytest.raises(ValueError, match="'stride'"):
        max_pool2d(torch.randn(1, 1, 4, 4), 2, stride=0)
    with pytest.raises(ValueError, match="'kernel_size'"):
        avg_pool2d(torch.randn(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="'dilation'"):
        max_pool2d(torch.randn(1, 1, 4, 4), 2, dilation=0)
    with pytest.raises(ValueError, match="'divisor_override'"):
        avg_pool2d(torch.randn(1, 1, 4, 4), 2, divisor_override=0)
    with pytest.raises(ValueError, match="'kernel_size'"):
        max_pool2d(torch.randn(1, 1, 4, 4), (2, 2, 2))


def test_rejects_output_on_another_device():
    x = torch.randn(1, 1, 4, 4)
    out = torch.empty(1, 1, 2, 2)
    fake_cuda_out = _backend._C.TensorView(out.data_ptr(), 0, [1, 1, 2, 2], [4, 4, 2, 1], 1, 0)
    with pytest.raises(ValueError, match="'output'"):
        _backend._C.max_pool2d_forward(_backend.view(x), fake_cuda_out, None, [2, 2], [2, 2], [0, 0], [1, 1], False)
    idx = torch.empty(1, 1, 2, 2, dtype=torch.int64)
    fake_cuda_idx = _backend._C.TensorView(idx.data_ptr(), 9, [1, 1, 2, 2], [4, 4, 2, 1], 1, 0)
    with pytest.raises(ValueError, match="'indices'"):
        _backend._C.max_pool2d_forward(_backend.view(x), _backend.view(out), fake_cuda_idx, [2, 2], [2, 2], [0, 0],
                                       [1, 1], False)


def test_meta_tensors_get_shapes_from_the_fake_kernels():
    x = torch.empty(2, 3, 11, 11, device="meta")
    for ours, theirs in zip(max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
                            F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)):
        assert (ours.shape, ours.dtype, ours.device) == (theirs.shape, theirs.dtype, theirs.device)
    ours, theirs = avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True), F.avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True)
    assert (ours.shape, ours.dtype, ours.device) == (theirs.shape, theirs.dtype, theirs.device)


def test_rejects_bad_outputs_and_indices():
    x = torch.randn(1, 1, 4, 4)
    v = _backend.view
    args = ([2, 2], [2, 2], [0, 0], [1, 1], False)
    with pytest.raises(ValueError, match="'output'"):
        _backend._C.max_pool2d_forward(v(x), v(torch.empty(1, 1, 3, 2)), None, *args)
    with pytest.raises(ValueError, match="'output'.*contiguous"):
        _backend._C.max_pool2d_forward(v(x), v(torch.empty(1, 1, 2, 4)[..., ::2]), None, *args)
    with pytest.raises(TypeError, match="'indices'"):
        _backend._C.max_pool2d_forward(v(x), v(torch.empty(1, 1, 2, 2)), v(torch.empty(1, 1, 2, 2)), *args)
    with pytest.raises(ValueError, match="'grad_output'"):
        _backend._C.max_pool2d_backward(v(torch.empty(1, 1, 3, 3)), v(torch.empty(1, 1, 3, 3, dtype=torch.int64)),
                                        v(x), *args)
    with pytest.raises(TypeError, match="'grad_input'"):
        _backend._C.avg_pool2d_backward(v(torch.empty(1, 1, 2, 2)), v(x.double()), [2, 2], [2, 2], [0, 0], False,
                                        True, 0)
