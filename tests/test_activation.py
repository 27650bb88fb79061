"""relu and leaky_relu against torch: values (NaN and signed zeros included), layouts, in-place
semantics, gradients through the output-only backward (leaky_relu: the input's for a negative
slope), opcheck, the ReLU / LeakyReLU modules and the argument checks."""
import pytest
import torch
import torch.nn.functional as F

import medkern.nn
from medkern import _backend
from medkern.ops import leaky_relu, relu
from tolerances import assert_close

DTYPES = [torch.float32, torch.float64]


def layouts(x):
    yield "dense", x
    yield "transposed", x.transpose(0, -1)
    yield "sliced", torch.cat([x, x], dim=-1)[..., ::2]
    yield "expanded", x[:1].expand_as(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4, 5), (100003,)])
def test_relu_matches_torch(shape, dtype):
    x = torch.randn(shape, dtype=dtype) + 0.01
    for name, xv in layouts(x):
        assert_close(relu(xv), torch.relu(xv), name, op="relu")


def test_relu_keeps_nan():
    x = torch.tensor([float("nan"), -1.0, 2.0, float("-inf"), float("inf")])
    assert_close(relu(x), torch.relu(x), op="relu", equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_writes_into_input(dtype):
    x = torch.randn(4, 5, dtype=dtype)
    expected = torch.relu(x)
    out = relu(x, inplace=True)
    assert out is x
    assert_close(x, expected, op="relu")
    y = torch.randn(5, 4, dtype=dtype).t()  # non-contiguous in-place
    expected = torch.relu(y)
    assert relu(y, inplace=True) is y
    assert_close(y, expected, op="relu")


def test_inplace_with_autograd_like_torch():
    a = torch.randn(3, 4, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    out = relu(a * 2, inplace=True)
    ref = F.relu(b * 2, inplace=True)
    g = torch.randn(3, 4)
    out.backward(g)
    ref.backward(g)
    assert_close(a.grad, b.grad, op="relu")
    with pytest.raises(RuntimeError, match="leaf Variable"):
        relu(torch.randn(3, requires_grad=True), inplace=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_matches_torch(dtype):
    x = (torch.randn(4, 6, dtype=dtype) + 0.01).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    g = torch.randn(6, 4, dtype=dtype).t()  # non-contiguous grad_output
    relu(x).backward(g)
    torch.relu(xr).backward(g)
    assert_close(x.grad, xr.grad, op="relu")


def test_gradcheck_and_gradgradcheck_float64():
    x = (torch.randn(3, 4, 5, dtype=torch.float64) + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(relu, (x,))
    assert torch.autograd.gradgradcheck(relu, (x,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck(dtype):
    x = torch.randn(3, 7, dtype=dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.medkern.relu.default, (x,))
    torch.library.opcheck(torch.ops.medkern.relu_.default, (x.detach().clone(),))
    out = torch.relu(x.detach())
    torch.library.opcheck(torch.ops.medkern.relu_backward.default, (torch.randn_like(out).requires_grad_(), out))


def test_module():
    x = torch.randn(2, 3, 4)
    assert_close(medkern.nn.ReLU()(x), torch.relu(x), op="relu")
    y = x.clone()
    assert medkern.nn.ReLU(inplace=True)(y) is y
    assert_close(y, torch.relu(x), op="relu")


# ---- argument checks -------------------------------------------------------------------------


def test_rejects_integer_dtype():
    with pytest.raises(TypeError, match="'input'"):
        relu(torch.ones(3, dtype=torch.int32))


def test_rejects_bad_output():
    x = torch.randn(4, 4)
    v = _backend.view
    with pytest.raises(ValueError, match="'output'.*shape"):
        _backend._C.relu_forward(v(x), v(torch.empty(4, 5)))
    with pytest.raises(ValueError, match="'output'.*contiguous"):
        _backend._C.relu_forward(v(x), v(torch.empty(4, 4).t()))
    fake_cuda = _backend._C.TensorView(x.data_ptr(), 0, [4, 4], [4, 1], 1, 0)
    with pytest.raises(ValueError, match="'output'.*same device"):
        _backend._C.relu_forward(v(x), fake_cuda)


def test_rejects_bad_backward_arguments():
    v = _backend.view
    g = torch.randn(3, 4)
    with pytest.raises(ValueError, match="'output'"):
        _backend._C.relu_backward(v(g), v(torch.randn(4, 3)), v(torch.empty(3, 4)))
    with pytest.raises(TypeError, match="'output'"):
        _backend._C.relu_backward(v(g), v(torch.randn(3, 4, dtype=torch.float64)), v(torch.empty(3, 4)))
    with pytest.raises(TypeError, match="'grad_input'"):
        _backend._C.relu_backward(v(g), v(g), v(torch.empty(3, 4, dtype=torch.float64)))


def test_fake_tensors_use_the_registered_op():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        x = torch.empty(7, 2).t()
        ours, theirs = relu(x), torch.relu(x)
        assert (ours.shape, ours.dtype, ours.device) == (theirs.shape, theirs.dtype, theirs.device)


# ---- leaky_relu --------------------------------------------------------------------------------

SLOPES = [0.01, 0.2, 0.0, -0.5, 1.5]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4, 5), (100003,)])
def test_leaky_relu_matches_torch(shape, slope, dtype):
    x = torch.randn(shape, dtype=dtype) + 0.01
    for name, xv in layouts(x):
        assert_close(leaky_relu(xv, slope), F.leaky_relu(xv, slope), name, op="leaky_relu")
    assert_close(leaky_relu(x), F.leaky_relu(x), op="leaky_relu")  # torch's default slope


def test_leaky_relu_keeps_nan_and_signed_zero():
    x = torch.tensor([float("nan"), -1.0, 2.0, float("-inf"), float("inf"), -0.0, 0.0])
    out, ref = leaky_relu(x, 0.1), F.leaky_relu(x, 0.1)
    assert_close(out, ref, op="leaky_relu", equal_nan=True)
    assert torch.equal(torch.signbit(out[5:]), torch.signbit(ref[5:]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", SLOPES)
def test_leaky_relu_gradient_matches_torch(slope, dtype):
    x = (torch.randn(4, 6, dtype=dtype) + 0.01).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    g = torch.randn(6, 4, dtype=dtype).t()  # non-contiguous grad_output
    leaky_relu(x, slope).backward(g)
    F.leaky_relu(xr, slope).backward(g)
    assert_close(x.grad, xr.grad, op="leaky_relu")


def test_leaky_relu_inplace_like_torch():
    a = torch.randn(3, 4, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    out, ref = leaky_relu(a * 2, 0.1, inplace=True), F.leaky_relu(b * 2, 0.1, inplace=True)
    g = torch.randn(3, 4)
    out.backward(g), ref.backward(g)
    assert_close(a.grad, b.grad, op="leaky_relu")
    y = torch.randn(5, 4)
    expected = F.leaky_relu(y, 0.3)
    assert leaky_relu(y, 0.3, inplace=True) is y
    assert_close(y, expected, op="leaky_relu")


def test_leaky_relu_gradcheck_and_gradgradcheck_float64():
    x = (torch.randn(3, 4, 5, dtype=torch.float64) + 0.05).requires_grad_()
    for slope in (0.2, -0.4):
        assert torch.autograd.gradcheck(lambda t: leaky_relu(t, slope), (x,))
        assert torch.autograd.gradgradcheck(lambda t: leaky_relu(t, slope), (x,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_opcheck(dtype):
    x = torch.randn(3, 7, dtype=dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.medkern.leaky_relu.default, (x, 0.2))
    torch.library.opcheck(torch.ops.medkern.leaky_relu.default, (x,))
    out = F.leaky_relu(x.detach(), 0.2)
    g = torch.randn_like(out).requires_grad_()
    torch.library.opcheck(torch.ops.medkern.leaky_relu_backward.default, (g, out, 0.2, True))
    torch.library.opcheck(torch.ops.medkern.leaky_relu_backward.default, (g, x.detach(), -0.2, False))


def test_leaky_relu_backward_op_follows_atens_rule():
    x, g = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)
    for slope, self_is_result in ((0.2, False), (0.2, True), (-0.3, False)):
        s = F.leaky_relu(x, slope) if self_is_result else x
        assert_close(torch.ops.medkern.leaky_relu_backward(g, s, slope, self_is_result),
                     torch.ops.aten.leaky_relu_backward(g, s, slope, self_is_result), op="leaky_relu")


def test_leaky_relu_module():
    x = torch.randn(2, 3, 4)
    assert_close(medkern.nn.LeakyReLU(0.3)(x), F.leaky_relu(x, 0.3), op="leaky_relu")
    y = x.clone()
    assert medkern.nn.LeakyReLU(inplace=True)(y) is y
    assert_close(y, F.leaky_relu(x), op="leaky_relu")


def test_leaky_relu_rejects_bad_arguments():
    with pytest.raises(TypeError, match="'input'"):
        leaky_relu(torch.ones(3, dtype=torch.int32))
    with pytest.raises(TypeError, match="'input'"):
        leaky_relu([1.0, 2.0])
    v = _backend.view
    g = torch.randn(3, 4)
    with pytest.raises(ValueError, match="'output'.*shape"):
        _backend._C.leaky_relu_forward(v(g), v(torch.empty(4, 3)), 0.1)
    with pytest.raises(ValueError, match="'self'"):
        _backend._C.leaky_relu_backward(v(g), v(torch.randn(4, 3)), v(torch.empty(3, 4)), 0.1, False)
    with pytest.raises(TypeError, match="'self'"):
        _backend._C.leaky_relu_backward(v(g), v(g.double()), v(torch.empty(3, 4)), 0.1, False)
    with pytest.raises(ValueError, match="'negative_slope'.*non-negative"):
        _backend._C.leaky_relu_backward(v(g), v(g), v(torch.empty(3, 4)), -0.1, True)
    fake_cuda = _backend._C.TensorView(g.data_ptr(), 0, [3, 4], [4, 1], 1, 0)
    with pytest.raises(ValueError, match="'self'.*same device"):
        _backend._C.leaky_relu_backward(v(g), fake_cuda, v(torch.empty(3, 4)), 0.1, False)
