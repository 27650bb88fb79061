"""cupy arrays through the same bindings as torch tensors (zero-copy views, cupy's current
stream): the CNN kernels against torch's CUDA ops on the same data, and the preprocessing
Pipeline against its CPU result. Marked `cuda` and skipped without a GPU or without cupy.

Tolerances: float32 with TF32 off as in tests/tolerances.py (rtol 1e-4, atol 1e-4 on O(1)
data); the Pipeline as in tests/test_pipeline.py's CUDA test (rtol 1e-4, atol 1e-3).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medkern._backend import _C, stream_of, view

pytestmark = pytest.mark.cuda


@pytest.fixture
def cupy():
    return pytest.importorskip("cupy")


def test_view_of_a_cupy_array_keeps_pointer_shape_strides_and_device(cupy):
    a = cupy.arange(24, dtype=cupy.float32).reshape(2, 3, 4)[:, ::2]
    v = view(a, "input")
    assert list(v.shape) == [2, 2, 4] and list(v.strides) == [12, 8, 1] and v.dtype == "float32"
    assert v.device.startswith("cuda")
    assert stream_of(a) == cupy.cuda.get_current_stream().ptr


def test_conv2d_relu_pooling_on_cupy_match_torch(cupy):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 17, 19)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    xc, wc, bc = cupy.asarray(x), cupy.asarray(w), cupy.asarray(b)
    shape = _C.conv_output_shape(list(x.shape), list(w.shape), [1, 1], [1, 1], [1, 1], 1)
    out = cupy.empty(tuple(shape), dtype=cupy.float32)
    _C.conv2d_forward(view(xc, "input"), view(wc, "weight"), view(bc, "bias"), view(out, "output"),
                      [1, 1], [1, 1], [1, 1], 1, True, False, stream_of(xc))
    ref = F.relu(F.conv2d(torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda(), torch.from_numpy(b).cuda(),
                          padding=1))
    torch.testing.assert_close(torch.as_tensor(out, device="cuda"), ref, rtol=1e-4, atol=1e-4)
    y = cupy.empty_like(out)
    shifted = out - 0.5  # a named array: a view only borrows the pointer
    _C.relu_forward(view(shifted, "input"), view(y, "output"), stream_of(out))
    torch.testing.assert_close(torch.as_tensor(y, device="cuda"), F.relu(ref - 0.5), rtol=1e-5, atol=1e-6)


def test_pipeline_on_cupy_matches_cpu(cupy):
    import medkern.transforms as T
    rng = np.random.default_rng(1)
    x = (rng.normal(40, 300, (3, 1, 40, 44)) + 1024).astype(np.int16)
    label = rng.integers(0, 3, (3, 1, 40, 44)).astype(np.uint8)
    p = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomAffine(10), T.ElasticDeform(5, 2.0),
                    T.GaussianNoise(0.02), T.PercentileClip(1, 99), T.ZScore()], seed=2)
    cpu, cpu_label = p(x, label=label)
    gpu, gpu_label = p(cupy.asarray(x), label=cupy.asarray(label))
    assert isinstance(gpu, cupy.ndarray) and gpu.dtype == cupy.float32
    np.testing.assert_allclose(cupy.asnumpy(gpu), cpu, rtol=1e-4, atol=1e-3)
    assert np.mean(cupy.asnumpy(gpu_label) != cpu_label) <= 2e-3
