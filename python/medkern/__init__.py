"""medkern: C++/CUDA-accelerated kernels, layers and pipelines for medical-image machine learning.

Public surface: ``medkern.ops`` (functional ops, also ``torch.ops.medkern.*``), ``medkern.nn``
(drop-in modules), ``accelerate(model)``, ``medkern.models``, ``medkern.train`` and the
``medkern`` command line. ``info()`` says what this build and machine provide.
"""
from __future__ import annotations

from . import _backend
from ._backend import _C

__version__: str = _C.build_info()["version"]


def info() -> dict:
    """Build and runtime facts: version, CUDA kernels compiled (architectures, ops), GPUs
    visible now, the SIMD level in use and the CPU thread count."""
    out = dict(_C.build_info())
    out["gpus"] = list(_C.visible_gpus())
    try:
        import torch
        out["torch_version"] = torch.__version__
        out["torch_cuda_usable"] = _backend.cuda_usable()
    except ImportError:  # the preprocessing path works without torch
        out["torch_version"] = None
        out["torch_cuda_usable"] = False
    return out


def set_num_threads(threads: int) -> None:
    """Threads used by medkern's CPU kernels (OpenMP)."""
    _C.set_num_threads(int(threads))


def get_num_threads() -> int:
    return int(_C.get_num_threads())


def __getattr__(name: str):
    # torch-dependent parts load on first use, so `import medkern` stays light for numpy users
    if name in ("ops", "nn", "models", "train", "io", "data", "transforms"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    if name == "accelerate":
        from .nn.accelerate import accelerate
        return accelerate
    raise AttributeError(f"module 'medkern' has no attribute '{name}'")


__all__ = ["__version__", "info", "set_num_threads", "get_num_threads", "accelerate",
           "ops", "nn", "models", "train", "io", "data", "transforms"]
