"""Transform protocol shared by the intensity, geometry and filter transforms: what each one
can do is declared in its type (``kind``, ``draws``, ``follows_labels``, ``is_elastic``), so
the planner dispatches on declarations, never by probing attributes. Also the Philox parameter
draws and the argument checks, kept apart from the planner so each transform's reference path
reads as plain numpy.

``transform(batch, ...)`` runs the transform alone through the fused kernel (a one-transform
Pipeline); ``transform.reference(...)`` is the unfused float64 numpy path, simple and obviously
correct, that the tests compare against.
"""
from __future__ import annotations

import enum
import numbers
from typing import Any, Sequence

import numpy as np

from .._backend import _C

PADDING_CODES = _C.PADDING_CODES  # medkern::Padding, defined once in C++
MODE_CODES = _C.INTERPOLATION_CODES  # medkern::Interpolation
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


class Kind(str, enum.Enum):
    """Where the planner (pipeline.py) puts a transform. A str enum, so ``t.kind == "geometry"``
    still reads naturally."""

    POINTWISE = "pointwise"  # an intensity op on each value: on the source samples before the
                             # stage's geometry, on the interpolated value after it
    POST = "post"            # needs the output element (noise, bias field): after the geometry
    GEOMETRY = "geometry"    # one affine matrix per sample (plus, if elastic, a displacement field)
    NORMALIZE = "normalize"  # needs per-image statistics: a pass of its own
    FILTER = "filter"        # a neighbourhood filter: a stage of per-axis filter passes


class Transform:
    """Base class. Declared capabilities (class attributes, read by the planner):

    - ``kind``: a ``Kind``, how the planner places it;
    - ``draws``: Philox uniforms per sample (0: deterministic);
    - ``follows_labels``: labels / masks passed as ``label=`` go through it (nearest-neighbour,
      no intensity op): the geometric transforms;
    - ``is_elastic``: it ends its resampling stage with a displacement field (``control_grid``).
    """

    kind = Kind.POINTWISE
    draws = 0
    follows_labels = False
    is_elastic = False

    def __call__(self, batch: Any, spacing: Any = None, *, seed: int = 0, indices: Sequence[int] | None = None,
                 stream: int = 0, mask: Any = None) -> Any:
        """This transform alone, run by the fused kernel as a one-transform Pipeline on the
        batch's own device, for every array kind (numpy included: the same float32 arithmetic
        on every input kind, and as fast as a Pipeline); returns float32 in the caller's array
        kind and device. ``seed``/``indices``/``stream`` key the Philox draws as a Pipeline would
        (stream = the transform's position in the pipeline). The float64 numpy path is
        ``reference()`` (or ``Pipeline([t]).reference``)."""
        from .pipeline import run_transform
        return run_transform(self, batch, spacing, seed=seed, indices=indices, stream=stream, mask=mask)

    def reference(self, x: np.ndarray, spacing, seed, indices, stream, mask=None):
        """float64 (N, C, *spatial) -> (float64 result, spacing after this transform)."""
        raise NotImplementedError

    def sample_ops(self, u: np.ndarray, position: int, dims: int):
        """(intensity ops of one sample given its draws ``u``, parameters to report or None);
        deterministic transforms return their fixed ``ops()``. Pointwise and post kinds."""
        return self.ops(), None

    def separable_plan(self, shape: tuple, spacing: Any):
        """The filter passes (a ``filter.SeparablePlan``) this transform runs as on an input of
        this shape, or None when it does not run as a filter stage there. A FILTER-kind
        transform always returns passes; a geometric one may (an antialiased Resize that
        shrinks some axis); the others never do."""
        return None

    def sample_plan(self, plan: Any, u: np.ndarray) -> tuple:
        """(this batch's filter passes, each sample's reported params) from the planned layout
        ``plan`` and the (N, draws) Philox uniforms ``u``; a deterministic filter runs ``plan``."""
        return plan, [dict(plan.params) for _ in range(len(u))]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
