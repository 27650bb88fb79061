"""Loads the compiled core ``medkern._C`` and adapts arrays to it.

Every array crosses into C++ as a ``_C.TensorView`` (pointer, dtype, shape, strides in
elements, device), built here without copying. torch is imported lazily so the
preprocessing path serves numpy users who never import it.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any

from . import _C

__all__ = [
    "_C", "DTYPE_CODES", "view", "optional_view", "stream_of", "has_cuda_kernel", "warn_fallback_once",
    "needs_torch_fallback",
    "cuda_usable", "choose_device",
]

# numpy's dtype name -> medkern::DType code, exported by the compiled core (defined once, in C++).
DTYPE_CODES = _C.DTYPE_CODES


_torch_codes: dict = {}  # torch.dtype -> code, filled on first use (views are built on every op call)
_module_of: dict = {}    # array type -> its top-level module name ("torch", "numpy", "cupy", ...)


def _torch_dtype_name(dtype: Any) -> str:
    return str(dtype).rpartition(".")[2]


def view(array: Any, name: str = "input") -> "_C.TensorView":
    """A zero-copy TensorView of a torch tensor, numpy array or cupy array.

    ``name`` is the argument's name, used in the error raised for unsupported arrays.
    """
    cls = type(array)
    module = _module_of.get(cls)
    if module is None:
        module = _module_of.setdefault(cls, cls.__module__.partition(".")[0])
    if module == "torch":
        code = _torch_codes.get(array.dtype)
        if code is None:  # first sight of this dtype: look it up by name once
            code = DTYPE_CODES.get(_torch_dtype_name(array.dtype))
            if code is not None:
                _torch_codes[array.dtype] = code
        if code is None:
            raise TypeError(f"argument '{name}' has unsupported dtype {array.dtype}")
        if array.is_cuda:  # (attribute checks: cheaper than building a torch.device on every call)
            return _C.TensorView(array.data_ptr(), code, array.shape, array.stride(), 1, array.get_device())
        if not array.is_cpu:
            raise ValueError(f"argument '{name}' is on device '{array.device}'; medkern supports cpu and cuda")
        return _C.TensorView(array.data_ptr(), code, array.shape, array.stride(), 0, 0)
    if module in ("numpy", "cupy"):
        code = DTYPE_CODES.get(str(array.dtype))
        if code is None:
            raise TypeError(f"argument '{name}' has unsupported dtype {array.dtype}")
        item = array.itemsize
        if any(s % item for s in array.strides):
            raise ValueError(f"argument '{name}' has strides {array.strides} that are not whole elements")
        strides = [s // item for s in array.strides]
        if module == "numpy":
            return _C.TensorView(array.ctypes.data, code, array.shape, strides, 0, 0)
        return _C.TensorView(array.data.ptr, code, array.shape, strides, 1, array.device.id)
    raise TypeError(f"argument '{name}' must be a torch.Tensor, numpy.ndarray or cupy.ndarray, "
                    f"got {type(array).__name__}")


def optional_view(array: Any, name: str) -> "_C.TensorView | None":
    return None if array is None else view(array, name)


def stream_of(array: Any) -> int:
    """The caller's current CUDA stream for this array's device (0 for CPU arrays)."""
    module = type(array).__module__.partition(".")[0]
    if module == "torch":
        if array.device.type != "cuda":
            return 0
        import torch
        return torch.cuda.current_stream(array.device).cuda_stream
    if module == "cupy":
        import cupy
        return cupy.cuda.get_current_stream().ptr
    return 0


@functools.lru_cache(maxsize=None)
def _cuda_op_names() -> frozenset:
    return frozenset(_C.build_info()["cuda_ops"])


_KERNEL_OPS = frozenset(_C.KERNEL_OP_NAMES)


def has_cuda_kernel(op: str) -> bool:
    """Whether this build has medkern's own CUDA kernel for ``op`` (e.g. 'conv2d_forward').

    Raises ValueError for a name not in ``_C.KERNEL_OP_NAMES``, so a typo cannot pass for an
    op without a kernel and silently fall back to torch."""
    if op not in _KERNEL_OPS:
        raise ValueError(f"argument 'op' must be one of _C.KERNEL_OP_NAMES {_C.KERNEL_OP_NAMES}, got {op!r}")
    return op in _cuda_op_names()


_warned: set = set()


def warn_fallback_once(op: str) -> None:
    """One warning per op when a CUDA tensor falls back to torch's own kernel."""
    if op not in _warned:
        _warned.add(op)
        warnings.warn(f"medkern has no CUDA kernel for {op} in this build; it falls back to torch's own "
                      f"CUDA kernel (warned once)", UserWarning, stacklevel=3)


def needs_torch_fallback(array: Any, op: str) -> bool:
    """True (after a one-time warning) when ``array`` is on a GPU and this build has no CUDA
    kernel for ``op``: the caller then runs torch's own kernel instead. ``op`` must be one of
    ``_C.KERNEL_OP_NAMES`` (ValueError otherwise, for CPU arrays too)."""
    if has_cuda_kernel(op) or getattr(array, "device", None) is None or array.device.type != "cuda":
        return False
    warn_fallback_once(op)
    return True


def cuda_usable() -> bool:
    """True when torch can run work on a GPU now (a driver, a device and a CUDA build of torch)."""
    try:
        import torch
        if not torch.cuda.is_available():
            return False
        torch.zeros(1, device="cuda")
        return True
    except Exception:  # a broken driver or a CPU-only torch
        return False


def choose_device(requested: str = "auto") -> str:
    """Map ``auto|cpu|cuda[:N]`` to a device string, falling back to the CPU for ``auto``."""
    if requested == "auto":
        return "cuda" if cuda_usable() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not cuda_usable():
            raise RuntimeError(f"device '{requested}' was asked for but no usable GPU is present "
                               f"(use --device auto to fall back to the CPU)")
        return requested
    raise ValueError(f"argument 'device' must be 'auto', 'cpu' or 'cuda[:N]', got '{requested}'")
