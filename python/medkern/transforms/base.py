"""Transform protocol shared by the intensity and geometry transforms, the Philox parameter
draws and the array adapters (numpy / torch / cupy), kept apart from the planner so each
transform's reference path reads as plain numpy.

Every transform runs alone through ``transform(batch, ...)``: the unfused reference path, in
float64 numpy, simple and obviously correct. ``Pipeline`` runs the same transforms fused.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .._backend import _C

PADDING_CODES = {"zeros": 0, "border": 1, "reflect": 2}
MODE_CODES = {"nearest": 0, "linear": 1}
# scipy.ndimage names of the same extensions of the input (see csrc/common/geometry_math.h)
SCIPY_PADDING = {"zeros": "grid-constant", "border": "nearest", "reflect": "reflect"}
INPUT_DTYPES = ("int16", "uint8", "uint16", "float32")


def draw_uniform(seed: int, indices: np.ndarray, stream: int, count: int) -> np.ndarray:
    """(N, count) uniforms in [0, 1) from Philox keyed by (seed, sample index, stream)."""
    if count == 0:
        return np.zeros((len(indices), 0))
    return _C.philox_uniform(int(seed), [int(i) for i in indices], int(stream), int(count))


def check_positive(value: float, name: str) -> float:
    if not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"argument '{name}' must be a finite number > 0, got {value!r}")
    return float(value)


def check_padding(padding: str) -> str:
    if padding not in PADDING_CODES:
        raise ValueError(f"argument 'padding' must be one of {sorted(PADDING_CODES)}, got {padding!r}")
    return padding


def check_mode(mode: str) -> str:
    if mode not in MODE_CODES:
        raise ValueError(f"argument 'mode' must be 'linear' or 'nearest', got {mode!r}")
    return mode


def per_axis(value: Any, dims: int, name: str, cast=float) -> tuple:
    """A scalar broadcast to every spatial axis, or a sequence with one value per axis."""
    if isinstance(value, numbers.Number):
        return (cast(value),) * dims
    values = tuple(cast(v) for v in value)
    if len(values) != dims:
        raise ValueError(f"argument '{name}' needs {dims} values (one per spatial axis), got {len(values)}")
    return values


def array_kind(batch: Any) -> str:
    """'numpy', 'torch' or 'cupy' (raises TypeError naming 'batch' otherwise)."""
    module = type(batch).__module__.partition(".")[0]
    if module in ("numpy", "torch", "cupy"):
        return module
    raise TypeError(f"argument 'batch' must be a numpy.ndarray, torch.Tensor or cupy.ndarray, "
                    f"got {type(batch).__name__}")


def check_batch(batch: Any) -> int:
    """Validates rank, dtype and size of a (N, C, H, W) / (N, C, D, H, W) batch; returns dims."""
    array_kind(batch)
    ndim = batch.ndim
    if ndim not in (4, 5):
        raise ValueError(f"argument 'batch' must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), "
                         f"got shape {tuple(batch.shape)}")
    dtype = str(batch.dtype).rpartition(".")[2]
    if dtype not in INPUT_DTYPES:
        raise TypeError(f"argument 'batch' has dtype {dtype}; expected one of: {', '.join(INPUT_DTYPES)}")
    if batch.shape[0] == 0:
        raise ValueError(f"argument 'batch' is an empty batch (shape {tuple(batch.shape)})")
    if any(s == 0 for s in batch.shape[1:]):
        raise ValueError(f"argument 'batch' has an empty axis (shape {tuple(batch.shape)})")
    return ndim - 2


def check_spacing(spacing: Any, dims: int) -> np.ndarray | None:
    if spacing is None:
        return None
    sp = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if sp.size != dims:
        raise ValueError(f"argument 'spacing' needs {dims} values (one per spatial axis), got {sp.size}")
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"argument 'spacing' must be finite and > 0 on every axis, got {tuple(sp)}")
    return sp


def to_numpy(batch: Any) -> np.ndarray:
    kind = array_kind(batch)
    if kind == "torch":
        return batch.detach().cpu().numpy()
    if kind == "cupy":
        return batch.get()
    return np.asarray(batch)


def like_input(result: np.ndarray, batch: Any) -> Any:
    """float32 result in the caller's array kind and device."""
    result = np.ascontiguousarray(result, dtype=np.float32)
    kind = array_kind(batch)
    if kind == "torch":
        import torch
        return torch.from_numpy(result).to(batch.device)
    if kind == "cupy":
        import cupy
        return cupy.asarray(result)
    return result


class Transform:
    """Base class. ``kind`` says how the planner fuses it: 'pointwise' (intensity op on each
    value), 'post' (needs the output element: noise, bias field), 'geometry' (one affine matrix
    per sample, plus an elastic field) or 'normalize' (needs image statistics: a second pass)."""

    kind = "pointwise"
    draws = 0  # Philox draws per sample (random transforms)

    def __call__(self, batch: Any, spacing: Any = None, *, seed: int = 0, indices: Sequence[int] | None = None,
                 stream: int = 0, mask: Any = None) -> Any:
        """The unfused reference: this transform alone, in float64 numpy; returns float32 in the
        caller's array kind. ``seed``/``indices``/``stream`` key the Philox draws as a Pipeline
        would (stream = the transform's position in the pipeline)."""
        dims = check_batch(batch)
        sp = check_spacing(spacing, dims)
        x = to_numpy(batch).astype(np.float64)
        idx = np.arange(x.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
        out, _ = self.reference(x, sp, seed, idx, stream, mask=None if mask is None else to_numpy(mask))
        return like_input(out, batch)

    def reference(self, x: np.ndarray, spacing, seed, indices, stream, mask=None):
        """float64 (N, C, *spatial) -> (float64 result, spacing after this transform)."""
        raise NotImplementedError

    def sample_ops(self, u: np.ndarray, position: int, dims: int):
        """(intensity ops of one sample given its draws ``u``, parameters to report or None);
        deterministic transforms return their fixed ``ops()``."""
        return self.ops(), None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
