"""What a CUDA build registers, checked without a GPU: every op family's register_<family> must
list its CUDA kernels in medkern.info()['cuda_ops'], or the Python ops would silently fall back
to torch on CUDA tensors. The registry checks skip on CPU-only builds; the dtype rules and the
eval-mode batch-norm contract hold on every build."""
from __future__ import annotations

import pytest
import torch

import medkern
import medkern.ops  # noqa: F401  (registers torch.ops.medkern)
from medkern import _backend

# The _C functions with a medkern::cuda:: kernel, named once in C++ (bindings.h, KernelOp); the
# *_output_shape helpers run on the host.
CUDA_KERNEL_OPS = set(_backend._C.KERNEL_OP_NAMES)


def test_kernel_op_names_are_module_functions_on_every_build():
    # the names Python's fallback checks accept are the _C functions that run a kernel
    names = _backend._C.KERNEL_OP_NAMES
    assert len(names) == len(set(names)), f"an op is named twice: {names}"
    assert all(callable(getattr(_backend._C, name, None)) for name in names), names


@pytest.fixture
def info():
    info = medkern.info()
    if not info["cuda_compiled"]:
        pytest.skip("CPU-only build: no CUDA kernels are registered")
    return info


def test_every_cuda_kernel_is_registered(info):
    listed = list(info["cuda_ops"])
    missing, unknown = sorted(CUDA_KERNEL_OPS - set(listed)), sorted(set(listed) - CUDA_KERNEL_OPS)
    assert not missing and not unknown, f"not registered: {missing}; not CUDA kernels: {unknown}"
    assert len(listed) == len(set(listed)), f"an op is registered twice: {listed}"


def test_python_sees_every_registered_kernel(info):
    assert all(_backend.has_cuda_kernel(name) for name in CUDA_KERNEL_OPS)


# ---- dtype rules of the bindings (checked before any kernel runs, so no GPU is needed) -----------
def _fake_cuda(t: torch.Tensor, dtype_code: int):
    # a view that claims to live on cuda:0; the bindings must reject it before dispatching
    return _backend._C.TensorView(t.data_ptr(), dtype_code, list(t.shape), list(t.stride()), 1, 0)


def test_cpu_views_take_float32_and_float64_only():
    x = torch.randn(2, 3).half()
    with pytest.raises(TypeError, match="'input' has dtype float16"):
        _backend._C.relu_forward(_backend.view(x), _backend.view(torch.empty_like(x)))


def test_cuda_views_still_reject_integer_dtypes():
    x = torch.zeros(2, 3, dtype=torch.int32)
    code = _backend.DTYPE_CODES["int32"]
    with pytest.raises(TypeError, match="'input' has dtype int32.*float16, bfloat16"):
        _backend._C.relu_forward(_fake_cuda(x, code), _fake_cuda(x, code))


def test_cuda_views_reject_mixed_dtype_conv_operands():
    x, w = torch.zeros(1, 2, 5, 5, dtype=torch.float16), torch.zeros(3, 2, 3, 3)
    out = torch.zeros(1, 3, 3, 3, dtype=torch.float16)
    with pytest.raises(TypeError, match="'weight' has dtype float32"):
        _backend._C.conv2d_forward(_fake_cuda(x, 2), _fake_cuda(w, 0), None, _fake_cuda(out, 2), [1, 1], [0, 0],
                                   [1, 1], 1)


def test_float32_batch_norm_params_only_with_low_precision_cuda_input():
    # float16 activations on CUDA may carry float32 weight/statistics; float64 ones may not
    x, w = torch.zeros(2, 3, 4, dtype=torch.float64), torch.zeros(3)
    out, stats = torch.zeros_like(x), torch.zeros(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="'weight' has dtype float32"):
        _backend._C.batch_norm_forward(_fake_cuda(x, 1), _fake_cuda(w, 0), None, None, None, _fake_cuda(out, 1),
                                       _fake_cuda(stats, 1), _fake_cuda(stats, 1), True, 0.1, 1e-5)


def test_eval_batch_norm_saves_the_running_statistics():
    # the contract both devices follow: eval mode saves running_mean and 1/sqrt(running_var + eps),
    # so one backward kernel serves training and eval
    x = torch.randn(4, 3, 5, 5)
    rm, rv = torch.randn(3), torch.rand(3) + 0.5
    _, save_mean, save_invstd = torch.ops.medkern.batch_norm(x, None, None, rm, rv, False, 0.1, 1e-3)
    torch.testing.assert_close(save_mean, rm)
    torch.testing.assert_close(save_invstd, torch.rsqrt(rv + 1e-3))
