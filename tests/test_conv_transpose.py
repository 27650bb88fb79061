"""medkern conv_transpose2d / conv_transpose3d against torch.nn.functional's: values and gradients
over fixed and random shapes (odd sizes, strides, padding, output_padding, dilation, groups, the
output_padding >= stride case that dilation allows), non-contiguous operands, unbatched input,
N = 0; float64 gradcheck; opcheck; nn.ConvTranspose2d / 3d (output_size included) and
accelerate; one test per argument error; and CUDA mirrors (marked `cuda`, skipped without a GPU).
The ops run the convolution's kernels with the roles swapped: these tests are the check that the
adjoint is exact."""
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

OPS = {2: (ops.conv_transpose2d, F.conv_transpose2d), 3: (ops.conv_transpose3d, F.conv_transpose3d)}

# (input shape, C_out, kernel, stride, padding, output_padding, groups, dilation)
CASES = [
    ((2, 8, 3, 4, 5), 4, (2, 2, 2), 2, 0, 0, 1, 1),                  # U-Net up-convolution
    ((2, 4, 3, 4, 3), 6, (3, 3, 3), 2, 1, 1, 2, 1),                  # grouped, output_padding
    ((1, 3, 4, 3, 5), 2, (3, 2, 3), (2, 1, 3), (1, 0, 1), (1, 0, 2), 1, (1, 2, 1)),  # asymmetric everything
    ((1, 2, 3, 3, 3), 3, (3, 3, 3), 1, 0, 1, 1, 2),                  # output_padding >= stride (< dilation)
    ((2, 6, 3, 3, 4), 6, (1, 1, 1), 1, 0, 0, 3, 1),                  # 1x1x1 grouped
    ((1, 4, 2, 3, 2), 4, (3, 3, 3), 2, 1, 0, 4, 1),                  # depthwise
    ((2, 8, 5, 6), 4, (2, 2), 2, 0, 0, 1, 1),                        # 2-D
    ((2, 4, 5, 6), 6, (3, 3), (2, 1), 1, (1, 0), 2, (1, 2)),         # 2-D grouped, dilated
    ((1, 64, 7, 6), 64, (3, 3), 1, 1, 0, 1, 1),                      # 2-D 3x3 stride 1 (the Winograd-shaped case)
    ((1, 1, 1, 1), 1, (1, 1), 1, 0, 0, 1, 1),                        # all size 1
]


def make(case, dtype=torch.float64, bias=True, device="cpu"):
    shape, c_out, kernel, *_, groups, _ = case
    c_in = shape[1]
    fan_in = c_in // groups * int(torch.tensor(kernel).prod())
    return operands(shape, (c_in, c_out // groups, *kernel), c_out if bias else None, dtype, device, fan_in)


def kwargs_of(case):
    _, _, _, stride, padding, output_padding, groups, dilation = case
    return dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)


def dims_of(case):
    return len(case[0]) - 2


def random_case(rng: random.Random, dims: int):
    """A random valid transposed convolution, output_padding below stride or dilation."""
    while True:
        groups = rng.choice([1, 1, 2])
        c_in, c_out = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
        kernel = tuple(rng.randint(1, 3) for _ in range(dims))
        stride = tuple(rng.randint(1, 3) for _ in range(dims))
        dilation = tuple(rng.randint(1, 2) for _ in range(dims))
        padding = tuple(rng.randint(0, 2) for _ in range(dims))
        output_padding = tuple(rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation))
        size = tuple(rng.randint(1, 6) for _ in range(dims))
        out = [(i - 1) * s - 2 * p + d * (k - 1) + o + 1
               for i, s, p, d, k, o in zip(size, stride, padding, dilation, kernel, output_padding)]
        if min(out) >= 1:
            return ((rng.randint(1, 3), c_in, *size), c_out, kernel, stride, padding, output_padding, groups, dilation)


RANDOM_CASES = [random_case(random.Random(seed), 2 + seed % 2) for seed in range(14)]


def check(case, dtype=torch.float64, bias=True, device="cpu"):
    ours, theirs = OPS[dims_of(case)]
    x, w, b = make(case, dtype, bias, device)
    return check_against_torch(ours, theirs, x, w, b, kwargs_of(case), "conv_transpose")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_matches_torch(case, dtype):
    check(case, dtype)


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: "-".join(map(str, c)))
def test_random_shapes_match_torch(case):
    check(case, bias=case[0][0] != 2)


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_every_simd_level(level):
    with simd_level(level):
        check(CASES[0], torch.float32)
        check(CASES[1], torch.float32)


def test_non_contiguous_operands():
    x = torch.randn(4, 10, 3, 4, 10, dtype=torch.float64)[::2, 1:9, :, :, ::2]
    w = (torch.randn(8, 3, 2, 3, 2, dtype=torch.float64) / 8).transpose(2, 4)
    b = torch.randn(6, dtype=torch.float64)[::2]
    assert not x.is_contiguous() and not w.is_contiguous() and not b.is_contiguous()
    check_against_torch(ops.conv_transpose3d, F.conv_transpose3d, x, w, b, dict(stride=2, padding=1),
                        "conv_transpose")
    x2 = torch.randn(2, 6, 5, 7, dtype=torch.float64).to(memory_format=torch.channels_last)
    check_against_torch(ops.conv_transpose2d, F.conv_transpose2d, x2, torch.randn(6, 4, 3, 3, dtype=torch.float64),
                        None, dict(stride=2), "conv_transpose")


def test_unbatched_input():
    x, w = torch.randn(3, 4, 5, 6, dtype=torch.float64), torch.randn(3, 2, 2, 2, 2, dtype=torch.float64)
    assert_close(ops.conv_transpose3d(x, w, stride=2), F.conv_transpose3d(x, w, stride=2), op="conv_transpose")
    x2 = torch.randn(3, 5, 6, dtype=torch.float64)
    assert_close(ops.conv_transpose2d(x2, w[..., 0]), F.conv_transpose2d(x2, w[..., 0]), op="conv_transpose")


@pytest.mark.parametrize("dims", [2, 3])
def test_empty_batch_like_torch(dims):
    ours, theirs = OPS[dims]
    x, w, b = operands((0, 4, *[3] * dims), (4, 2, *[2] * dims), 2)
    out = check_against_torch(ours, theirs, x, w, b, dict(stride=2), "conv_transpose")
    assert out.shape[0] == 0
    op = getattr(torch.ops.medkern, f"conv_transpose{dims}d").default
    torch.library.opcheck(op, (x.requires_grad_(), w.requires_grad_(), b, [2] * dims, [0] * dims, [0] * dims, 1,
                               [1] * dims))


GRADCHECK_CASES = [
    ((1, 2, 2, 3, 2), 3, (2, 3, 2), 2, (0, 1, 0), (1, 0, 1), 1, 1),
    ((1, 4, 2, 2, 3), 2, (3, 1, 2), (1, 2, 2), 0, (0, 1, 1), 2, (2, 1, 1)),
    ((1, 3, 3, 4), 2, (3, 3), (2, 1), 1, (1, 0), 1, (1, 2)),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_gradcheck_float64(case):
    ours, _ = OPS[dims_of(case)]
    x, w, b = (t.requires_grad_() for t in make(case))
    kw = kwargs_of(case)
    assert torch.autograd.gradcheck(lambda *a: ours(*a, **kw), (x, w, b))


@pytest.mark.parametrize("case", CASES[:4] + CASES[6:8], ids=lambda c: "x".join(map(str, c[0])))
def test_opcheck(case):
    dims = dims_of(case)
    x, w, b = (t.float().requires_grad_() for t in make(case))
    kw = kwargs_of(case)
    listed = [kw[k] if isinstance(kw[k], (list, tuple)) else [kw[k]] * dims
              for k in ("stride", "padding", "output_padding")]
    dilation = kw["dilation"] if isinstance(kw["dilation"], (list, tuple)) else [kw["dilation"]] * dims
    op = getattr(torch.ops.medkern, f"conv_transpose{dims}d").default
    torch.library.opcheck(op, (x, w, b, *map(list, listed), kw["groups"], list(dilation)))


def test_registered_op_takes_atens_arguments():
    x, w, b = operands((2, 4, 3, 4, 5), (4, 3, 3, 3, 3), 3)
    args = ([2, 1, 2], [1, 1, 0], [1, 0, 1], 1, [1, 1, 1])
    assert_close(torch.ops.medkern.conv_transpose3d(x, w, b, *args),
                 torch.ops.aten.conv_transpose3d.input(x, w, b, *args), op="conv_transpose")


@pytest.mark.parametrize("dims", [2, 3])
def test_nn_modules_match_torch_with_output_size(dims):
    torch_cls = torch.nn.ConvTranspose2d if dims == 2 else torch.nn.ConvTranspose3d
    mine_cls = mnn.ConvTranspose2d if dims == 2 else mnn.ConvTranspose3d
    ref = torch_cls(4, 6, 3, stride=2, padding=1, groups=2).double()
    mine = mine_cls(4, 6, 3, stride=2, padding=1, groups=2).double()
    assert isinstance(mine, torch_cls)
    mine.load_state_dict(ref.state_dict())
    assert list(mine.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 4, *[5] * dims, dtype=torch.float64)
    assert_close(mine(x), ref(x), op="conv_transpose")
    size = [10] * dims  # output_padding 1 on every axis, chosen from output_size as torch does
    out = mine(x, output_size=size)
    assert list(out.shape[2:]) == size
    assert_close(out, ref(x, output_size=size), op="conv_transpose")
    with pytest.raises(ValueError):
        mine(x, output_size=[20] * dims)


def test_accelerate_swaps_transposed_convolutions():
    model = torch.nn.Sequential(torch.nn.ConvTranspose3d(4, 2, 2, stride=2), torch.nn.ReLU(),
                                torch.nn.Conv3d(2, 2, 1), torch.nn.ConvTranspose2d(2, 2, 1))
    x = torch.randn(2, 4, 3, 4, 5)
    expected = model[:3](x)
    medkern.accelerate(model)
    assert type(model[0]) is mnn.ConvTranspose3d and type(model[3]) is mnn.ConvTranspose2d
    assert model.medkern_report["kept"] == {}
    assert_close(model[:3](x), expected, op="conv_transpose")


# ---- error paths: each asserts the exception type and that the message names the argument ----

def test_error_wrong_rank():
    with pytest.raises(ValueError, match="'input'"):
        ops.conv_transpose3d(torch.randn(1, 2, 5, 5), torch.randn(2, 1, 2, 2, 2))
    with pytest.raises(ValueError, match="'weight'"):
        ops.conv_transpose2d(torch.randn(1, 2, 5, 5), torch.randn(2, 1, 2, 2, 2))


def test_error_dtype_and_device():
    with pytest.raises(TypeError, match="'input'"):
        ops.conv_transpose3d(torch.ones(1, 2, 3, 3, 3, dtype=torch.int64), torch.ones(2, 1, 2, 2, 2,
                                                                                        dtype=torch.int64))
    with pytest.raises(TypeError, match="'weight'"):
        ops.conv_transpose3d(torch.randn(1, 2, 3, 3, 3), torch.randn(2, 1, 2, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="'bias'.*same device"):
        ops.conv_transpose3d(torch.randn(1, 2, 3, 3, 3), torch.randn(2, 1, 2, 2, 2), torch.randn(1, device="meta"))


def test_error_channels_and_groups():
    with pytest.raises(ValueError, match="'weight'.*input channels"):
        ops.conv_transpose3d(torch.randn(1, 3, 3, 3, 3), torch.randn(2, 1, 2, 2, 2))
    with pytest.raises(ValueError, match="'groups'"):
        ops.conv_transpose3d(torch.randn(1, 3, 3, 3, 3), torch.randn(3, 1, 2, 2, 2), groups=2)
    with pytest.raises(ValueError, match="'bias'"):
        ops.conv_transpose3d(torch.randn(1, 2, 3, 3, 3), torch.randn(2, 1, 2, 2, 2), torch.randn(3))


def test_error_output_padding_not_below_stride_or_dilation():
    x, w = torch.randn(1, 2, 3, 3, 3), torch.randn(2, 1, 2, 2, 2)
    with pytest.raises(ValueError, match="'output_padding'"):
        ops.conv_transpose3d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="'output_padding'"):
        ops.conv_transpose3d(x, w, stride=1, output_padding=(0, 1, 0))
    with pytest.raises(ValueError, match="'output_padding'"):
        ops.conv_transpose2d(x[:, :, 0], w[..., 0], stride=2, output_padding=(1, 1, 1))


def test_error_parameters():
    x, w = torch.randn(1, 2, 3, 3, 3), torch.randn(2, 1, 2, 2, 2)
    with pytest.raises(ValueError, match="'stride'"):
        ops.conv_transpose3d(x, w, stride=0)
    with pytest.raises(ValueError, match="'padding'"):
        ops.conv_transpose3d(x, w, padding=-1)
    with pytest.raises(ValueError, match="'dilation'"):
        ops.conv_transpose3d(x, w, dilation=0)
    with pytest.raises(ValueError, match="'padding'"):  # the output would be empty
        ops.conv_transpose3d(x, w, padding=3)


# ---- CUDA mirrors --------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_cuda_matches_torch(case, dtype):
    with torch.backends.cudnn.flags(allow_tf32=False):
        check(case, dtype, device="cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_cuda_matches_medkern_cpu(case):
    ours, _ = OPS[dims_of(case)]
    x, w, b = make(case)
    on_cpu = ours(x, w, b, **kwargs_of(case))
    on_gpu = ours(x.cuda(), w.cuda(), b.cuda(), **kwargs_of(case))
    assert_close(on_gpu.cpu(), on_cpu, op="conv_transpose")


@pytest.mark.cuda
def test_cuda_tf32_path_close_to_torch():
    """2-D float32 with TF32 allowed takes the tensor-core path (bias added in its epilogue): it equals
    float64 on the TF32-rounded operands within float32's error (cuDNN may run so small a problem in
    exact float32, so its own error is no bound)."""
    x, w, b = make(CASES[8], torch.float64, device="cuda")
    rounded = [round_tf32(t.float()).double() for t in (x, w)]
    reference = F.conv_transpose2d(*rounded, b, padding=1)
    with torch.backends.cudnn.flags(allow_tf32=True):
        ours = ops.conv_transpose2d(x.float(), w.float(), b.float(), padding=1).double()
    scale = reference.abs().max().item()
    assert (ours - reference).abs().max() <= 5e-5 * max(1.0, scale)  # one missing term would be ~1e-3


def round_tf32(t):
    """float32 -> float32 with TF32's 10 mantissa bits, to nearest with ties away from zero (PTX's
    cvt.rna.tf32.f32, which the TF32 path applies to each operand once)."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & -0x2000).view(torch.float32)


@pytest.mark.cuda
def test_cuda_gradcheck():
    for case in GRADCHECK_CASES:
        ours, _ = OPS[dims_of(case)]
        x, w, b = (t.requires_grad_() for t in make(case, device="cuda"))
        kw = kwargs_of(case)
        assert torch.autograd.gradcheck(lambda *a: ours(*a, **kw), (x, w, b))
