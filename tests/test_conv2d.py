"""medkern conv2d against torch.nn.functional.conv2d: values and gradients over shapes, strides,
padding, dilation, groups, non-contiguous inputs, both dtypes and every SIMD level; fused ReLU;
float64 gradcheck; opcheck; and one test per argument error."""
import pytest
import torch
import torch.nn.functional as F

import medkern
from medkern import nn as mnn
from medkern import ops
from medkern import _backend
from medkern._backend import _C
from simd_levels import SIMD_LEVELS, simd_level
from tolerances import assert_close

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (2, 1, 28, 28, 32, 3, 3, 1, 0, 1, 1),     # single-channel first layer (direct path)
    (3, 32, 13, 13, 64, 3, 3, 1, 0, 1, 1),    # seed CNN conv2
    (2, 16, 14, 14, 24, 3, 3, 2, 1, 1, 1),    # strided
    (2, 8, 7, 7, 16, 1, 1, 1, 0, 1, 1),       # 1x1 stride 1 (no im2col)
    (2, 8, 7, 7, 16, 1, 1, 2, 0, 1, 1),       # 1x1 stride 2 downsample
    (1, 5, 11, 9, 7, 3, 2, (2, 1), (1, 0), (2, 1), 1),  # odd everything, asymmetric
    (2, 12, 9, 9, 8, 3, 3, 1, 1, 1, 4),       # grouped (3 channels per group: direct path)
    (2, 16, 9, 9, 8, 3, 3, 1, 1, 1, 2),       # grouped, GEMM path
    (2, 6, 8, 8, 6, 3, 3, 1, 1, 1, 6),        # depthwise
    (2, 4, 8, 8, 12, 3, 3, 1, 2, 2, 4),       # depthwise multiplier 3, dilation
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1),        # all size 1
    (1, 3, 5, 5, 2, 5, 5, 1, 0, 1, 1),        # kernel == input
    (3, 9, 6, 5, 10, 3, 3, 1, 1, 1, 1),       # M and N tails everywhere
    (1, 40, 4, 4, 70, 3, 3, 1, 1, 1, 1),      # K > one k-block? (360), M tail 70
    (2, 300, 3, 3, 9, 1, 1, 1, 0, 1, 1),      # reduction over two k blocks, 1x1
    (2, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1),    # 3x3 stride 1, >= 64 channels: Winograd F(2x2,3x3) fwd + bwd-input
    (1, 72, 15, 13, 80, 3, 3, 1, 0, 1, 1),    # Winograd with odd outputs (13x11) and no padding
]

# Winograd cases (cpu/conv2d_winograd.cpp): float32 forward and backward-input; odd sizes, each
# padding 0..2 (backward-input pads by 2 - padding), strided input, fused relu
WINOGRAD_CASES = [
    (2, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1),
    (1, 96, 17, 14, 64, 3, 3, 1, 0, 1, 1),
    (3, 64, 13, 15, 72, 3, 3, 1, 2, 1, 1),
]


def make(case, dtype, bias=True):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, dtype=dtype)
    # weights scaled like torch's init, so outputs are O(1) and float32 tolerances stay meaningful
    wt = torch.randn(k, c // groups, r, s, dtype=dtype) / (c // groups * r * s) ** 0.5
    b = torch.randn(k, dtype=dtype) if bias else None
    return x, wt, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def check_fwd_bwd(x, w, b, kw, relu=False):
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    ws = [w.clone().requires_grad_(), w.clone().requires_grad_()]
    bs = [None if b is None else b.clone().requires_grad_() for _ in range(2)]
    fn = ops.conv2d_relu if relu else ops.conv2d
    out = fn(xs[0], ws[0], bs[0], **kw)
    ref = F.conv2d(xs[1], ws[1], bs[1], **kw)
    if relu:
        ref = F.relu(ref)
    assert_close(out, ref, op="conv2d")
    # grad_output scaled so the weight gradient (a sum over batch x pixels) is O(1) too
    g = torch.randn_like(ref) / (ref.numel() / ref.shape[1]) ** 0.5
    out.backward(g)
    ref.backward(g)
    assert_close(xs[0].grad, xs[1].grad, op="conv2d")
    assert_close(ws[0].grad, ws[1].grad, op="conv2d")
    if b is not None:
        assert_close(bs[0].grad, bs[1].grad, op="conv2d")


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])))
def test_matches_torch(case, dtype, level):
    with simd_level(level):
        x, w, b, kw = make(case, dtype)
        check_fwd_bwd(x, w, b, kw)


@pytest.mark.parametrize("case", CASES[:6], ids=lambda c: "x".join(map(str, c[:7])))
def test_fused_relu(case):
    x, w, b, kw = make(case, torch.float32)
    check_fwd_bwd(x, w, b, kw, relu=True)


@pytest.mark.parametrize("case", CASES[:4], ids=lambda c: "x".join(map(str, c[:7])))
def test_no_bias(case):
    x, w, _, kw = make(case, torch.float32, bias=False)
    check_fwd_bwd(x, w, None, kw)


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=lambda c: "x".join(map(str, c[:7])))
def test_winograd_path_matches_torch(case, level):
    """Winograd's transforms add a few roundings: the float32 tolerance (rtol 1e-4, atol 1e-5 on
    O(1) outputs) still holds; relu fused; a channels-strided view as input."""
    with simd_level(level):
        x, w, b, kw = make(case, torch.float32)
        check_fwd_bwd(x, w, b, kw)
        check_fwd_bwd(x, w, b, kw, relu=True)
        wide = torch.randn(x.shape[0], 2 * x.shape[1], *x.shape[2:])[:, ::2]  # non-contiguous channels
        assert_close(ops.conv2d(wide, w, b, **kw), F.conv2d(wide, w, b, **kw), op="conv2d")


def test_large_batch_uses_parallel_chunks():
    # 64 samples take the parallel-over-sample-chunks path (and per-thread weight gradients)
    x, w, b, kw = make((64, 8, 10, 10, 16, 3, 3, 1, 1, 1, 1), torch.float32)
    check_fwd_bwd(x, w, b, kw)
    x, w, b, kw = make((64, 1, 12, 12, 8, 3, 3, 1, 1, 1, 1), torch.float32)
    check_fwd_bwd(x, w, b, kw)


def test_non_contiguous_inputs():
    base = torch.randn(4, 10, 12, 20)
    x = base[::2, 1:9, :, ::2]                      # strided batch, channels and width
    w = torch.randn(6, 8, 3, 3).transpose(2, 3) / 8   # transposed filter taps
    b = torch.randn(12)[::2]
    assert not x.is_contiguous() and not w.is_contiguous() and not b.is_contiguous()
    check_fwd_bwd(x, w, b, dict(padding=1))
    x_cl = torch.randn(2, 8, 9, 9).to(memory_format=torch.channels_last)
    check_fwd_bwd(x_cl, torch.randn(5, 8, 3, 3), None, dict(padding=1))
    x1 = torch.randn(3, 1, 14, 30)[:, :, ::2, ::3]   # direct path, strided
    check_fwd_bwd(x1, torch.randn(4, 1, 3, 3), torch.randn(4), dict(padding=1))


def test_non_contiguous_grad_output():
    x = torch.randn(2, 6, 8, 8, requires_grad=True)
    w = torch.randn(5, 6, 3, 3, requires_grad=True)
    ops.conv2d(x, w, padding=1).sum().backward()   # grad_output is an expanded (stride-0) tensor
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.conv2d(x2, w2, padding=1).sum().backward()
    assert_close(x.grad, x2.grad, op="conv2d")
    assert_close(w.grad, w2.grad, op="conv2d")


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_string_padding(padding):
    x = torch.randn(2, 3, 9, 8)
    for k in [(3, 3), (4, 2)]:
        w = torch.randn(4, 3, *k)
        assert_close(ops.conv2d(x, w, padding=padding, dilation=(1, 2)),
                     F.conv2d(x, w, padding=padding, dilation=(1, 2)), op="conv2d")


def test_unbatched_input():
    x, w = torch.randn(3, 7, 7), torch.randn(4, 3, 3, 3)
    assert_close(ops.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1), op="conv2d")


# small shapes: gradcheck perturbs every input element, twice
GRADCHECK_CASES = [
    (1, 6, 5, 5, 3, 3, 3, 1, 1, 1, 1),             # GEMM path
    (1, 5, 6, 5, 3, 3, 2, (2, 1), (1, 0), (2, 1), 1),  # strided, dilated, asymmetric
    (1, 4, 5, 5, 4, 3, 3, 1, 1, 1, 2),             # grouped, direct path
    (1, 3, 5, 5, 6, 3, 3, 1, 1, 1, 3),             # depthwise with multiplier 2
    (2, 6, 4, 4, 4, 1, 1, 1, 0, 1, 1),             # 1x1
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: "x".join(map(str, c[:7])))
def test_gradcheck_float64(case):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = case
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(k, c // groups, r, s, dtype=torch.float64, requires_grad=True)
    b = torch.randn(k, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: ops.conv2d(*a, stride, padding, dilation, groups), (x, wt, b))
    assert torch.autograd.gradcheck(lambda *a: ops.conv2d_relu(*a, stride, padding, dilation, groups), (x, wt, b))


def test_opcheck():
    samples = [
        (torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4), [1, 1], [1, 1], [1, 1], 1),  # aten's 7
        (torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4), [1, 1], [1, 1], [1, 1], 1, False),
        (torch.randn(2, 4, 9, 7), torch.randn(6, 2, 3, 1), None, [2, 1], [0, 1], [1, 1], 2, True),
        (torch.randn(1, 1, 10, 10), torch.randn(8, 1, 3, 3), torch.randn(8), [1, 1], [0, 0], [2, 2], 1, True),
    ]
    for x, w, b, *rest in samples:
        x.requires_grad_()
        w.requires_grad_()
        if b is not None:
            b.requires_grad_()
        torch.library.opcheck(torch.ops.medkern.conv2d.default, (x, w, b, *rest))


def test_nn_module_matches_torch_and_keeps_state_dict():
    ref = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
    mine = mnn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True, fuse_relu=False)
    assert isinstance(mine, torch.nn.Conv2d)
    mine.load_state_dict(ref.state_dict())
    assert list(mine.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 3, 11, 11)
    assert_close(mine(x), ref(x), op="conv2d")
    fused = mnn.Conv2d(3, 8, 3, padding="same", fuse_relu=True)
    fused.load_state_dict(torch.nn.Conv2d(3, 8, 3, padding="same").state_dict())
    assert_close(fused(x), F.relu(F.conv2d(x, fused.weight, fused.bias, padding="same")), op="conv2d")
    assert "fuse_relu=True" in repr(fused)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_nn_module_padding_modes(mode):
    ref = torch.nn.Conv2d(2, 4, 3, padding=1, padding_mode=mode)
    mine = mnn.Conv2d(2, 4, 3, padding=1, padding_mode=mode)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(2, 2, 7, 6)
    assert_close(mine(x), ref(x), op="conv2d")


# ---- error paths: each asserts the exception type and that the message names the argument ----

def test_error_wrong_dtype():
    with pytest.raises(TypeError, match="'input'"):
        ops.conv2d(torch.randn(1, 1, 5, 5, dtype=torch.float16), torch.randn(1, 1, 3, 3, dtype=torch.float16))


def test_error_int_tensor():
    with pytest.raises(TypeError, match="'input'"):
        ops.conv2d(torch.ones(1, 1, 5, 5, dtype=torch.int32), torch.ones(1, 1, 3, 3, dtype=torch.int32))


def test_error_weight_dtype_mismatch():
    with pytest.raises(TypeError, match="'weight'"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3, dtype=torch.float64))


def test_error_bias_dtype_mismatch():
    with pytest.raises(TypeError, match="'bias'"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), torch.randn(2, dtype=torch.float64))


def test_error_wrong_rank():
    with pytest.raises(ValueError, match="'input'"):
        ops.conv2d(torch.randn(1, 1, 1, 5, 5), torch.randn(1, 1, 3, 3))
    with pytest.raises(ValueError, match="'weight'"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 3, 3))


def test_error_mismatched_channels():
    with pytest.raises(ValueError, match="'weight'.*input channels"):
        ops.conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 2, 3, 3))


def test_error_groups_not_dividing():
    with pytest.raises(ValueError, match="'groups'"):
        ops.conv2d(torch.randn(1, 4, 5, 5), torch.randn(3, 2, 3, 3), groups=2)  # 3 outputs / 2 groups
    with pytest.raises(ValueError, match="'groups'"):
        ops.conv2d(torch.randn(1, 5, 5, 5), torch.randn(4, 2, 3, 3), groups=2)  # 5 inputs / 2 groups


def test_error_bias_shape():
    with pytest.raises(ValueError, match="'bias'"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), torch.randn(3))


def test_error_negative_padding():
    with pytest.raises(ValueError, match="'padding'"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), padding=-1)


def test_error_stride_zero():
    with pytest.raises(ValueError, match="'stride'"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), stride=0)


def test_error_dilation_zero():
    with pytest.raises(ValueError, match="'dilation'"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), dilation=0)


def test_error_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match="'weight'.*larger than the padded 'input'"):
        ops.conv2d(torch.randn(1, 1, 4, 4), torch.randn(2, 1, 5, 5), padding=0)
    with pytest.raises(ValueError, match="'weight'"):
        ops.conv2d(torch.randn(1, 1, 4, 4), torch.randn(2, 1, 3, 3), dilation=3)


def test_error_mismatched_devices_python():
    with pytest.raises(ValueError, match="'weight'.*same device"):
        ops.conv2d(torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3, device="meta"))


def test_error_mismatched_devices_core():
    x, w, out = torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), torch.empty(1, 2, 3, 3)
    fake_cuda_w = _C.TensorView(w.data_ptr(), 0, list(w.shape), list(w.stride()), 1, 0)
    view = medkern._backend.view
    with pytest.raises(ValueError, match="'weight'.*cuda:0"):
        _C.conv2d_forward(view(x), fake_cuda_w, None, view(out), [1, 1], [0, 0], [1, 1], 1)


def test_error_output_shape_core():
    x, w, out = torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), torch.empty(1, 2, 4, 4)
    view = medkern._backend.view
    with pytest.raises(ValueError, match="'output'.*expected \\(1, 2, 3, 3\\)"):
        _C.conv2d_forward(view(x), view(w), None, view(out), [1, 1], [0, 0], [1, 1], 1)


def test_error_backward_grad_output_shape_core():
    view = medkern._backend.view
    gy, w, gx = torch.randn(1, 2, 4, 4), torch.randn(2, 1, 3, 3), torch.empty(1, 1, 5, 5)
    with pytest.raises(ValueError, match="'grad_output'"):
        _C.conv2d_backward_input(view(gy), view(w), view(gx), [1, 1], [0, 0], [1, 1], 1)


# ---- the CUDA TF32 path's workspace arguments (checked on every build, GPU or not) ----

def test_workspace_bytes_rejects_unknown_op_and_bad_shapes():
    with pytest.raises(ValueError, match="'op'"):
        _C.conv_workspace_bytes("fwd", [2, 4, 8, 8], [8, 4, 3, 3], [1, 1], [1, 1], [1, 1], 1, 0, True, 0)
    with pytest.raises(ValueError, match="'weight'"):
        _C.conv_workspace_bytes("forward", [2, 4, 8, 8], [8, 3, 3, 3], [1, 1], [1, 1], [1, 1], 1, 0, True, 0)


def test_workspace_bytes_is_zero_where_the_tf32_path_cannot_run():
    args = ([2, 4, 8, 8], [8, 4, 3, 3], [1, 1], [1, 1], [1, 1], 1)
    assert _C.conv_workspace_bytes("forward", *args, 1, True, 0) == 0      # float64
    assert _C.conv_workspace_bytes("forward", *args, 0, False, 0) == 0     # TF32 not allowed
    if not torch.cuda.is_available():                                         # no GPU: never
        for op in ("forward", "backward_input", "backward_weight"):
            assert _C.conv_workspace_bytes(op, *args, 0, True, 0) == 0


def test_error_workspace_not_contiguous():
    x, w = torch.randn(1, 4, 6, 6), torch.randn(4, 4, 3, 3)
    out = torch.empty(1, 4, 4, 4)
    ws = torch.empty(64, dtype=torch.uint8)[::2]
    with pytest.raises(ValueError, match="'workspace'"):
        _C.conv2d_forward(_backend.view(x), _backend.view(w), None, _backend.view(out), [1, 1], [0, 0], [1, 1], 1,
                          workspace=_backend.view(ws, "workspace"))
    # a contiguous workspace on the CPU is simply unused: the result is torch's
    _C.conv2d_forward(_backend.view(x), _backend.view(w), None, _backend.view(out), [1, 1], [0, 0], [1, 1], 1,
                      workspace=_backend.view(ws.contiguous(), "workspace"))
    assert_close(out, F.conv2d(x, w), op="conv2d")


def test_stride_phases_regroup_exactly_the_taps_of_the_input_gradient():
    """The CUDA TF32 input gradient runs one GEMM per stride phase; its index arithmetic
    (common/conv_math.h stride_phase) must visit exactly the (input h, tap r, output p) triples
    with h + pad - r == p * stride and 0 <= p < P, each once, and cover every input once."""
    for in_size in range(1, 12):
        for kernel in range(1, 8):
            for stride in range(1, 6):
                for pad in range(0, 5):
                    out_size = (in_size + 2 * pad - kernel) // stride + 1
                    if out_size < 1:
                        continue
                    expected = {(h, r, (h + pad - r) // stride) for h in range(in_size) for r in range(kernel)
                                if (h + pad - r) % stride == 0 and 0 <= (h + pad - r) // stride < out_size}
                    seen, covered = [], []
                    for phase in range(stride):
                        first, count, taps, base = _C._conv_stride_phase(phase, in_size, kernel, stride, pad)
                        for j in range(count):
                            h = first + j * stride
                            covered.append(h)
                            assert (h + pad) % stride == phase
                            for i in range(taps):
                                r, p = phase + i * stride, base + j - i
                                assert r < kernel and h + pad - r == p * stride
                                if 0 <= p < out_size:
                                    seen.append((h, r, p))
                    assert sorted(covered) == list(range(in_size)), (in_size, kernel, stride, pad)
                    assert len(seen) == len(set(seen)) and set(seen) == expected, (in_size, kernel, stride, pad)
    with pytest.raises(ValueError, match="phase"):
        _C._conv_stride_phase(2, 5, 3, 2, 1)


def test_error_workspace_on_another_device_and_bad_dtype_code():
    x, w = torch.randn(1, 4, 6, 6), torch.randn(4, 4, 3, 3)
    out = torch.empty(1, 4, 4, 4)
    ws = torch.empty(64, dtype=torch.uint8)
    on_gpu = _C.TensorView(ws.data_ptr(), 4, [64], [1], 1, 0)  # claims cuda:0; only its device is read
    with pytest.raises(ValueError, match="'workspace'"):
        _C.conv2d_forward(_backend.view(x), _backend.view(w), None, _backend.view(out), [1, 1], [0, 0], [1, 1], 1,
                          workspace=on_gpu)
    with pytest.raises(TypeError, match="dtype code"):
        _C.conv_workspace_bytes("forward", [2, 4, 8, 8], [8, 4, 3, 3], [1, 1], [1, 1], [1, 1], 1, 99, True, 0)
