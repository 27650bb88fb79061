"""medkern's CUDA group / instance norm, batch norm's fused activation and leaky_relu through the
public API, against torch's own CUDA ops, against medkern's CPU kernels and (float16 / bfloat16)
against float64 references with an error at most a small multiple of torch's own; gradcheck and
opcheck on the device. Marked `cuda` (skipped without a GPU); MEDKERN_CUDA_TEST_DEVICE=cpu runs
the same checks on the CPU as a dry run, as tests/test_cuda_ops.py does."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import medkern
from medkern.ops import batch_norm, group_norm, instance_norm, leaky_relu
from tolerances import assert_close

DEVICE = os.environ.get("MEDKERN_CUDA_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda] if DEVICE == "cuda" else []
ERROR_FACTOR = 4.0  # medkern's reduced-precision error may be this many times torch's
NORM_OPS = ["group_norm_forward", "group_norm_backward", "leaky_relu_forward", "leaky_relu_backward"]
ACTIVATIONS = [(None, 0.01), ("relu", 0.01), ("leaky_relu", 0.2)]


def torch_act(activation, slope):
    return {None: lambda z: z, "relu": F.relu, "leaky_relu": lambda z: F.leaky_relu(z, slope)}[activation]


def inputs(shape, dtype, device=DEVICE):
    c = shape[1]
    x = torch.randn(shape, dtype=torch.float64) * 2 + 0.5
    w, b = torch.rand(c, dtype=torch.float64) + 0.5, torch.randn(c, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype) for t in (x, w, b)]


def fwd_bwd(fn, tensors, grad):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    out.backward(grad)
    return [out.detach()] + [t.grad for t in leaves]


def test_build_lists_the_norm_kernels():
    if DEVICE != "cuda":
        pytest.skip("a CUDA build property")
    assert set(NORM_OPS) <= set(medkern.info()["cuda_ops"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation,slope", ACTIVATIONS)
# the last 3-D shape is large enough for the CUDA kernels' sliced passes (several slices per group)
@pytest.mark.parametrize("shape,groups", [((3, 6, 5, 7), 3), ((2, 8, 4, 5, 6), 8), ((2, 32, 10, 14, 10), 32),
                                          ((4, 6), 2), ((2, 8, 24, 32, 24), 4)])
def test_group_norm_matches_torch_and_the_cpu(shape, groups, activation, slope, dtype):
    x, w, b = inputs(shape, dtype)
    g = torch.randn(shape, dtype=dtype, device=DEVICE)
    ours = fwd_bwd(lambda x, w, b: group_norm(x, groups, w, b, activation=activation, negative_slope=slope),
                   (x, w, b), g)
    theirs = fwd_bwd(lambda x, w, b: torch_act(activation, slope)(F.group_norm(x, groups, w, b)), (x, w, b), g)
    cpu = fwd_bwd(lambda x, w, b: group_norm(x, groups, w, b, activation=activation, negative_slope=slope),
                  [t.cpu() for t in (x, w, b)], g.cpu())
    for name, a, e, c in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, theirs, cpu):
        assert_close(a, e, name, op="norm_act")
        assert_close(a.cpu(), c, f"{name} vs CPU", op="norm_act")


@pytest.mark.parametrize("activation,slope", ACTIVATIONS)
@pytest.mark.parametrize("use_input_stats", [True, False])
def test_instance_norm_matches_torch(activation, slope, use_input_stats):
    x, w, b = inputs((2, 4, 5, 6, 7), torch.float32)
    rm, rv = torch.randn(4, device=DEVICE), torch.rand(4, device=DEVICE) + 0.5
    s1, s2 = (rm.clone(), rv.clone()), (rm.clone(), rv.clone())
    g = torch.randn_like(x)
    ours = fwd_bwd(lambda x, w, b: instance_norm(x, *s1, w, b, use_input_stats, 0.2, activation=activation,
                                                 negative_slope=slope), (x, w, b), g)
    theirs = fwd_bwd(lambda x, w, b: torch_act(activation, slope)(F.instance_norm(x, *s2, w, b, use_input_stats,
                                                                                  0.2)), (x, w, b), g)
    for name, a, e in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, theirs):
        assert_close(a, e, name, op="norm_act")
    for a, e in zip(s1, s2):
        assert_close(a, e, "running statistics", op="norm_act")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("activation,slope", ACTIVATIONS[1:])
def test_batch_norm_with_activation_matches_torch(activation, slope, training):
    x, w, b = inputs((8, 6, 9, 11), torch.float32)
    rm, rv = torch.randn(6, device=DEVICE), torch.rand(6, device=DEVICE) + 0.5
    g = torch.randn_like(x)
    ours = fwd_bwd(lambda x, w, b: batch_norm(x, rm.clone(), rv.clone(), w, b, training, activation=activation,
                                              negative_slope=slope), (x, w, b), g)
    theirs = fwd_bwd(lambda x, w, b: torch_act(activation, slope)(F.batch_norm(x, rm.clone(), rv.clone(), w, b,
                                                                               training)), (x, w, b), g)
    for name, a, e in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, theirs):
        assert_close(a, e, name, op="norm_act")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_group_norm_reduced_precision_error_like_torch(dtype):
    if DEVICE != "cuda":
        pytest.skip("float16 / bfloat16 kernels are CUDA-only")
    x, w, b = inputs((2, 16, 6, 7, 8), torch.float64)
    exact = F.leaky_relu(F.group_norm(x, 4, w, b), 0.2)
    xl = x.to(dtype)
    ours = group_norm(xl, 4, w.float(), b.float(), activation="leaky_relu", negative_slope=0.2)
    theirs = F.leaky_relu(F.group_norm(xl, 4, w.to(dtype), b.to(dtype)), 0.2)
    assert ours.dtype == dtype
    err_ours = (ours.double() - exact).abs().max().item()
    err_theirs = (theirs.double() - exact).abs().max().item()
    assert err_ours <= ERROR_FACTOR * err_theirs + 1e-3


@pytest.mark.parametrize("slope", [0.01, -0.3])
def test_leaky_relu_matches_torch(slope):
    x = torch.randn(3, 1000, 7, device=DEVICE)
    for xv in (x, x.transpose(0, 2)):
        g = torch.randn_like(xv)
        ours = fwd_bwd(lambda t: leaky_relu(t, slope), (xv,), g)
        theirs = fwd_bwd(lambda t: F.leaky_relu(t, slope), (xv,), g)
        for a, e in zip(ours, theirs):
            assert_close(a, e, op="leaky_relu")


def test_gradcheck_and_opcheck_on_the_device():
    x, w, b = inputs((2, 4, 3, 5), torch.float64)
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: group_norm(x, 2, w, b, activation="leaky_relu",
                                                               negative_slope=0.1), (x, w, b))
    torch.library.opcheck(torch.ops.medkern.group_norm.default, (x, w, b, 2, 4, 15, 2, 1e-5, 2, 0.1))
    torch.library.opcheck(torch.ops.medkern.leaky_relu.default, (x, 0.1))
