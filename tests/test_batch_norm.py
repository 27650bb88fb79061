"""batch_norm against torch.nn.functional.batch_norm: outputs, running-statistic updates,
gradients (training and eval), optional weight/bias/running stats, layouts, the custom op
contracts (opcheck), BatchNorm2d's bookkeeping, and every argument check."""
import pytest
import torch
import torch.nn.functional as F

import medkern.nn
from medkern import _backend
from medkern.ops import batch_norm
from tolerances import assert_close

DTYPES = [torch.float32, torch.float64]
# (2, 3, 48, 64): few images with long planes, reduced in several segments per plane
SHAPES = [(5, 3), (4, 3, 5, 7), (2, 3, 4, 5, 6), (1, 3, 3, 3), (7, 3, 1, 1), (2, 3, 9), (2, 3, 48, 64)]


def make(shape, dtype, requires_grad=False):
    c = shape[1]
    x = (torch.randn(shape, dtype=dtype) * 2 + torch.linspace(-1, 3, c, dtype=dtype).view(1, c, *[1] * (len(shape) - 2)))
    w = torch.rand(c, dtype=dtype) + 0.5
    b = torch.randn(c, dtype=dtype)
    rm = torch.randn(c, dtype=dtype)
    rv = torch.rand(c, dtype=dtype) + 0.5
    return [t.requires_grad_(requires_grad) for t in (x, w, b)] + [rm, rv]


def layouts(x):
    yield "dense", x
    if x.dim() == 4:
        yield "channels_last", x.contiguous(memory_format=torch.channels_last)
        yield "transposed_hw", x.transpose(2, 3).contiguous().transpose(2, 3)
    if x.dim() >= 3:
        wide = torch.cat([x, x], dim=-1)
        yield "sliced", wide[..., : x.shape[-1]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_running_stats_match_torch(shape, dtype, training):
    x, w, b, rm, rv = make(shape, dtype)
    for name, xv in layouts(x):
        rm1, rv1, rm2, rv2 = rm.clone(), rv.clone(), rm.clone(), rv.clone()
        out = batch_norm(xv, rm1, rv1, w, b, training, 0.3, 1e-3)
        ref = F.batch_norm(x, rm2, rv2, w, b, training, 0.3, 1e-3)
        assert_close(out, ref, name, op="batch_norm")
        assert_close(rm1, rm2, name, op="batch_norm")
        assert_close(rv1, rv2, name, op="batch_norm")


@pytest.mark.parametrize("dtype", DTYPES)
def test_optional_weight_bias_and_untracked_stats(dtype):
    x, w, b, rm, rv = make((4, 3, 5, 5), dtype)
    assert_close(batch_norm(x, None, None, training=True), F.batch_norm(x, None, None, training=True), op="batch_norm")
    assert_close(batch_norm(x, None, None, w, None, True), F.batch_norm(x, None, None, w, None, True), op="batch_norm")
    assert_close(batch_norm(x, rm, rv, None, b), F.batch_norm(x, rm, rv, None, b), op="batch_norm")


def test_statistics_are_stable_for_large_offsets():
    # sum/sum-of-squares in float32 would lose the variance of 1 at an offset of 1e4
    x = torch.randn(64, 2, 16, 16, dtype=torch.float64) + 1e4
    out = batch_norm(x.float(), None, None, training=True)
    ref = F.batch_norm(x, None, None, training=True).float()
    assert_close(out, ref, op="batch_norm_large_offset")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 5, 7), (2, 3, 4, 5, 6)])
@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_torch(shape, dtype, training):
    x, w, b, rm, rv = make(shape, dtype, requires_grad=True)
    xr, wr, br = (t.detach().clone().requires_grad_() for t in (x, w, b))
    out = batch_norm(x, rm.clone(), rv.clone(), w, b, training)
    ref = F.batch_norm(xr, rm.clone(), rv.clone(), wr, br, training)
    g = torch.randn_like(ref)
    out.backward(g.transpose(0, 1).contiguous().transpose(0, 1))  # a non-contiguous grad_output
    ref.backward(g)
    for ours, theirs in ((x, xr), (w, wr), (b, br)):
        assert_close(ours.grad, theirs.grad, op="batch_norm")


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_float64(training):
    x, w, b, rm, rv = make((3, 2, 3, 4), torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: batch_norm(x, rm, rv, w, b, training, 0.0), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: batch_norm(x, None, None, training=True), (x,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck(dtype):
    x, w, b, rm, rv = make((3, 2, 4, 5), dtype)
    torch.library.opcheck(torch.ops.medkern.batch_norm.default, (x, w, b, rm, rv, True, 0.1, 1e-5))
    torch.library.opcheck(torch.ops.medkern.batch_norm.default, (x, None, None, rm, rv, False, 0.1, 1e-5))
    torch.library.opcheck(torch.ops.medkern.batch_norm.default, (x, w, b, None, None, True, 0.1, 1e-5))
    for training in (True, False):
        _, save_mean, save_invstd = torch.ops.medkern.batch_norm(x, w, b, rm.clone(), rv.clone(), training, 0.1, 1e-5)
        torch.library.opcheck(torch.ops.medkern.batch_norm_backward.default,
                              (torch.randn_like(x), x, w, rm, rv, save_mean, save_invstd, training, 1e-5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_backward_op_follows_atens_rule(dtype, training):
    """medkern::batch_norm_backward takes aten::native_batch_norm_backward's arguments and gives
    its results: training reads save_mean / save_invstd, eval the running statistics (here the
    saved ones are deliberately different, as aten's eval mode may leave them undefined)."""
    x, w, b, rm, rv = make((4, 3, 5, 6), dtype)
    g = torch.randn_like(x)
    _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(x, w, b, rm.clone(), rv.clone(), True, 0.1, 1e-5)
    if not training:
        save_mean, save_invstd = save_mean + 1, save_invstd * 2  # must not be read
    args = (g, x, w, rm, rv, save_mean, save_invstd, training, 1e-5)
    ours = torch.ops.medkern.batch_norm_backward(*args)
    theirs = torch.ops.aten.native_batch_norm_backward(*args, [True, True, True])
    for name, a, e in zip(("grad_input", "grad_weight", "grad_bias"), ours, theirs):
        assert_close(a, e, name, op="batch_norm")


@pytest.mark.parametrize("kwargs", [dict(), dict(momentum=None), dict(track_running_stats=False),
                                    dict(affine=False, momentum=0.5)])
def test_batchnorm2d_module_matches_torch(kwargs):
    ours, theirs = medkern.nn.BatchNorm2d(3, **kwargs), torch.nn.BatchNorm2d(3, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for step in range(3):
        x = torch.randn(4, 3, 6, 5) * (step + 1) + step
        assert_close(ours(x), theirs(x), op="batch_norm")
    for key, value in theirs.state_dict().items():  # num_batches_tracked (an integer) compares exactly
        assert_close(ours.state_dict()[key], value, key, op="batch_norm")
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 4, 4)
    assert_close(ours(x), theirs(x), op="batch_norm")


# ---- argument checks: exception type and the argument's name ---------------------------------


def test_rejects_integer_dtype():
    with pytest.raises(TypeError, match="'input'"):
        batch_norm(torch.ones(2, 3, dtype=torch.int64), None, None, training=True)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="'input'"):
        batch_norm(torch.randn(5), None, None, training=True)


def test_rejects_single_value_per_channel_in_training():
    with pytest.raises(ValueError, match="'input'.*more than 1 value per channel"):
        batch_norm(torch.randn(1, 3, 1, 1), None, None, training=True)


def test_rejects_channel_mismatch():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="'weight'.*expected \\(3,\\)"):
        batch_norm(x, None, None, torch.ones(4), training=True)
    with pytest.raises(ValueError, match="'bias'"):
        batch_norm(x, None, None, None, torch.ones(2), training=True)
    with pytest.raises(ValueError, match="'running_mean'"):
        batch_norm(x, torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="'running_var'"):
        batch_norm(x, torch.zeros(3), torch.ones(3, 1))


def test_rejects_dtype_mismatch_of_weight():
    with pytest.raises(TypeError, match="'weight'"):
        batch_norm(torch.randn(2, 3, 4), None, None, torch.ones(3, dtype=torch.float64), training=True)


def test_rejects_eval_without_running_stats():
    with pytest.raises(ValueError, match="'running_mean'"):
        batch_norm(torch.randn(2, 3, 4), None, None, training=False)


def test_rejects_weight_on_another_device():
    x = torch.randn(2, 3, 4)
    w = torch.ones(3)
    fake_cuda_w = _backend._C.TensorView(w.data_ptr(), 0, [3], [1], 1, 0)
    v = _backend.view
    out, m, s = torch.empty_like(x), torch.empty(3), torch.empty(3)
    with pytest.raises(ValueError, match="'weight'.*same device"):
        _backend._C.batch_norm_forward(v(x), fake_cuda_w, None, None, None, v(out), v(m), v(s), True, 0.1, 1e-5)


def test_rejects_bad_backward_arguments():
    x = torch.randn(2, 3, 4)
    v = _backend.view
    m, s = torch.zeros(3), torch.ones(3)
    with pytest.raises(ValueError, match="'grad_output'"):
        _backend._C.batch_norm_backward(v(torch.randn(2, 3, 5)), v(x), None, v(m), v(s), None, None, None, True, 1e-5)
    with pytest.raises(ValueError, match="'save_invstd'"):
        _backend._C.batch_norm_backward(v(x), v(x), None, v(m), v(torch.ones(2)), None, None, None, True, 1e-5)
    with pytest.raises(ValueError, match="'grad_input'.*contiguous"):
        gi = torch.empty(3, 2, 4).transpose(0, 1)
        _backend._C.batch_norm_backward(v(x), v(x), None, v(m), v(s), v(gi), None, None, True, 1e-5)


def test_fake_tensors_use_the_registered_op():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        x = torch.empty(4, 3, 5, 5).transpose(2, 3)
        rm, rv = torch.zeros(3), torch.ones(3)
        ours, theirs = batch_norm(x, rm, rv, training=True), F.batch_norm(x, rm, rv, training=True)
        assert (ours.shape, ours.dtype, ours.device) == (theirs.shape, theirs.dtype, theirs.device)
