"""The compiled core's plumbing: build info, array views and their argument errors."""
import numpy as np
import pytest
import torch

import medkern
from medkern import _backend


def test_info_reports_build_and_machine():
    info = medkern.info()
    for key in ("version", "cuda_compiled", "cuda_architectures", "cuda_ops", "gpus", "simd_level", "threads"):
        assert key in info
    assert info["version"] == medkern.__version__
    assert info["simd_level"] in ("scalar", "avx2", "avx512")
    assert info["threads"] >= 1


def test_view_of_torch_tensor_keeps_layout_without_copy():
    t = torch.randn(4, 6, dtype=torch.float64).t()  # non-contiguous
    v = _backend.view(t)
    assert v.shape == [6, 4] and v.strides == [1, 6] and v.dtype == "float64" and v.device == "cpu"


def test_view_of_numpy_array_uses_element_strides():
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)[:, ::2]
    v = _backend.view(a)
    assert v.shape == [2, 2, 4] and v.strides == [12, 8, 1] and v.dtype == "int16"


def test_view_rejects_unsupported_dtype_naming_argument():
    with pytest.raises(TypeError, match="'weight'"):
        _backend.view(torch.zeros(2, dtype=torch.complex64), "weight")


def test_view_rejects_non_array_naming_argument():
    with pytest.raises(TypeError, match="'input'"):
        _backend.view([1, 2, 3], "input")


def test_tensor_view_rejects_bad_shapes():
    with pytest.raises(ValueError, match="negative size"):
        medkern._C.TensorView(0, 0, [2, -1], [1, 1])
    with pytest.raises(ValueError, match="strides"):
        medkern._C.TensorView(0, 0, [2, 3], [1])
    with pytest.raises(ValueError, match="more than 8"):
        medkern._C.TensorView(0, 0, [1] * 9, [1] * 9)


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="'threads'"):
        medkern.set_num_threads(0)
    n = medkern.get_num_threads()
    medkern.set_num_threads(1)
    assert medkern.get_num_threads() == 1
    medkern.set_num_threads(n)


def test_choose_device_auto_falls_back_to_cpu_without_gpu():
    expected = "cuda" if _backend.cuda_usable() else "cpu"
    assert _backend.choose_device("auto") == expected
    with pytest.raises(ValueError, match="'device'"):
        _backend.choose_device("tpu")


def test_needs_torch_fallback_only_for_gpu_arrays_without_a_kernel(monkeypatch):
    import types
    import warnings
    monkeypatch.setattr(_backend, "_warned", set())
    monkeypatch.setattr(_backend, "_cuda_op_names", lambda: frozenset())  # a build without CUDA kernels
    fake_gpu = types.SimpleNamespace(device=types.SimpleNamespace(type="cuda"))
    assert not _backend.needs_torch_fallback(torch.ones(2), "relu_forward")  # CPU: never
    with pytest.warns(UserWarning, match="no CUDA kernel for relu_forward"):
        assert _backend.needs_torch_fallback(fake_gpu, "relu_forward")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert _backend.needs_torch_fallback(fake_gpu, "relu_forward")
    monkeypatch.setattr(_backend, "_cuda_op_names", lambda: frozenset({"relu_forward"}))
    assert not _backend.needs_torch_fallback(fake_gpu, "relu_forward")


@pytest.mark.parametrize("check", [_backend.needs_torch_fallback, lambda array, op: _backend.has_cuda_kernel(op)])
def test_an_unknown_op_name_is_an_error_not_a_silent_fallback(check):
    # a typo ('conv2d_foward') would otherwise read as "no kernel" and fall back to torch unnoticed
    with pytest.raises(ValueError, match="'op'.*'conv2d_foward'"):
        check(torch.ones(2), "conv2d_foward")
