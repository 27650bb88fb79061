"""group_norm and instance_norm against torch.nn.functional in float64 and float32: outputs,
gradients, instance norm's running statistics (use_input_stats True and False), 2-D and 3-D and
odd shapes, groups, affine or not, non-contiguous inputs, float64 gradcheck, opcheck on the
registered ops, the modules (state_dict keys, bookkeeping) and every argument check."""
import pytest
import torch
import torch.nn.functional as F

import medkern.nn
from medkern import _backend
from medkern.ops import group_norm, instance_norm
from tolerances import assert_close

DTYPES = [torch.float32, torch.float64]
# (shape, groups): 2-D and 3-D, odd sizes, one channel per group, one group, (N, C) inputs
GROUP_CASES = [((3, 6, 5, 7), 3), ((2, 4, 3, 5, 6), 4), ((2, 6), 2), ((1, 8, 9, 1), 1), ((4, 6, 7), 6),
               ((2, 12, 3, 4, 5), 3), ((1, 3, 1, 1, 11), 3), ((2, 4, 33, 35), 2)]


def make(shape, dtype, requires_grad=False):
    c = shape[1]
    x = torch.randn(shape, dtype=dtype) * 2 + torch.linspace(-1, 3, c, dtype=dtype).view(1, c, *[1] * (len(shape) - 2))
    w = torch.rand(c, dtype=dtype) + 0.5
    b = torch.randn(c, dtype=dtype)
    return [t.requires_grad_(requires_grad) for t in (x, w, b)]


def layouts(x):
    yield "dense", x
    if x.dim() >= 3:
        yield "sliced", torch.cat([x, x], dim=-1)[..., : x.shape[-1]]
        yield "transposed", x.transpose(-1, -2).contiguous().transpose(-1, -2)
    yield "batch_transposed", x.transpose(0, 1).contiguous().transpose(0, 1)


def grads_like_torch(ours, theirs, tensors, op):
    mine = [t.detach().clone().requires_grad_() for t in tensors]
    ref = [t.detach().clone().requires_grad_() for t in tensors]
    out, expected = ours(*mine), theirs(*ref)
    assert_close(out, expected, op=op)
    g = torch.randn_like(expected)
    out.backward(g.transpose(0, 1).contiguous().transpose(0, 1))  # a non-contiguous grad_output
    expected.backward(g)
    for i, (a, e) in enumerate(zip(mine, ref)):
        assert_close(a.grad, e.grad, f"gradient of argument {i}", op=op)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", GROUP_CASES)
def test_group_norm_matches_torch(shape, groups, dtype):
    x, w, b = make(shape, dtype)
    for name, xv in layouts(x):
        assert_close(group_norm(xv, groups, w, b, 1e-3), F.group_norm(x, groups, w, b, 1e-3), name, op="group_norm")
        assert_close(group_norm(xv, groups), F.group_norm(x, groups), name, op="group_norm")
        assert_close(group_norm(xv, groups, None, b), F.group_norm(x, groups, None, b), name, op="group_norm")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", GROUP_CASES)
def test_group_norm_gradients_match_torch(shape, groups, dtype):
    grads_like_torch(lambda x, w, b: group_norm(x, groups, w, b), lambda x, w, b: F.group_norm(x, groups, w, b),
                     make(shape, dtype), "group_norm")
    grads_like_torch(lambda x: group_norm(x, groups), lambda x: F.group_norm(x, groups), make(shape, dtype)[:1],
                     "group_norm")


def test_group_norm_statistics_are_stable_for_large_offsets():
    x = torch.randn(2, 4, 16, 16, dtype=torch.float64) + 1e4
    assert_close(group_norm(x.float(), 2), F.group_norm(x, 2).float(), op="batch_norm_large_offset")


INSTANCE_SHAPES = [(3, 4, 5, 7), (2, 3, 4, 5, 6), (1, 2, 9, 1), (2, 5, 3, 1, 2), (2, 3, 40, 33)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", INSTANCE_SHAPES)
@pytest.mark.parametrize("use_input_stats", [True, False])
def test_instance_norm_and_running_stats_match_torch(shape, dtype, use_input_stats):
    x, w, b = make(shape, dtype)
    c = shape[1]
    rm, rv = torch.randn(c, dtype=dtype), torch.rand(c, dtype=dtype) + 0.5
    for name, xv in layouts(x):
        rm1, rv1, rm2, rv2 = rm.clone(), rv.clone(), rm.clone(), rv.clone()
        out = instance_norm(xv, rm1, rv1, w, b, use_input_stats, 0.3, 1e-3)
        ref = F.instance_norm(x, rm2, rv2, w, b, use_input_stats, 0.3, 1e-3)
        assert_close(out, ref, name, op="instance_norm")
        assert_close(rm1, rm2, name, op="instance_norm")
        assert_close(rv1, rv2, name, op="instance_norm")
    assert_close(instance_norm(x), F.instance_norm(x), op="instance_norm")  # no statistics, no affine


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_input_stats", [True, False])
def test_instance_norm_gradients_match_torch(dtype, use_input_stats):
    c = 3
    rm, rv = torch.randn(c, dtype=dtype), torch.rand(c, dtype=dtype) + 0.5
    for shape in [(2, 3, 4, 5, 6), (3, 3, 7, 5)]:
        grads_like_torch(lambda x, w, b: instance_norm(x, rm.clone(), rv.clone(), w, b, use_input_stats),
                         lambda x, w, b: F.instance_norm(x, rm.clone(), rv.clone(), w, b, use_input_stats),
                         make(shape, dtype), "instance_norm")


def test_gradcheck_float64():
    x, w, b = make((2, 4, 3, 5), torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: group_norm(x, 2, w, b), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: instance_norm(x, None, None, w, b), (x, w, b))
    x3 = torch.randn(2, 3, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: group_norm(x, 3), (x3,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck(dtype):
    x, w, b = make((3, 4, 5, 6), dtype, requires_grad=True)
    m = torch.ops.medkern
    for act, slope in ((0, 0.01), (1, 0.01), (2, 0.2)):
        torch.library.opcheck(m.group_norm.default, (x, w, b, 3, 4, 30, 2, 1e-5, act, slope))
        torch.library.opcheck(m.group_norm.default, (x, None, None, 3, 4, 30, 4, 1e-5, act, slope))
        _, mean, rstd = m.group_norm(x.detach(), w.detach(), b.detach(), 3, 4, 30, 2, 1e-5, act, slope)
        torch.library.opcheck(m.group_norm_backward.default,
                              (torch.randn_like(x), x.detach(), mean, rstd, w.detach(), 3, 4, 30, 2, b.detach(), act,
                               slope))
    torch.library.opcheck(m.group_norm.default, (x, w, b, 3, 4, 30, 2, 1e-5))


def test_backward_op_follows_atens_rule():
    x, w, b = make((3, 6, 4, 5), torch.float64)
    out, mean, rstd = torch.native_group_norm(x, w, b, 3, 6, 20, 3, 1e-5)
    g = torch.randn_like(x)
    ours = torch.ops.medkern.group_norm_backward(g, x, mean, rstd, w, 3, 6, 20, 3)
    theirs = torch.ops.aten.native_group_norm_backward(g, x, mean, rstd, w, 3, 6, 20, 3, [True, True, True])
    for name, a, e in zip(("grad_input", "grad_weight", "grad_bias"), ours, theirs):
        assert_close(a, e, name, op="group_norm")
    forward = torch.ops.medkern.group_norm(x, w, b, 3, 6, 20, 3, 1e-5)
    for name, a, e in zip(("output", "mean", "rstd"), forward, (out, mean, rstd)):
        assert_close(a, e, name, op="group_norm")


# ---- modules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,kwargs,shape", [
    ("InstanceNorm2d", dict(), (3, 4, 5, 6)),
    ("InstanceNorm2d", dict(affine=True), (3, 4, 5, 6)),
    ("InstanceNorm3d", dict(affine=True, track_running_stats=True), (2, 4, 3, 5, 6)),
    ("InstanceNorm3d", dict(track_running_stats=True, momentum=None), (2, 4, 3, 5, 6)),
    ("InstanceNorm3d", dict(affine=True), (4, 3, 5, 6)),  # unbatched (C, D, H, W)
    ("BatchNorm3d", dict(), (3, 4, 3, 5, 6)),
])
def test_normalization_modules_match_torch(cls, kwargs, shape):
    c = 4
    ours, theirs = getattr(medkern.nn, cls)(c, **kwargs), getattr(torch.nn, cls)(c, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    if ours.weight is not None:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5), theirs.bias.uniform_(-0.5, 0.5)
        ours.load_state_dict(theirs.state_dict())
    for step in range(3):
        x = torch.randn(shape) * (step + 1) + step
        assert_close(ours(x), theirs(x), op="instance_norm")
    for key, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], value, key, op="instance_norm")
    ours.eval(), theirs.eval()
    x = torch.randn(shape)
    assert_close(ours(x), theirs(x), op="instance_norm")


@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_module_matches_torch(affine):
    ours, theirs = medkern.nn.GroupNorm(3, 6, affine=affine), torch.nn.GroupNorm(3, 6, affine=affine)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    if affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5), theirs.bias.uniform_(-0.5, 0.5)
        ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 3, 4, 5, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    out, ref = ours(x), theirs(xr)
    assert_close(out, ref, op="group_norm")
    out.sum().backward(), ref.sum().backward()
    assert_close(x.grad, xr.grad, op="group_norm")


# ---- argument checks: exception type and the argument's name ---------------------------------


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="'input'.*at least 2-D"):
        group_norm(torch.randn(6), 2)
    with pytest.raises(ValueError, match="'input'.*at least 2-D"):
        instance_norm(torch.randn(6))


def test_rejects_integer_dtype():
    with pytest.raises(TypeError, match="'input'"):
        group_norm(torch.ones(2, 4, 3, dtype=torch.int64), 2)


def test_rejects_groups_not_dividing_channels():
    for groups in (3, 0, -2):
        with pytest.raises(ValueError, match="'num_groups'.*divisor.*4 channels"):
            group_norm(torch.randn(2, 4, 3), groups)
    with pytest.raises(ValueError, match="'num_groups'"):
        _backend._C.group_norm_forward(*[_backend.view(t) for t in (torch.randn(2, 4, 3),)], None, None,
                                       _backend.view(torch.empty(2, 4, 3)), _backend.view(torch.empty(2, 3)),
                                       _backend.view(torch.empty(2, 3)), 3, 1e-5)


def test_rejects_wrong_weight_shape():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="'weight'.*expected \\(4,\\)"):
        group_norm(x, 2, torch.ones(3))
    with pytest.raises(ValueError, match="'bias'.*expected \\(4,\\)"):
        group_norm(x, 2, None, torch.ones(4, 1))
    with pytest.raises(ValueError, match="'weight'"):
        instance_norm(x, weight=torch.ones(5))


def test_rejects_dtype_and_device_mismatch():
    x = torch.randn(2, 4, 3)
    with pytest.raises(TypeError, match="'weight'"):
        group_norm(x, 2, torch.ones(4, dtype=torch.float64))
    v = _backend.view
    fake_cuda_w = _backend._C.TensorView(torch.ones(4).data_ptr(), 0, [4], [1], 1, 0)
    with pytest.raises(ValueError, match="'weight'.*same device"):
        _backend._C.group_norm_forward(v(x), fake_cuda_w, None, v(torch.empty(2, 4, 3)), v(torch.empty(2, 2)),
                                       v(torch.empty(2, 2)), 2, 1e-5)


def test_rejects_bad_activation_and_statistics():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="'activation'"):
        group_norm(x, 2, activation="gelu")
    v = _backend.view
    with pytest.raises(ValueError, match="'activation'"):
        _backend._C.group_norm_forward(v(x), None, None, v(torch.empty(2, 4, 3)), v(torch.empty(2, 2)),
                                       v(torch.empty(2, 2)), 2, 1e-5, 7)
    with pytest.raises(ValueError, match="'mean'.*expected \\(2, 2\\)"):
        _backend._C.group_norm_forward(v(x), None, None, v(torch.empty(2, 4, 3)), v(torch.empty(2, 4)),
                                       v(torch.empty(2, 2)), 2, 1e-5)
    with pytest.raises(ValueError, match="'channel_sums'"):
        _backend._C.group_norm_backward(v(x), v(x), v(torch.zeros(2, 2)), v(torch.ones(2, 2)), None, None,
                                        v(torch.empty(2, 2, 3, dtype=torch.float64)), None, None, None, 2)
    with pytest.raises(ValueError, match="'grad_output'"):
        _backend._C.group_norm_backward(v(torch.randn(2, 4, 5)), v(x), v(torch.zeros(2, 2)), v(torch.ones(2, 2)),
                                        None, None, v(torch.empty(2, 2, 4, dtype=torch.float64)), None, None, None, 2)


def test_instance_norm_rejects_what_torch_rejects():
    with pytest.raises(ValueError, match="'input'.*more than 1 spatial element"):
        instance_norm(torch.randn(2, 3, 1, 1))
    with pytest.raises(ValueError, match="'running_mean'.*use_input_stats=False"):
        instance_norm(torch.randn(2, 3, 4), use_input_stats=False)
    with pytest.raises(ValueError, match="'running_mean' and 'running_var'"):
        instance_norm(torch.randn(2, 3, 4), torch.zeros(3))


def test_fake_tensors_use_the_registered_op():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        x = torch.empty(4, 6, 5, 5).transpose(2, 3)
        ours, theirs = group_norm(x, 3), F.group_norm(x, 3)
        assert (ours.shape, ours.dtype, ours.device) == (theirs.shape, theirs.dtype, theirs.device)


# ---- empty batches: torch's results and gradients --------------------------------------------


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_empty_batch_like_torch(activation):
    act = {None: lambda z: z, "relu": F.relu, "leaky_relu": F.leaky_relu}[activation]
    # torch's instance_norm raises IndexError on an empty batch with an affine (its weight repeat);
    # medkern's is group norm with C groups, which torch defines: an empty result, zero gradients
    cases = [(lambda x, w, b: group_norm(x, 2, w, b, activation=activation),
              lambda x, w, b: act(F.group_norm(x, 2, w, b))),
             (lambda x, w, b: instance_norm(x, None, None, w, b, activation=activation),
              lambda x, w, b: act(F.group_norm(x, x.shape[1], w, b)))]
    with pytest.raises(IndexError):
        F.instance_norm(torch.randn(0, 4, 3, 5), weight=torch.ones(4), bias=torch.zeros(4))
    for shape in [(0, 4, 3, 5), (0, 4, 2, 3, 4), (0, 4)]:
        for ours, theirs in cases[: 1 if len(shape) == 2 else 2]:
            x, w, b = make(shape, torch.float64)
            mine = [t.clone().requires_grad_() for t in (x, w, b)]
            ref = [t.clone().requires_grad_() for t in (x, w, b)]
            out, expected = ours(*mine), theirs(*ref)
            assert (out.shape, out.dtype) == (expected.shape, expected.dtype)
            out.sum().backward(), expected.sum().backward()
            for a, e in zip(mine, ref):
                assert_close(a.grad, e.grad, op="group_norm")


def test_opcheck_on_empty_inputs():
    m = torch.ops.medkern
    x, w, b = (t.requires_grad_() for t in make((0, 4, 3, 5), torch.float32))
    torch.library.opcheck(m.group_norm.default, (x, w, b, 0, 4, 15, 2, 1e-5, 2, 0.1))
    torch.library.opcheck(m.group_norm_backward.default,
                          (torch.randn(0, 4, 3, 5), x.detach(), torch.zeros(0, 2), torch.ones(0, 2), w.detach(), 0,
                           4, 15, 2, b.detach(), 1, 0.01))
    torch.library.opcheck(m.leaky_relu.default, (torch.randn(2, 0, 3, requires_grad=True), 0.1))
