"""medkern's CUDA kernels through the public API (medkern.ops / medkern.nn) against torch's own
CUDA ops, against medkern's CPU kernels and against float64 references, plus gradcheck, opcheck,
CUDA-graph capture of a training step and CPU/GPU training parity. Every test is marked `cuda`
and skips without a GPU, except in the CPU dry run below.

Reduced precision (TF32, float16, bfloat16) is judged relative to torch: medkern's error versus a
float64 reference may be at most a small multiple of torch's own error in the same precision.
Setting MEDKERN_CUDA_TEST_DEVICE=cpu runs the same checks on the CPU (a dry run of the tests:
the `cuda` mark is dropped; checks that only mean something on a GPU skip themselves).
"""
from __future__ import annotations

import contextlib
import os

import pytest
import torch
import torch.nn.functional as F

import medkern
import medkern.ops as mops
from medkern import _backend
from tolerances import TOLERANCES, assert_close

DEVICE = os.environ.get("MEDKERN_CUDA_TEST_DEVICE", "cuda")
# the dry run must not be skipped by conftest's "needs a CUDA GPU" rule
pytestmark = [pytest.mark.cuda] if DEVICE == "cuda" else []

CUDA_OPS = [
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward_bias",
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight", "conv3d_backward_bias",
    "conv_transpose2d_forward", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight",
    "conv_transpose3d_forward", "conv_transpose3d_backward_input", "conv_transpose3d_backward_weight",
    "linear_forward", "linear_backward_input", "linear_backward_weight", "linear_backward_bias",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
    "batch_norm_forward", "batch_norm_backward", "relu_forward", "relu_backward",
]

# How many times torch's own error (vs float64) medkern's error may be in reduced precision.
ERROR_FACTOR = 4.0


@contextlib.contextmanager
def tf32(enabled: bool):
    """Sets torch's TF32 flags (which medkern's ops pass to the kernels) for both libraries."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.fixture(autouse=True)
def _exact_float32():
    # float32 comparisons run without TF32 on both sides unless a test asks for it
    with tf32(False):
        yield


def skip_cpu_half(dtype):
    """float16/bfloat16 kernels exist on CUDA only; the CPU dry run skips those cases."""
    if DEVICE != "cuda" and dtype in (torch.float16, torch.bfloat16):
        pytest.skip(f"medkern's CPU kernels take float32/float64, not {dtype}")


def rand(*shape, dtype=torch.float32, device=DEVICE):
    # non-zero, mixed-sign values
    return (torch.rand(*shape, dtype=torch.float64) * 2 - 1).add_(0.05).to(device=device, dtype=dtype)


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def run_with_grads(fn, inputs, grad_out=None):
    """fn(*inputs) and the gradients of <out, grad_out> w.r.t. the inputs that require grad."""
    out = fn(*inputs)
    if grad_out is None:
        grad_out = rand(*out.shape, dtype=out.dtype, device=out.device)
    wanted = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = torch.autograd.grad(out, wanted, grad_out) if wanted else []
    return out, list(grads), grad_out


def assert_close_reduction(actual, expected, msg=""):
    """assert_close for the results of long sums (conv, linear): the dtype's tolerance, with the
    absolute floor scaled by the result's magnitude, as the rounding error of a sum grows with
    the size of its terms (see tests/tolerances.py) and near-zero outputs of large sums carry it."""
    tol = dict(TOLERANCES[expected.dtype])
    scale = expected.abs().max().item() if expected.numel() else 1.0
    tol["atol"] *= max(1.0, scale)
    torch.testing.assert_close(actual, expected, **tol, msg=msg or None)


def max_error(a, b):
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def assert_error_like_torch(ours, theirs, reference, what=""):
    """ours' error vs the float64 reference is at most ERROR_FACTOR x torch's own, with a floor of
    one unit of the dtype's precision at the reference's scale (torch may be exact by luck)."""
    eps = torch.finfo(ours.dtype).eps if ours.dtype != torch.float32 else 2.0 ** -11  # TF32 mantissa
    scale = reference.abs().max().item() if reference.numel() else 0.0
    e_ours, e_torch = max_error(ours, reference), max_error(theirs, reference)
    bound = ERROR_FACTOR * e_torch + eps * scale
    assert e_ours <= bound, f"{what}: medkern error {e_ours:.3e} > bound {bound:.3e} (torch error {e_torch:.3e})"


def layouts(x):
    """The same values as a contiguous tensor, channels-last (4-D) and a strided view."""
    yield "contiguous", x
    if x.dim() == 4:
        yield "channels_last", x.contiguous(memory_format=torch.channels_last)
    yield "strided", torch.stack([x, x], dim=-1)[..., 0]


# --------------------------------------------------------------------------------------------
def test_every_cuda_kernel_is_compiled():
    if DEVICE != "cuda":
        pytest.skip("dry run on the CPU")
    missing = [op for op in CUDA_OPS if not _backend.has_cuda_kernel(op)]
    assert not missing, f"this build has no CUDA kernel for {missing}; info: {medkern.info()}"


# ---- conv2d --------------------------------------------------------------------------------
# (N, C, H, W, K, kernel, stride, padding, dilation, groups, bias)
CONV_CASES = [
    (2, 3, 9, 11, 5, (3, 3), 1, 1, 1, 1, True),
    (1, 1, 7, 7, 4, (3, 3), 1, 0, 1, 1, False),           # one input channel: direct kernel
    (3, 8, 10, 9, 8, (3, 3), 2, 1, 1, 8, True),           # depthwise
    (2, 6, 12, 13, 4, (3, 2), (2, 1), (1, 0), (2, 1), 2, True),  # groups, dilation, asymmetric
    (2, 16, 5, 5, 33, (1, 1), 1, 0, 1, 1, True),          # 1x1, K not a tile multiple
    (1, 70, 8, 8, 65, (3, 3), 1, 1, 1, 1, True),          # several tiles along K and (c,r,s)
    (5, 3, 1, 1, 2, (1, 1), 1, 0, 1, 1, False),           # 1x1 images
    (2, 4, 6, 6, 6, (5, 5), 3, 2, 1, 2, True),            # kernel 5, stride 3, groups 2
    (8, 16, 24, 24, 32, (3, 3), 1, 1, 1, 1, True),        # long (n,p,q): split-K weight gradient
    (2, 4, 9, 9, 4, (3, 3), 2, 0, 2, 4, False),           # depthwise with stride and dilation
]


def conv_case_inputs(case, dtype=torch.float32, device=DEVICE):
    n, c, h, w, k, ks, stride, pad, dil, groups, has_bias = case
    x = rand(n, c, h, w, dtype=dtype, device=device)
    wt = rand(k, c // groups, *ks, dtype=dtype, device=device)
    b = rand(k, dtype=dtype, device=device) if has_bias else None
    return x, wt, b, dict(stride=stride, padding=pad, dilation=dil, groups=groups)


def conv_fn(lib, kw, relu=False):
    def f(x, w, b):
        if lib == "medkern":
            return (mops.conv2d_relu if relu else mops.conv2d)(x, w, b, **kw)
        out = F.conv2d(x, w, b, **kw)
        return F.relu(out) if relu else out
    return f


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"conv{i}" for i in range(len(CONV_CASES))])
def test_conv2d_matches_torch_float32(case):
    # the reference is torch's CUDA convolution in float64 (cuDNN's float32 algorithms, e.g.
    # Winograd, carry errors of their own that the float32 tolerance is not meant to absorb)
    x, w, b, kw = conv_case_inputs(case)
    for name, xl in layouts(x):
        ins = [leaf(xl), leaf(w)] + ([leaf(b)] if b is not None else [None])
        ref_ins = [leaf(t.double()) if t is not None else None for t in (xl, w, b)]
        out, grads, g = run_with_grads(conv_fn("medkern", kw), ins)
        ref, ref_grads, _ = run_with_grads(conv_fn("torch", kw), ref_ins, g.double())
        assert_close_reduction(out, ref.float(), msg=f"forward ({name})")
        for got, exp in zip(grads, ref_grads):
            assert_close_reduction(got, exp.float(), msg=f"backward ({name})")


@pytest.mark.parametrize("case", CONV_CASES[:4], ids=[f"conv{i}" for i in range(4)])
def test_conv2d_relu_fused_matches_torch(case):
    x, w, b, kw = conv_case_inputs(case)
    ins = [leaf(x), leaf(w), leaf(b) if b is not None else None]
    ref_ins = [leaf(t.double()) if t is not None else None for t in (x, w, b)]
    out, grads, g = run_with_grads(conv_fn("medkern", kw, relu=True), ins)
    ref, ref_grads, _ = run_with_grads(conv_fn("torch", kw, relu=True), ref_ins, g.double())
    assert_close_reduction(out, ref.float())
    for got, exp in zip(grads, ref_grads):
        assert_close_reduction(got, exp.float())


@pytest.mark.parametrize("case", CONV_CASES[::2], ids=[f"conv{i}" for i in range(0, len(CONV_CASES), 2)])
def test_conv2d_cuda_matches_medkern_cpu(case):
    x, w, b, kw = conv_case_inputs(case)
    ins = [leaf(x), leaf(w), leaf(b) if b is not None else None]
    cpu_ins = [leaf(t.cpu()) if t is not None else None for t in (x, w, b)]
    out, grads, g = run_with_grads(conv_fn("medkern", kw), ins)
    cpu_out, cpu_grads, _ = run_with_grads(conv_fn("medkern", kw), cpu_ins, g.cpu())
    assert_close_reduction(out.cpu(), cpu_out)
    for got, exp in zip(grads, cpu_grads):
        assert_close_reduction(got.cpu(), exp)


REDUCED = [("tf32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16)]


@pytest.mark.parametrize("mode,dtype", REDUCED, ids=[m for m, _ in REDUCED])
@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[3], CONV_CASES[5], CONV_CASES[8]],
                         ids=["conv0", "conv3", "conv5", "conv8"])
def test_conv2d_reduced_precision_error_like_torch(case, mode, dtype):
    skip_cpu_half(dtype)
    x, w, b, kw = conv_case_inputs(case, dtype=dtype)
    with tf32(mode == "tf32"):
        out, grads, g = run_with_grads(conv_fn("medkern", kw), [leaf(x), leaf(w), leaf(b) if b is not None else None])
        ref, ref_grads, _ = run_with_grads(conv_fn("torch", kw), [leaf(x), leaf(w), leaf(b) if b is not None else None], g)
    exact_ins = [leaf(t.double()) if t is not None else None for t in (x, w, b)]
    exact, exact_grads, _ = run_with_grads(conv_fn("torch", kw), exact_ins, g.double())
    assert out.dtype == dtype
    assert_error_like_torch(out, ref, exact, f"{mode} forward")
    for name, got, exp, ex in zip(["grad_input", "grad_weight", "grad_bias"], grads, ref_grads, exact_grads):
        assert_error_like_torch(got, exp, ex, f"{mode} {name}")


@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[2], CONV_CASES[3], CONV_CASES[7]],
                         ids=["conv0", "conv2", "conv3", "conv7"])
def test_conv2d_gradcheck_float64(case):
    n, c, h, w, k, ks, stride, pad, dil, groups, has_bias = case
    small = (1, c, min(h, 7), min(w, 7), k, ks, stride, pad, dil, groups, has_bias)
    x, wt, b, kw = conv_case_inputs(small, dtype=torch.float64)
    ins = (leaf(x), leaf(wt)) + ((leaf(b),) if b is not None else ())
    assert torch.autograd.gradcheck(lambda *t: mops.conv2d(*t, **kw), ins)


def test_conv2d_runs_on_the_callers_stream():
    x, w, b, kw = conv_case_inputs(CONV_CASES[8])
    expected = F.conv2d(x, w, b, **kw)
    if DEVICE != "cuda":
        pytest.skip("streams are a CUDA notion")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = mops.conv2d(x, w, b, **kw)
    side.synchronize()
    assert_close(out, expected)


# ---- conv2d: the TF32 tensor-core path (float32, TF32 allowed, groups 1) ----
# (N, C, H, W, K, kernel, stride, padding, dilation, bias); the comments name what each case reaches
TF32_CASES = [
    (2, 16, 13, 11, 24, (3, 3), 1, 1, 1, True),         # rows not a tile multiple, 64x64 tiles
    (4, 64, 14, 14, 128, (3, 3), 2, 1, 1, True),        # stride 2: four input-gradient phases
    (4, 64, 14, 14, 128, (1, 1), 2, 0, 1, False),       # 1x1 stride 2: phases without taps get zeros
    (3, 32, 9, 10, 36, (5, 3), (2, 3), (2, 1), 1, True),  # uneven strides and padding
    (2, 8, 12, 12, 16, (3, 3), 1, 2, 2, True),          # dilation (input gradient: generic kernel)
    (1, 4, 5, 5, 4, (3, 3), 3, 0, 1, False),            # stride 3: phases without pixels or taps
    (48, 64, 16, 16, 256, (3, 3), 1, 1, 1, False),      # forward on 128x128 tiles, wide weight gradient
    (64, 16, 16, 17, 32, (3, 3), 1, 1, 1, True),        # forward on 128x64 tiles
    (40, 256, 16, 16, 64, (3, 3), 1, 1, 1, False),      # input gradient on 128x128 tiles
    (8, 1, 28, 28, 32, (3, 3), 1, 1, 1, True),          # one input channel, padded to 4 in the workspace
    (4, 3, 30, 30, 8, (7, 7), 2, 3, 1, True),           # RGB stem: 7x7 stride 2, channels padded
    (3, 6, 9, 9, 5, (3, 3), 1, 1, 1, True),             # 6 -> 5 channels: both padded to 8
    (40, 64, 15, 15, 200, (3, 3), 1, 1, 1, False),      # 128x128 forward tiles, partial rows and columns
    (80, 20, 29, 29, 24, (3, 3), 2, 1, 1, True),        # 128x64 tiles, four unequal phases
    (41, 132, 15, 15, 36, (3, 3), 2, 1, 1, False),      # input gradient on 128x128, partial columns
]
TF32_IDS = [f"tf32_{i}" for i in range(len(TF32_CASES))]


def tf32_case_inputs(case):
    n, c, h, w, k, ks, stride, pad, dil, has_bias = case
    return conv_case_inputs((n, c, h, w, k, ks, stride, pad, dil, 1, has_bias))


def tf32_path_bytes(x, w, kw, op):
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    return medkern._C.conv_workspace_bytes(op, list(x.shape), list(w.shape), pair(kw["stride"]),
                                             pair(kw["padding"]), pair(kw["dilation"]), 1, 0, True,
                                             x.device.index or 0)


def round_tf32(t):
    """float32 -> float32 with TF32's 10 mantissa bits, to nearest with ties away from zero (PTX's
    cvt.rna.tf32.f32, which the TF32 path applies to each operand once)."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & -0x2000).view(torch.float32)


@pytest.mark.parametrize("case", TF32_CASES, ids=TF32_IDS)
def test_conv2d_tf32_path_matches_rounded_operands(case):
    """The TF32 path computes exactly the float32-accumulated products of TF32-rounded operands:
    forward of round(x), round(w); input gradient of round(dy), round(w); weight gradient of
    round(dy), round(x); bias gradient of dy unrounded. Checked against float64 on those operands
    with the float32 tolerance (tight enough to see one missing term), and against cuDNN's own
    error where cuDNN used TF32 as well (tiny problems it runs in exact float32)."""
    if DEVICE != "cuda":
        pytest.skip("the TF32 path exists on CUDA only")
    x, w, b, kw = tf32_case_inputs(case)
    dilated = kw["dilation"] != 1
    assert tf32_path_bytes(x, w, kw, "forward") > 0 and tf32_path_bytes(x, w, kw, "backward_weight") > 0
    assert (tf32_path_bytes(x, w, kw, "backward_input") > 0) != dilated
    xr, wr = round_tf32(x).double(), round_tf32(w).double()
    for name, xl in layouts(x):
        ins = [leaf(xl), leaf(w), leaf(b) if b is not None else None]
        with tf32(True):
            out, grads, g = run_with_grads(conv_fn("medkern", kw), ins)
            ref, ref_grads, _ = run_with_grads(conv_fn("torch", kw), [leaf(t) if t is not None else None
                                                                       for t in (xl, w, b)], g)
        gr = round_tf32(g).double()
        bd = b.double() if b is not None else None
        expected = F.conv2d(xr, wr, bd, **kw)
        assert_close_reduction(out, expected.float(), msg=f"forward ({name})")
        if not dilated:  # a dilated input gradient runs the exact float32 kernel
            expected_dx = torch.nn.grad.conv2d_input(x.shape, wr, gr, kw["stride"], kw["padding"], kw["dilation"])
            assert_close_reduction(grads[0], expected_dx.float(), msg=f"grad_input ({name})")
        expected_dw = torch.nn.grad.conv2d_weight(xr, w.shape, gr, kw["stride"], kw["padding"], kw["dilation"])
        assert_close_reduction(grads[1], expected_dw.float(), msg=f"grad_weight ({name})")
        if b is not None:
            assert_close_reduction(grads[2], g.double().sum(dim=(0, 2, 3)).float(), msg=f"grad_bias ({name})")
        exact, exact_grads, _ = run_with_grads(conv_fn("torch", kw), [leaf(t.double()) if t is not None else None
                                                                       for t in (xl, w, b)], g.double())
        pairs = [("forward", out, ref, exact)] + list(zip(["grad_input", "grad_weight"], grads, ref_grads,
                                                          exact_grads))
        for what, got, theirs, ex in pairs:
            if max_error(theirs, ex) > 2.0 ** -14 * ex.abs().max().item():  # cuDNN used TF32 too
                assert_error_like_torch(got, theirs, ex, f"{what} ({name})")


def test_conv2d_tf32_path_fused_relu_and_determinism():
    if DEVICE != "cuda":
        pytest.skip("the TF32 path exists on CUDA only")
    x, w, b, kw = tf32_case_inputs(TF32_CASES[1])
    with tf32(True):
        out, grads, g = run_with_grads(conv_fn("medkern", kw, relu=True), [leaf(x), leaf(w), leaf(b)])
        again, grads_again, _ = run_with_grads(conv_fn("medkern", kw, relu=True), [leaf(x), leaf(w), leaf(b)], g)
        ref, ref_grads, _ = run_with_grads(conv_fn("torch", kw, relu=True), [leaf(x), leaf(w), leaf(b)], g)
    exact, exact_grads, _ = run_with_grads(conv_fn("torch", kw, relu=True),
                                           [leaf(x.double()), leaf(w.double()), leaf(b.double())], g.double())
    assert_error_like_torch(out, ref, exact, "relu forward")
    for got, exp, ex in zip(grads, ref_grads, exact_grads):
        assert_error_like_torch(got, exp, ex, "relu backward")
    # split-K partial sums are added in a fixed order: the same bits every time
    assert torch.equal(out, again)
    for first, second in zip(grads, grads_again):
        assert torch.equal(first, second)


def test_conv2d_tf32_path_is_not_taken_without_tf32_or_for_unsupported_shapes():
    if DEVICE != "cuda":
        pytest.skip("the TF32 path exists on CUDA only")
    x, w, _, kw = tf32_case_inputs(TF32_CASES[0])
    pair = [1, 1]
    bytes_for = lambda xs, ws, groups=1, dtype=0, allow=True: medkern._C.conv_workspace_bytes(  # noqa: E731
        "forward", xs, ws, pair, pair, pair, groups, dtype, allow, 0)
    assert bytes_for(list(x.shape), list(w.shape)) > 0
    assert bytes_for(list(x.shape), list(w.shape), allow=False) == 0      # TF32 off: exact float32 kernel
    assert bytes_for(list(x.shape), list(w.shape), dtype=1) == 0          # float64
    assert bytes_for([2, 6, 8, 8], [5, 6, 3, 3]) > 0                      # channels padded to 8 inside
    assert bytes_for([2, 16, 8, 8], [8, 8, 3, 3], groups=2) == 0          # groups



# ---- conv3d: the same TF32 path with a depth axis ----------------------------------------------
# (N, C, D, H, W, K, kernel, stride, padding, dilation, bias)
TF32_3D_CASES = [
    (2, 1, 12, 14, 10, 8, (3, 3, 3), 1, 1, 1, True),              # one-channel MR input: narrow conversion
    (2, 32, 10, 14, 10, 64, (3, 3, 3), 2, 1, 1, False),           # stride 2: eight input-gradient phases
    (2, 64, 5, 7, 5, 32, (2, 2, 2), 2, 0, 1, True),               # kernel 2 stride 2 (the up-convolution's adjoint)
    (1, 6, 7, 8, 9, 5, (3, 2, 3), (2, 1, 3), (1, 0, 1), 1, True),  # uneven strides, padding, channels padded
    (1, 4, 6, 6, 6, 4, (3, 3, 3), 1, 2, 2, False),                # dilation (input gradient: generic kernel)
    (1, 8, 10, 6, 7, 8, (2, 3, 3), (3, 1, 2), (0, 1, 1), 1, False),  # depth stride 3: phases without taps
    (2, 32, 20, 28, 20, 128, (3, 3, 3), 1, 1, 1, True),           # 128x128 tiles, split-K weight gradient
    (1, 8, 1, 12, 12, 8, (1, 3, 3), 1, (0, 1, 1), 1, True),       # depth 1 through the 3-D op
    (2, 256, 5, 7, 5, 256, (3, 3, 3), 1, 1, 1, True),             # deep layer: forward and input gradient split
]


@pytest.mark.parametrize("case", TF32_3D_CASES, ids=[f"tf32_3d_{i}" for i in range(len(TF32_3D_CASES))])
def test_conv3d_tf32_path_matches_rounded_operands(case):
    """conv3d in float32 with TF32 allowed takes the tensor-core path too: forward, input gradient
    and weight gradient equal float64 on the TF32-rounded operands within float32's tolerance."""
    if DEVICE != "cuda":
        pytest.skip("the TF32 path exists on CUDA only")
    n, c, d, h, w_, k, ks, stride, pad, dil, has_bias = case
    x, w = rand(n, c, d, h, w_), rand(k, c, *ks) / (c * ks[0] * ks[1] * ks[2]) ** 0.5
    b = rand(k) if has_bias else None
    kw = dict(stride=stride, padding=pad, dilation=dil)
    triple = lambda v: list(v) if isinstance(v, tuple) else [v, v, v]  # noqa: E731
    nbytes = lambda op: medkern._C.conv_workspace_bytes(  # noqa: E731
        op, list(x.shape), list(w.shape), triple(stride), triple(pad), triple(dil), 1, 0, True, x.device.index or 0)
    assert nbytes("forward") > 0 and nbytes("backward_weight") > 0
    dilated = dil != 1
    assert (nbytes("backward_input") > 0) != dilated
    xr, wr = round_tf32(x).double(), round_tf32(w).double()
    for name, xl in layouts(x):
        ins = [leaf(xl), leaf(w), leaf(b) if b is not None else None]
        with tf32(True):
            out, grads, g = run_with_grads(lambda *a: mops.conv3d(*a, **kw), ins)
        gr = round_tf32(g).double()
        expected = F.conv3d(xr, wr, b.double() if b is not None else None, **kw)
        assert_close_reduction(out, expected.float(), msg=f"forward ({name})")
        if not dilated:
            expected_dx = torch.nn.grad.conv3d_input(x.shape, wr, gr, stride, pad, dil)
            assert_close_reduction(grads[0], expected_dx.float(), msg=f"grad_input ({name})")
        expected_dw = torch.nn.grad.conv3d_weight(xr, w.shape, gr, stride, pad, dil)
        assert_close_reduction(grads[1], expected_dw.float(), msg=f"grad_weight ({name})")
        if b is not None:
            assert_close_reduction(grads[2], g.double().sum(dim=(0, 2, 3, 4)).float(), msg=f"grad_bias ({name})")
        # split reductions add their partial sums in a fixed order: the same bits every time
        with tf32(True):
            again, grads_again, _ = run_with_grads(lambda *a: mops.conv3d(*a, **kw), ins, g)
        assert torch.equal(out, again) and all(torch.equal(a, b) for a, b in zip(grads, grads_again))


def test_conv_transpose3d_tf32_path_matches_rounded_operands():
    """The transposed convolution's forward is conv's input gradient on the TF32 path (bias in its
    epilogue): kernel 2 stride 2, the U-Net's up-convolution."""
    if DEVICE != "cuda":
        pytest.skip("the TF32 path exists on CUDA only")
    x, w, b = rand(2, 64, 5, 7, 5), rand(64, 32, 2, 2, 2) / 16, rand(32)
    with tf32(True):
        out = mops.conv_transpose3d(x, w, b, stride=2)
    expected = F.conv_transpose3d(round_tf32(x).double(), round_tf32(w).double(), b.double(), stride=2)
    assert_close_reduction(out, expected.float())


# ---- linear --------------------------------------------------------------------------------
LINEAR_CASES = [((7, 13), 5, True), ((1, 1), 1, False), ((3, 4, 70), 66, True), ((4096, 64), 32, True),
                ((130, 257), 2, True)]


@pytest.mark.parametrize("in_shape,out_features,has_bias", LINEAR_CASES)
def test_linear_matches_torch_float32(in_shape, out_features, has_bias):
    x = rand(*in_shape)
    w = rand(out_features, in_shape[-1])
    b = rand(out_features) if has_bias else None
    ins = [leaf(x), leaf(w), leaf(b) if has_bias else None]
    ref_ins = [leaf(t.double()) if t is not None else None for t in (x, w, b)]
    out, grads, g = run_with_grads(mops.linear, ins)
    ref, ref_grads, _ = run_with_grads(F.linear, ref_ins, g.double())
    assert_close_reduction(out, ref.float())
    for got, exp in zip(grads, ref_grads):
        assert_close_reduction(got, exp.float())
    cpu_out, cpu_grads, _ = run_with_grads(mops.linear, [leaf(t.cpu()) if t is not None else None for t in (x, w, b)],
                                           g.cpu())
    assert_close_reduction(out.cpu(), cpu_out)


@pytest.mark.parametrize("mode,dtype", REDUCED, ids=[m for m, _ in REDUCED])
def test_linear_reduced_precision_error_like_torch(mode, dtype):
    skip_cpu_half(dtype)
    x, w, b = rand(300, 96, dtype=dtype), rand(40, 96, dtype=dtype), rand(40, dtype=dtype)
    with tf32(mode == "tf32"):
        out, grads, g = run_with_grads(mops.linear, [leaf(x), leaf(w), leaf(b)])
        ref, ref_grads, _ = run_with_grads(F.linear, [leaf(x), leaf(w), leaf(b)], g)
    exact, exact_grads, _ = run_with_grads(F.linear, [leaf(x.double()), leaf(w.double()), leaf(b.double())], g.double())
    assert_error_like_torch(out, ref, exact, f"{mode} forward")
    for got, exp, ex in zip(grads, ref_grads, exact_grads):
        assert_error_like_torch(got, exp, ex, f"{mode} backward")


def test_linear_gradcheck_float64():
    ins = (leaf(rand(4, 6, dtype=torch.float64)), leaf(rand(3, 6, dtype=torch.float64)),
           leaf(rand(3, dtype=torch.float64)))
    assert torch.autograd.gradcheck(mops.linear, ins)


# ---- pooling -------------------------------------------------------------------------------
MAX_POOL_CASES = [
    dict(kernel_size=2, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=1),
]
AVG_POOL_CASES = [
    dict(kernel_size=2, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(2, 1), divisor_override=5),
]
POOL_SHAPES = [(2, 3, 9, 11), (1, 1, 4, 4), (3, 5, 1, 7)]


def pool_fn(lib, kind, kw):
    if kind == "max":
        return (lambda x: mops.max_pool2d(x, **kw)) if lib == "medkern" else (lambda x: F.max_pool2d(x, **kw))
    return (lambda x: mops.avg_pool2d(x, **kw)) if lib == "medkern" else (lambda x: F.avg_pool2d(x, **kw))


def _pool_applies(shape, kw):
    k = kw["kernel_size"]
    k = (k, k) if isinstance(k, int) else k
    p = kw.get("padding", 0)
    p = (p, p) if isinstance(p, int) else p
    d = kw.get("dilation", 1)
    d = (d, d) if isinstance(d, int) else d
    return all(shape[2 + i] + 2 * p[i] >= d[i] * (k[i] - 1) + 1 for i in range(2))


@pytest.mark.parametrize("shape", POOL_SHAPES)
@pytest.mark.parametrize("kind,kw", [("max", c) for c in MAX_POOL_CASES] + [("avg", c) for c in AVG_POOL_CASES])
def test_pooling_matches_torch_float32(kind, kw, shape):
    if not _pool_applies(shape, kw):
        pytest.skip("window larger than the padded input")
    x = rand(*shape)
    for name, xl in layouts(x):
        out, grads, g = run_with_grads(pool_fn("medkern", kind, kw), [leaf(xl)])
        # reference: torch on the CPU in float64 (torch 2.11's CUDA avg_pool2d backward is wrong
        # for channels_last inputs with padding: errors of 0.6-1.0 seen on an H200, 2026-11-26)
        ref, ref_grads, _ = run_with_grads(pool_fn("torch", kind, kw), [leaf(x.cpu().double())], g.cpu().double())
        assert_close(out.cpu(), ref.float(), msg=f"forward ({name})")
        assert_close(grads[0].cpu(), ref_grads[0].float(), msg=f"backward ({name})")
    cpu_out, cpu_grads, _ = run_with_grads(pool_fn("medkern", kind, kw), [leaf(x.cpu())], g.cpu())
    assert_close(out.cpu(), cpu_out)
    assert_close(grads[0].cpu(), cpu_grads[0])


def test_max_pool2d_returns_torch_indices():
    x = rand(2, 3, 9, 11)
    out, idx = mops.max_pool2d(x, 3, 2, 1, return_indices=True)
    ref, ref_idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert_close(out, ref)
    assert torch.equal(idx, ref_idx)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind,kw", [("max", MAX_POOL_CASES[1]), ("avg", AVG_POOL_CASES[2])])
def test_pooling_reduced_precision_error_like_torch(kind, kw, dtype):
    skip_cpu_half(dtype)
    x = rand(4, 8, 15, 15, dtype=dtype)
    out, grads, g = run_with_grads(pool_fn("medkern", kind, kw), [leaf(x)])
    ref, ref_grads, _ = run_with_grads(pool_fn("torch", kind, kw), [leaf(x)], g)
    exact, exact_grads, _ = run_with_grads(pool_fn("torch", kind, kw), [leaf(x.double())], g.double())
    assert_error_like_torch(out, ref, exact, "forward")
    assert_error_like_torch(grads[0], ref_grads[0], exact_grads[0], "backward")


@pytest.mark.parametrize("kind,kw", [("max", MAX_POOL_CASES[2]), ("avg", AVG_POOL_CASES[3])])
def test_pooling_gradcheck_float64(kind, kw):
    x = leaf(rand(1, 2, 7, 6, dtype=torch.float64))
    assert torch.autograd.gradcheck(pool_fn("medkern", kind, kw), (x,))


# ---- batch norm ----------------------------------------------------------------------------
BN_SHAPES = [(4, 3, 5, 7), (6, 5), (3, 4, 9), (64, 8, 32, 32), (2, 1, 1, 3)]


def bn_call(lib, x, rm, rv, w, b, training, momentum=0.1, eps=1e-5):
    fn = mops.batch_norm if lib == "medkern" else F.batch_norm
    return fn(x, rm, rv, w, b, training, momentum, eps)


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch_float32(shape, training, affine):
    c = shape[1]
    x = rand(*shape)
    w, b = (rand(c), rand(c)) if affine else (None, None)
    rm0, rv0 = rand(c), rand(c).abs() + 0.5
    for name, xl in layouts(x):
        rm, rv, rm_ref, rv_ref = rm0.clone(), rv0.clone(), rm0.clone(), rv0.clone()
        ins = [leaf(xl)] + ([leaf(w), leaf(b)] if affine else [])
        ref_ins = [leaf(xl)] + ([leaf(w), leaf(b)] if affine else [])

        def ours(*t):
            return bn_call("medkern", t[0], rm, rv, t[1] if affine else None, t[2] if affine else None, training)

        def theirs(*t):
            return bn_call("torch", t[0], rm_ref, rv_ref, t[1] if affine else None, t[2] if affine else None,
                           training)

        out, grads, g = run_with_grads(ours, ins)
        ref, ref_grads, _ = run_with_grads(theirs, ref_ins, g)
        assert_close(out, ref, msg=f"forward ({name})")
        assert_close(rm, rm_ref, msg="running_mean")
        assert_close(rv, rv_ref, msg="running_var")
        for got, exp in zip(grads, ref_grads):
            assert_close(got, exp, msg=f"backward ({name})")


def test_batch_norm_without_running_stats_uses_batch_statistics():
    x, w, b = rand(8, 4, 6, 6), rand(4), rand(4)
    out = mops.batch_norm(x, None, None, w, b, True)
    assert_close(out, F.batch_norm(x, None, None, w, b, True))


def test_batch_norm_statistics_are_stable_for_large_means():
    # sum / sum-of-squares in float32 loses the variance of 1000 + N(0, 1); Welford does not
    x = rand(32, 3, 40, 40) * 0.5 + 1000.0
    rm, rv = torch.zeros(3, device=DEVICE), torch.ones(3, device=DEVICE)
    out = mops.batch_norm(x, rm, rv, None, None, True, 1.0, 1e-5)
    exact = F.batch_norm(x.double(), None, None, None, None, True, 0.0, 1e-5)
    assert max_error(out, exact) < 1e-3
    exact_var = x.double().transpose(0, 1).reshape(3, -1).var(dim=1)
    assert ((rv.double() - exact_var).abs() / exact_var).max().item() < 1e-3, "unbiased running_var"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_batch_norm_mixed_precision_error_like_torch(dtype):
    skip_cpu_half(dtype)
    x = rand(16, 8, 12, 12, dtype=dtype)
    w, b = rand(8), rand(8)

    def run(lib, xx, ww, bb, grad):
        # batch statistics only (training, no running buffers): the float64 run cannot share them
        return run_with_grads(lambda *t: bn_call(lib, t[0], None, None, t[1], t[2], True),
                              [leaf(xx), leaf(ww), leaf(bb)], grad)

    g = rand(16, 8, 12, 12, dtype=dtype)
    out, grads, _ = run("medkern", x, w, b, g)
    ref, ref_grads, _ = run("torch", x, w, b, g)
    exact, exact_grads, _ = run("torch", x.double(), w.double(), b.double(), g.double())
    assert out.dtype == dtype
    assert_error_like_torch(out, ref, exact, "forward")
    for got, exp, ex in zip(grads, ref_grads, exact_grads):
        assert_error_like_torch(got.to(exp.dtype), exp, ex, "backward")


def test_batch_norm_gradcheck_float64():
    x, w, b = (leaf(rand(3, 2, 4, 5, dtype=torch.float64)), leaf(rand(2, dtype=torch.float64)),
               leaf(rand(2, dtype=torch.float64)))
    assert torch.autograd.gradcheck(lambda *t: mops.batch_norm(t[0], None, None, t[1], t[2], True), (x, w, b))


# ---- relu ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7,), (3, 5, 11), (2, 4, 8, 8), (1, 0, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_relu_matches_torch(shape, dtype):
    skip_cpu_half(dtype)
    x = rand(*shape, dtype=dtype)
    for name, xl in layouts(x):
        out, grads, g = run_with_grads(mops.relu, [leaf(xl)])
        ref, ref_grads, _ = run_with_grads(F.relu, [leaf(xl)], g)
        assert torch.equal(out, ref), name   # relu is exact in every dtype
        assert torch.equal(grads[0], ref_grads[0]), name
    misaligned = rand(int(x.numel()) + 1, dtype=dtype)[1:]  # 16-byte vector path must not apply
    assert torch.equal(mops.relu(misaligned), F.relu(misaligned))


def test_relu_gradcheck_float64():
    x = rand(4, 5, dtype=torch.float64)
    x = torch.where(x.abs() < 0.1, x + 0.2, x)   # away from the kink
    assert torch.autograd.gradcheck(mops.relu, (leaf(x),))


# ---- opcheck ---------------------------------------------------------------------------------
def _opcheck_sample(name):
    if name == "conv2d":
        x, w, b, kw = conv_case_inputs(CONV_CASES[3])
        return lambda: mops.conv2d(leaf(x), leaf(w), leaf(b), **kw)
    return {
        "linear": lambda: mops.linear(leaf(rand(5, 7)), leaf(rand(3, 7)), leaf(rand(3))),
        "max_pool2d": lambda: mops.max_pool2d(leaf(rand(2, 3, 8, 8)), 3, 2, 1),
        "avg_pool2d": lambda: mops.avg_pool2d(leaf(rand(2, 3, 8, 8)), 3, 2, 1),
        "batch_norm": lambda: mops.batch_norm(leaf(rand(4, 3, 5, 5)), rand(3), rand(3).abs() + 0.5,
                                              leaf(rand(3)), leaf(rand(3)), True),
        "relu": lambda: mops.relu(leaf(rand(4, 9))),
    }[name]


@pytest.mark.parametrize("name", ["conv2d", "linear", "max_pool2d", "avg_pool2d", "batch_norm", "relu"])
def test_opcheck_on_cuda_samples(name):
    """Records the first torch.ops.medkern op a public call dispatches to and opchecks it with the
    arguments it received (so the test does not hard-code op schemas)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func.namespace == "medkern":
                seen.append((func, args, kwargs))
            return func(*args, **kwargs)

    call = _opcheck_sample(name)
    with Recorder():
        call()
    if not seen:
        pytest.skip(f"medkern.ops.{name} does not dispatch to a torch.ops.medkern op in this tree")
    op, args, kwargs = seen[0]
    if any(a.is_write for a in op._schema.arguments if a.alias_info is not None):
        # torch.library allows no autograd formula on an op that mutates an argument (batch_norm's
        # running statistics; its autograd lives in an autograd.Function): check it without grads
        args = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    torch.library.opcheck(op, args, kwargs)


# ---- whole-network checks ------------------------------------------------------------------------
def _seed_cnn():
    from medkern.models import SeedCNN
    return SeedCNN


def test_cuda_graph_capture_and_replay_of_a_training_step():
    if DEVICE != "cuda":
        pytest.skip("CUDA graphs need a GPU")
    torch.manual_seed(0)
    model = _seed_cnn()().to(DEVICE).train()
    for m in model.modules():   # replay and eager must draw the same (no) dropout masks
        if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d)):
            m.p = 0.0
    in_shape = getattr(model, "input_shape", (1, 28, 28))
    static_x = rand(16, *in_shape)
    static_y = torch.randint(0, 2, (16,), device=DEVICE)

    def step():
        out = model(static_x)
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        loss = (F.binary_cross_entropy_with_logits(out, static_y.float()) if out.dim() == 1
                else F.cross_entropy(out, static_y))
        loss.backward()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):   # warm-up outside capture (lazy init, autograd buffers)
            model.zero_grad(set_to_none=False)
            step()
    torch.cuda.current_stream().wait_stream(side)

    graph = torch.cuda.CUDAGraph()
    model.zero_grad(set_to_none=False)
    with torch.cuda.graph(graph):
        static_loss = step()

    new_x = rand(16, *in_shape)
    static_x.copy_(new_x)
    model.zero_grad(set_to_none=False)
    graph.replay()
    torch.cuda.synchronize()
    replay_loss = static_loss.clone()
    replay_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    model.zero_grad(set_to_none=False)
    eager_loss = step()
    eager_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    # batch-norm running stats moved once more between the two runs; train-mode outputs do not use them
    torch.testing.assert_close(replay_loss, eager_loss, rtol=1e-4, atol=1e-5)
    for got, exp in zip(replay_grads, eager_grads):
        torch.testing.assert_close(got, exp, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_training_parity_gpu_vs_cpu(pneumoniamnist, tmp_path):
    """The seed CNN trained with the same seed on the CPU kernels and on DEVICE's ends within
    0.02 test AUC: the runs differ only by floating-point summation order."""
    from medkern.train import TrainConfig, train

    metrics = {}
    for device in ("cpu", DEVICE):
        config = TrainConfig(data=str(pneumoniamnist), model="seedcnn", epochs=2, seed=0,
                             device=device, out=str(tmp_path / device), progress=False)
        metrics[device] = train(config)
    assert metrics[DEVICE]["device"].startswith(DEVICE), metrics[DEVICE]["device"]
    aucs = {device: m["test_auc"] for device, m in metrics.items()}
    assert all(0.5 < a <= 1.0 for a in aucs.values()), aucs   # both runs learned something
    assert abs(aucs["cpu"] - aucs[DEVICE]) <= 0.02, aucs
