"""medkern linear against torch.nn.functional.linear: values and gradients over shapes (odd,
size-1, >2-D inputs), non-contiguous operands, both dtypes and every SIMD level; float64
gradcheck; opcheck; and one test per argument error."""
import pytest
import torch
import torch.nn.functional as F

import medkern
from medkern import nn as mnn
from medkern import ops
from medkern._backend import _C
from simd_levels import SIMD_LEVELS, simd_level
from tolerances import assert_close


def check(x, w, b):
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ws = [w.clone().requires_grad_() for _ in range(2)]
    bs = [None if b is None else b.clone().requires_grad_() for _ in range(2)]
    out, ref = ops.linear(xs[0], ws[0], bs[0]), F.linear(xs[1], ws[1], bs[1])
    assert_close(out, ref, op="linear")
    g = torch.randn_like(ref) / max(1, ref.numel() // ref.shape[-1]) ** 0.5
    out.backward(g)
    ref.backward(g)
    assert_close(xs[0].grad, xs[1].grad, op="linear")
    assert_close(ws[0].grad, ws[1].grad, op="linear")
    if b is not None:
        assert_close(bs[0].grad, bs[1].grad, op="linear")


SHAPES = [((128, 512), 10), ((7, 33), 9), ((1, 1), 1), ((3, 5, 17), 50), ((300,), 4), ((64, 600), 130)]


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch(shape, dtype, level, bias):
    (in_shape, out_features) = shape
    with simd_level(level):
        x = torch.randn(*in_shape, dtype=dtype)
        w = torch.randn(out_features, in_shape[-1], dtype=dtype) / in_shape[-1] ** 0.5
        b = torch.randn(out_features, dtype=dtype) if bias else None
        check(x, w, b)


def test_non_contiguous():
    x = torch.randn(20, 30)[::2, 1:25]
    w = torch.randn(24, 11).t()          # (11, 24) transposed view
    b = torch.randn(22)[::2]
    check(x, w / 5, b)


def test_gradcheck_float64():
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.linear, (x, w, b))


def test_opcheck():
    for x, w, b in [(torch.randn(6, 9), torch.randn(4, 9), torch.randn(4)), (torch.randn(2, 3), torch.randn(5, 3), None)]:
        x.requires_grad_()
        w.requires_grad_()
        if b is not None:
            b.requires_grad_()
        torch.library.opcheck(torch.ops.medkern.linear.default, (x, w, b))


def test_nn_module():
    ref = torch.nn.Linear(12, 5)
    mine = mnn.Linear(12, 5)
    mine.load_state_dict(ref.state_dict())
    assert list(mine.state_dict()) == list(ref.state_dict())
    x = torch.randn(3, 12)
    assert_close(mine(x), ref(x), op="linear")


def test_error_wrong_dtype():
    with pytest.raises(TypeError, match="'input'"):
        ops.linear(torch.ones(2, 3, dtype=torch.int64), torch.ones(4, 3, dtype=torch.int64))


def test_error_dtype_mismatch():
    with pytest.raises(TypeError, match="'weight'"):
        ops.linear(torch.randn(2, 3), torch.randn(4, 3, dtype=torch.float64))


def test_error_features_mismatch():
    with pytest.raises(ValueError, match="'weight'.*input features"):
        ops.linear(torch.randn(2, 3), torch.randn(4, 5))


def test_error_weight_rank():
    with pytest.raises(ValueError, match="'weight'"):
        ops.linear(torch.randn(2, 3), torch.randn(3))


def test_error_bias_shape():
    with pytest.raises(ValueError, match="'bias'"):
        ops.linear(torch.randn(2, 3), torch.randn(4, 3), torch.randn(5))


def test_error_devices():
    with pytest.raises(ValueError, match="'weight'.*same device"):
        ops.linear(torch.randn(2, 3), torch.randn(4, 3, device="meta"))
    x, w, out = torch.randn(2, 3), torch.randn(4, 3), torch.empty(2, 4)
    fake_cuda_w = _C.TensorView(w.data_ptr(), 0, list(w.shape), list(w.stride()), 1, 0)
    view = medkern._backend.view
    with pytest.raises(ValueError, match="'weight'.*cuda:0"):
        _C.linear_forward(view(x), fake_cuda_w, None, view(out))


def test_error_zero_dim_input():
    with pytest.raises(ValueError, match="'input'"):
        ops.linear(torch.tensor(1.0), torch.randn(4, 1))
