"""medkern conv3d against torch.nn.functional.conv3d: values and gradients over fixed and random
shapes (odd sizes, strides, padding, dilation, groups, the direct and GEMM paths, every SIMD level),
non-contiguous operands, 'same' / 'valid' padding, unbatched input, N = 0, fused ReLU; float64
gradcheck; opcheck; nn.Conv3d and accelerate; one test per argument error; and CUDA mirrors
(marked `cuda`, skipped without a GPU)."""
import random

import pytest
import torch
import torch.nn.functional as F

import medkern
from medkern import nn as mnn
from medkern import ops
from conv_checks import check_against_torch, operands
from simd_levels import SIMD_LEVELS, simd_level
from tolerances import assert_close

# (N, C, D, H, W, K, kernel, stride, padding, dilation, groups)
CASES = [
    (2, 1, 6, 7, 8, 8, (3, 3, 3), 1, 1, 1, 1),                  # one input channel: direct path
    (2, 4, 5, 6, 7, 6, (3, 3, 3), 1, 1, 1, 1),                  # GEMM path
    (1, 3, 7, 8, 9, 5, (3, 2, 3), (2, 1, 2), (1, 0, 1), (1, 2, 1), 1),  # asymmetric everything
    (2, 8, 6, 6, 6, 8, (3, 3, 3), 2, 1, 1, 1),                  # stride-2 downsampling
    (2, 6, 4, 5, 6, 9, (1, 1, 1), 1, 0, 1, 3),                  # 1x1x1 grouped (no im2col)
    (1, 4, 5, 5, 5, 4, (3, 3, 3), 1, 2, 2, 4),                  # depthwise, dilated
    (2, 6, 5, 4, 6, 4, (2, 3, 1), 1, (1, 1, 0), 1, 2),          # grouped GEMM
    (1, 2, 5, 6, 7, 4, (3, 3, 3), (2, 1, 1), (0, 1, 1), (2, 1, 1), 1),  # direct, depth stride + dilation
    (1, 1, 1, 1, 1, 1, (1, 1, 1), 1, 0, 1, 1),                  # all size 1
    (3, 5, 3, 9, 4, 7, (3, 3, 3), 1, 1, 1, 1),                  # depth 3 with padding 1: edge planes
]


def kwargs_of(case):
    *_, stride, padding, dilation, groups = case
    return dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def make(case, dtype=torch.float64, bias=True, device="cpu"):
    n, c, d, h, w, k, kernel, stride, padding, dilation, groups = case
    return operands((n, c, d, h, w), (k, c // groups, *kernel), k if bias else None, dtype, device)


def random_case(rng: random.Random):
    """A random valid convolution: odd sizes, any stride / padding / dilation / groups."""
    while True:
        groups = rng.choice([1, 1, 2, 3])
        c, k = groups * rng.randint(1, 4), groups * rng.randint(1, 4)
        kernel = tuple(rng.randint(1, 3) for _ in range(3))
        stride = tuple(rng.randint(1, 3) for _ in range(3))
        dilation = tuple(rng.randint(1, 2) for _ in range(3))
        padding = tuple(rng.randint(0, 2) for _ in range(3))
        size = tuple(rng.randint(1, 9) for _ in range(3))
        if all(dl * (kk - 1) + 1 <= s + 2 * p for dl, kk, s, p in zip(dilation, kernel, size, padding)):
            return (rng.randint(1, 3), c, *size, k, kernel, stride, padding, dilation, groups)


RANDOM_CASES = [random_case(random.Random(seed)) for seed in range(12)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])))
def test_matches_torch(case, dtype):
    x, w, b = make(case, dtype)
    check_against_torch(ops.conv3d, F.conv3d, x, w, b, kwargs_of(case), "conv3d")


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: "-".join(map(str, c)))
def test_random_shapes_match_torch(case):
    x, w, b = make(case, torch.float64, bias=case[0] != 2)
    check_against_torch(ops.conv3d, F.conv3d, x, w, b, kwargs_of(case), "conv3d")


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[7]], ids=["direct", "gemm", "direct-strided"])
def test_every_simd_level(case, level):
    with simd_level(level):
        x, w, b = make(case, torch.float32)
        check_against_torch(ops.conv3d, F.conv3d, x, w, b, kwargs_of(case), "conv3d")


def test_fused_relu():
    for case in CASES[:4]:
        x, w, b = make(case, torch.float32)
        check_against_torch(ops.conv3d_relu, lambda *a, **k: F.relu(F.conv3d(*a, **k)), x, w, b, kwargs_of(case),
                            "conv3d")


def test_larger_batch_runs_sample_chunks_in_parallel():
    x, w, b = operands((24, 8, 6, 6, 6), (16, 8, 3, 3, 3), 16, torch.float32)
    check_against_torch(ops.conv3d, F.conv3d, x, w, b, dict(padding=1), "conv3d")


@pytest.mark.parametrize("cin,cout,size,stride", [(16, 16, (20, 28, 20), 1), (32, 8, (12, 30, 17), 2)])
def test_large_volume_runs_in_row_blocks(cin, cout, size, stride):
    """A sample's column matrix above the buffer budget is cut into blocks of output rows; the
    input gradient's blocks add into overlapping input rows."""
    x, w, b = operands((3, cin, *size), (cout, cin, 3, 3, 3), cout)
    check_against_torch(ops.conv3d, F.conv3d, x, w, b, dict(stride=stride, padding=1), "conv3d")


def test_non_contiguous_operands():
    x = torch.randn(4, 10, 7, 8, 12, dtype=torch.float64)[::2, 1:9, :, :, ::2]  # strided batch, channels, width
    w = (torch.randn(6, 8, 3, 3, 2, dtype=torch.float64) / 12).transpose(2, 4)   # transposed filter taps
    b = torch.randn(12, dtype=torch.float64)[::2]
    assert not x.is_contiguous() and not w.is_contiguous() and not b.is_contiguous()
    check_against_torch(ops.conv3d, F.conv3d, x, w, b, dict(padding=1), "conv3d")
    x1 = torch.randn(2, 1, 6, 14, 30, dtype=torch.float64)[:, :, :, ::2, ::3]    # direct path, strided
    check_against_torch(ops.conv3d, F.conv3d, x1, torch.randn(4, 1, 3, 3, 3, dtype=torch.float64),
                        torch.randn(4, dtype=torch.float64), dict(padding=1), "conv3d")
    x_cl = torch.randn(2, 4, 5, 6, 7, dtype=torch.float64).to(memory_format=torch.channels_last_3d)
    check_against_torch(ops.conv3d, F.conv3d, x_cl, torch.randn(3, 4, 3, 3, 3, dtype=torch.float64), None,
                        dict(padding=1), "conv3d")


def test_non_contiguous_grad_output():
    x = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    ops.conv3d(x, w, padding=1).sum().backward()  # grad_output is an expanded (stride-0) tensor
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.conv3d(x2, w2, padding=1).sum().backward()
    assert_close(x.grad, x2.grad, op="conv3d")
    assert_close(w.grad, w2.grad, op="conv3d")


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_string_padding(padding):
    x = torch.randn(2, 3, 6, 7, 8, dtype=torch.float64)
    for kernel, dilation in [((3, 3, 3), 1), ((4, 2, 3), (1, 2, 1))]:
        w = torch.randn(4, 3, *kernel, dtype=torch.float64)
        check_against_torch(ops.conv3d, F.conv3d, x, w, None, dict(padding=padding, dilation=dilation), "conv3d")


def test_unbatched_input():
    x, w = torch.randn(3, 5, 6, 7, dtype=torch.float64), torch.randn(4, 3, 3, 3, 3, dtype=torch.float64)
    assert_close(ops.conv3d(x, w, padding=1), F.conv3d(x, w, padding=1), op="conv3d")


@pytest.mark.parametrize("shape,weight_shape", [((0, 3, 4, 5, 6), (4, 3, 3, 3, 3)), ((0, 1, 4, 4, 4), (2, 1, 1, 1, 1))])
def test_empty_batch_like_torch(shape, weight_shape):
    x, w, b = operands(shape, weight_shape, weight_shape[0])
    out = check_against_torch(ops.conv3d, F.conv3d, x, w, b, dict(padding=1), "conv3d")
    assert out.shape[0] == 0
    torch.library.opcheck(torch.ops.medkern.conv3d.default,
                          (x.requires_grad_(), w.requires_grad_(), b, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1))


GRADCHECK_CASES = [
    (1, 2, 3, 4, 3, 3, (2, 3, 2), 1, 1, 1, 1),
    (1, 4, 4, 3, 4, 2, (3, 1, 2), (2, 1, 2), (1, 0, 1), (1, 1, 2), 2),
    (1, 1, 4, 4, 4, 2, (3, 3, 3), 1, 1, 1, 1),  # direct path
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: "x".join(map(str, c[:6])))
def test_gradcheck_float64(case):
    x, w, b = (t.requires_grad_() for t in make(case))
    kw = kwargs_of(case)
    assert torch.autograd.gradcheck(lambda *a: ops.conv3d(*a, **kw), (x, w, b))
    assert torch.autograd.gradcheck(lambda *a: ops.conv3d_relu(*a, **kw), (x, w, b))


def test_opcheck():
    samples = [
        (torch.randn(2, 3, 4, 5, 6), torch.randn(4, 3, 3, 3, 3), torch.randn(4), [1, 1, 1], [1, 1, 1], [1, 1, 1], 1),
        (torch.randn(2, 4, 5, 4, 3), torch.randn(6, 2, 3, 1, 2), None, [2, 1, 1], [0, 1, 1], [1, 1, 1], 2, True),
        (torch.randn(1, 1, 6, 6, 6), torch.randn(8, 1, 3, 3, 3), torch.randn(8), [1, 1, 1], [0, 0, 0], [2, 2, 2], 1),
    ]
    for x, w, b, *rest in samples:
        args = (x.requires_grad_(), w.requires_grad_(), None if b is None else b.requires_grad_(), *rest)
        torch.library.opcheck(torch.ops.medkern.conv3d.default, args)


def test_registered_op_takes_atens_arguments():
    x, w, b = operands((2, 3, 4, 5, 6), (4, 3, 3, 3, 3), 4)
    assert_close(torch.ops.medkern.conv3d(x, w, b, [1, 2, 1], [1, 0, 1], [1, 1, 1], 1),
                 torch.ops.aten.conv3d(x, w, b, [1, 2, 1], [1, 0, 1], [1, 1, 1], 1), op="conv3d")


def test_nn_module_matches_torch_and_keeps_state_dict():
    ref = torch.nn.Conv3d(3, 8, 3, stride=2, padding=1).double()
    mine = mnn.Conv3d(3, 8, 3, stride=2, padding=1).double()
    assert isinstance(mine, torch.nn.Conv3d)
    mine.load_state_dict(ref.state_dict())
    assert list(mine.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 3, 7, 9, 8, dtype=torch.float64)
    assert_close(mine(x), ref(x), op="conv3d")
    fused = mnn.Conv3d(3, 4, 3, padding="same", fuse_relu=True).double()
    assert_close(fused(x), F.relu(F.conv3d(x, fused.weight, fused.bias, padding="same")), op="conv3d")
    assert "fuse_relu=True" in repr(fused)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_nn_module_padding_modes(mode):
    ref = torch.nn.Conv3d(2, 4, 3, padding=1, padding_mode=mode).double()
    mine = mnn.Conv3d(2, 4, 3, padding=1, padding_mode=mode).double()
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(2, 2, 5, 6, 7, dtype=torch.float64)
    assert_close(mine(x), ref(x), op="conv3d")


def test_accelerate_swaps_conv3d():
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 2, 1))
    x = torch.randn(2, 1, 6, 7, 5)
    expected = model(x)
    medkern.accelerate(model)
    assert type(model[0]) is mnn.Conv3d and type(model[2]) is mnn.Conv3d
    assert model.medkern_report["kept"] == {}
    assert_close(model(x), expected, op="conv3d")


# ---- error paths: each asserts the exception type and that the message names the argument ----

def test_error_wrong_rank():
    with pytest.raises(ValueError, match="'input'"):
        ops.conv3d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3, 3))
    with pytest.raises(ValueError, match="'weight'"):
        ops.conv3d(torch.randn(1, 1, 5, 5, 5), torch.randn(1, 1, 3, 3))


def test_error_dtype():
    with pytest.raises(TypeError, match="'input'"):
        ops.conv3d(torch.ones(1, 1, 5, 5, 5, dtype=torch.int32), torch.ones(1, 1, 3, 3, 3, dtype=torch.int32))
    with pytest.raises(TypeError, match="'weight'"):
        ops.conv3d(torch.randn(1, 1, 5, 5, 5), torch.randn(1, 1, 3, 3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="'bias'"):
        ops.conv3d(torch.randn(1, 1, 5, 5, 5), torch.randn(2, 1, 3, 3, 3), torch.randn(2, dtype=torch.float64))


def test_error_device():
    with pytest.raises(ValueError, match="'weight'.*same device"):
        ops.conv3d(torch.randn(1, 1, 5, 5, 5), torch.randn(2, 1, 3, 3, 3, device="meta"))


def test_error_groups_and_channels():
    with pytest.raises(ValueError, match="'groups'"):
        ops.conv3d(torch.randn(1, 4, 5, 5, 5), torch.randn(3, 2, 3, 3, 3), groups=2)
    with pytest.raises(ValueError, match="'groups'"):
        ops.conv3d(torch.randn(1, 5, 5, 5, 5), torch.randn(4, 2, 3, 3, 3), groups=2)
    with pytest.raises(ValueError, match="'weight'.*input channels"):
        ops.conv3d(torch.randn(1, 3, 5, 5, 5), torch.randn(2, 2, 3, 3, 3))


def test_error_bias_shape():
    with pytest.raises(ValueError, match="'bias'"):
        ops.conv3d(torch.randn(1, 1, 5, 5, 5), torch.randn(2, 1, 3, 3, 3), torch.randn(3))


def test_error_parameters():
    x, w = torch.randn(1, 1, 5, 5, 5), torch.randn(2, 1, 3, 3, 3)
    with pytest.raises(ValueError, match="'stride'"):
        ops.conv3d(x, w, stride=(1, 0, 1))
    with pytest.raises(ValueError, match="'padding'"):
        ops.conv3d(x, w, padding=-1)
    with pytest.raises(ValueError, match="'dilation'"):
        ops.conv3d(x, w, dilation=0)
    with pytest.raises(ValueError, match="'stride'"):
        ops.conv3d(x, w, stride=(1, 1))
    with pytest.raises(ValueError, match="'padding'"):
        ops.conv3d(x, w, padding="full")
    with pytest.raises(ValueError, match="'padding'.*strided"):
        ops.conv3d(x, w, padding="same", stride=2)


def test_error_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match="'weight'.*larger than the padded 'input'"):
        ops.conv3d(torch.randn(1, 1, 2, 5, 5), torch.randn(2, 1, 3, 3, 3))


def test_error_backward_grad_output_shape_core():
    view = medkern._backend.view
    gy, w, gx = torch.randn(1, 2, 4, 4, 4), torch.randn(2, 1, 3, 3, 3), torch.empty(1, 1, 5, 5, 5)
    with pytest.raises(ValueError, match="'grad_output'"):
        medkern._C.conv3d_backward_input(view(gy), view(w), view(gx), [1, 1, 1], [0, 0, 0], [1, 1, 1], 1)


# ---- CUDA mirrors: against torch's CUDA conv3d and medkern's CPU kernels --------------------------

CUDA_CASES = CASES[:8]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CUDA_CASES, ids=lambda c: "x".join(map(str, c[:6])))
def test_cuda_matches_torch(case, dtype):
    x, w, b = make(case, dtype, device="cuda")
    with torch.backends.cudnn.flags(allow_tf32=False):
        check_against_torch(ops.conv3d, F.conv3d, x, w, b, kwargs_of(case), "conv3d")


@pytest.mark.cuda
@pytest.mark.parametrize("case", CUDA_CASES, ids=lambda c: "x".join(map(str, c[:6])))
def test_cuda_matches_medkern_cpu(case):
    x, w, b = make(case, torch.float64)
    on_cpu = ops.conv3d(x, w, b, **kwargs_of(case))
    on_gpu = ops.conv3d(x.cuda(), w.cuda(), b.cuda(), **kwargs_of(case))
    assert_close(on_gpu.cpu(), on_cpu, op="conv3d")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_reduced_precision_close_to_torch(dtype):
    x, w, b = make(CASES[1], torch.float64, device="cuda")
    reference = F.conv3d(x, w, b, padding=1)
    ours = ops.conv3d(x.to(dtype), w.to(dtype), b.to(dtype), padding=1).double()
    theirs = F.conv3d(x.to(dtype), w.to(dtype), b.to(dtype), padding=1).double()
    assert (ours - reference).abs().max() <= 4 * (theirs - reference).abs().max() + 1e-3


@pytest.mark.cuda
def test_cuda_gradcheck_and_opcheck():
    x, w, b = (t.requires_grad_() for t in make(GRADCHECK_CASES[1], device="cuda"))
    kw = kwargs_of(GRADCHECK_CASES[1])
    assert torch.autograd.gradcheck(lambda *a: ops.conv3d(*a, **kw), (x, w, b))
    torch.library.opcheck(torch.ops.medkern.conv3d.default, (x, w, b, [2, 1, 2], [1, 0, 1], [1, 1, 2], 2))
