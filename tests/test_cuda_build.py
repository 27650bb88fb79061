"""What a CUDA build registers, checked without a GPU: every op family's register_<family> must
list its CUDA kernels in medkern.info()['cuda_ops'], or the Python ops would silently fall back
to torch on CUDA tensors. Skipped on CPU-only builds."""
from __future__ import annotations

import pytest

import medkern
from medkern import _backend

# The _C functions with a medkern::cuda:: kernel (the *_output_shape helpers run on the host).
CUDA_KERNEL_OPS = {
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward_bias",
    "linear_forward", "linear_backward_input", "linear_backward_weight", "linear_backward_bias",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "batch_norm_forward", "batch_norm_backward", "relu_forward", "relu_backward",
}


@pytest.fixture
def info():
    info = medkern.info()
    if not info["cuda_compiled"]:
        pytest.skip("CPU-only build: no CUDA kernels are registered")
    return info


def test_every_cuda_kernel_is_registered(info):
    listed = list(info["cuda_ops"])
    assert set(listed) == CUDA_KERNEL_OPS, (sorted(CUDA_KERNEL_OPS - set(listed)), sorted(set(listed) - CUDA_KERNEL_OPS))
    assert len(listed) == len(set(listed)), f"an op is registered twice: {listed}"


def test_registered_names_are_module_functions(info):
    # a typo in add_cuda_ops would list a kernel no Python op asks for
    assert all(hasattr(_backend._C, name) for name in info["cuda_ops"])
    assert all(_backend.has_cuda_kernel(name) for name in CUDA_KERNEL_OPS)
