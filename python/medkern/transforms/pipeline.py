"""Pipeline: plan a chain of transforms once, run it fused.

Two parts. The planner (``plan_transforms``, pure) turns the transforms and an input's spatial
shape / spacing into an immutable ``Plan`` of typed stages:

- ``ResampleStage``: [point-wise ops on the source samples] -> [geometry, composed into one
  matrix per sample, optionally ending in an elastic displacement field] -> [point-wise ops,
  noise and bias field on the interpolated value], one `_C.resample_intensity` call for the
  whole batch;
- ``FilterStage``: a neighbourhood filter (GaussianBlur, an antialiased Resize that shrinks some
  axis), one `_C.filter_axis` pass per filtered axis;
- ``NormalizeStage``: z-score / min-max / percentile clip, a second light pass
  (`_C.normalize_intensity`; its GPU workspace is allocated here, on the input's device).

The executor (``execute``, stateless) runs a plan on a batch. Everything a call draws or makes
(matrices, fields, ops, reported parameters, the geometry a label follows) is local to that
call, so one Pipeline serves any number of threads; a Pipeline holds only its settings and a
cache of plans keyed by (shape, spacing), filled under a lock. Stages are dispatched on their
type, and the planner reads what a transform can do from its declared ``kind`` / ``draws`` /
``follows_labels`` / ``is_elastic`` (base.Transform).

A resampling stage ends where fusing would change the result of the unfused chain: geometry
after a post-op, a change of interpolation or padding mode, a normalization, a filter, or any
geometry after an elastic deformation. So fused == unfused exactly when each stage has at most
one interpolating step; with several (e.g. affine then resize) the fused pass resamples once,
which differs from resampling twice by the interpolation error only (and is the better image).

Random parameters are drawn per sample (Philox keyed by seed, sample index and the transform's
position), so every sample gets its own matrix, elastic field and intensity ops. Labels / masks
passed as ``label=`` follow the same geometry with nearest-neighbour sampling and no intensity op.
Small per-call arrays go to the GPU through pinned memory without blocking the host.
"""
from __future__ import annotations

import numbers
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np

from .._backend import _C, stream_of, view
from .base import (MODE_CODES, PADDING_CODES, Kind, Transform, array_kind, check_batch, check_spacing,
                   draw_uniform, to_numpy)
from .filter import SeparablePlan
from .intensity import AFFINE

__all__ = ["Pipeline", "Plan", "ResampleStage", "FilterStage", "NormalizeStage", "Step", "GeometryStep",
           "plan_transforms", "execute", "run_transform"]

OUT_DTYPES = ("float32", "float16", "bfloat16")
PLAN_CACHE_SIZE = 128  # (shape, spacing) keys kept per Pipeline; the oldest goes first


# ---- the plan: typed, immutable stages ---------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """A transform at its position in the chain (the position keys its Philox draws)."""

    position: int
    transform: Transform


@dataclass(frozen=True)
class GeometryStep:
    """A geometric transform planned for an input of ``in_shape`` / ``in_spacing``."""

    position: int
    transform: Transform
    in_shape: tuple
    in_spacing: tuple | None
    out_shape: tuple


@dataclass(frozen=True)
class ResampleStage:
    """One `_C.resample_intensity` call: ``pre`` ops on the source samples, the ``geometry``
    steps composed into one matrix per sample, ``post`` ops on the interpolated value."""

    pre: tuple        # Step
    geometry: tuple   # GeometryStep
    post: tuple       # Step
    mode: str         # interpolation of the whole stage
    padding: str
    in_shape: tuple
    out_shape: tuple
    out_spacing: tuple | None

    @property
    def elastic(self) -> GeometryStep | None:
        """The elastic step (always the stage's last geometric step), or None."""
        if self.geometry and self.geometry[-1].transform.is_elastic:
            return self.geometry[-1]
        return None

    @staticmethod
    def identity(shape: tuple, spacing: tuple | None) -> "ResampleStage":
        """Copies each value into a new dtype / layout: nearest copies exactly (linear would
        spread NaN/Inf through its zero-weight taps)."""
        return ResampleStage((), (), (), "nearest", "zeros", shape, shape, spacing)


@dataclass(frozen=True)
class LabelGeometry:
    """The nearest-neighbour matrix (dims x dims+1, read-only) a label takes through a filter
    stage that changes the geometry (an antialiased Resize), the same for every sample."""

    matrix: np.ndarray
    padding: str


@dataclass(frozen=True)
class FilterStage:
    """One `_C.filter_axis` pass per entry of ``plan.passes``; ``label`` is None when labels
    pass through unchanged (a blur)."""

    position: int
    transform: Transform
    plan: SeparablePlan
    in_shape: tuple
    in_spacing: tuple | None
    label: LabelGeometry | None

    @property
    def out_shape(self) -> tuple:
        return self.plan.out_shape

    @property
    def out_spacing(self) -> tuple | None:
        return self.plan.out_spacing


@dataclass(frozen=True)
class NormalizeStage:
    """One `_C.normalize_intensity` pass of a ZScore / MinMax / PercentileClip transform."""

    position: int
    transform: Transform
    out_shape: tuple
    out_spacing: tuple | None


@dataclass(frozen=True)
class Plan:
    """The stages of a chain for one input shape / spacing, and what comes out."""

    stages: tuple
    in_shape: tuple
    in_spacing: tuple | None
    out_shape: tuple
    out_spacing: tuple | None


def _as_spacing(spacing: Any) -> tuple | None:
    return None if spacing is None else tuple(float(v) for v in np.asarray(spacing, dtype=np.float64).reshape(-1))


# ---- the planner (pure) ----------------------------------------------------------------------
class _StageBuilder:
    """The resampling stage being assembled during one planning run (never leaves it)."""

    def __init__(self, shape: tuple, spacing: tuple | None):
        self.pre: list = []
        self.geometry: list = []
        self.post: list = []
        self.mode = self.padding = None  # None: not fixed yet by any step
        self.in_shape, self.shape, self.spacing = shape, shape, spacing

    def empty(self) -> bool:
        return not (self.pre or self.geometry or self.post)

    def accepts(self, mode: str | None, padding: str | None) -> bool:
        """Whether a geometric step needing this mode / padding (None: any) joins the stage."""
        clash = ((mode is not None and self.mode not in (None, mode)) or
                 (padding is not None and self.padding not in (None, padding)))
        after_elastic = bool(self.geometry) and self.geometry[-1].transform.is_elastic
        return not (self.post or clash or after_elastic)

    def add_geometry(self, step: GeometryStep, mode: str | None, padding: str | None, spacing: tuple | None):
        self.geometry.append(step)
        self.mode = self.mode or mode
        self.padding = self.padding or padding
        self.shape, self.spacing = step.out_shape, spacing

    def freeze(self) -> ResampleStage:
        return ResampleStage(tuple(self.pre), tuple(self.geometry), tuple(self.post),
                             self.mode or ("linear" if self.geometry else "nearest"), self.padding or "zeros",
                             self.in_shape, self.shape, self.spacing)


def _label_geometry(t: Transform, shape: tuple, spacing: tuple | None) -> LabelGeometry:
    dims = len(shape)
    matrix = np.array(t.plan(shape, spacing, np.full(max(t.draws, 1), 0.5))[0][:dims], dtype=np.float64)
    matrix.setflags(write=False)
    return LabelGeometry(matrix, t.padding)


def plan_transforms(transforms: Sequence[Transform], shape: tuple, spacing: Any = None, start: int = 0) -> Plan:
    """The stages of ``transforms`` for an input of this spatial shape / spacing; the first
    transform sits at position ``start`` (its Philox stream). Pure: reads the transforms'
    declarations and shape rules, draws nothing (output shapes never depend on draws)."""
    shape, spacing = tuple(int(s) for s in shape), _as_spacing(spacing)
    in_shape, in_spacing = shape, spacing
    stages: list = []
    builder = _StageBuilder(shape, spacing)
    for position, t in enumerate(transforms, start):
        kind = Kind(t.kind)
        passes = t.separable_plan(shape, spacing)
        if passes is not None or kind is Kind.NORMALIZE:
            if not builder.empty():
                stages.append(builder.freeze())
            if passes is not None:
                label = _label_geometry(t, shape, spacing) if t.follows_labels else None
                stages.append(FilterStage(position, t, passes, shape, spacing, label))
            else:
                stages.append(NormalizeStage(position, t, shape, spacing))
            shape, spacing = stages[-1].out_shape, stages[-1].out_spacing
            builder = _StageBuilder(shape, spacing)
        elif kind is Kind.GEOMETRY:
            _, out_shape, out_spacing, _ = t.plan(shape, spacing, np.full(max(t.draws, 1), 0.5))
            out_shape = tuple(int(s) for s in out_shape)
            mode_free, padding_free = t.fusable_with_any(shape, out_shape)
            mode = None if mode_free else t.mode
            padding = None if padding_free else t.padding
            if not builder.accepts(mode, padding):
                stages.append(builder.freeze())
                builder = _StageBuilder(shape, spacing)
            step = GeometryStep(position, t, shape, spacing, out_shape)
            shape, spacing = out_shape, _as_spacing(out_spacing)
            builder.add_geometry(step, mode, padding, spacing)
        elif kind is Kind.POST or builder.geometry or builder.post:
            builder.post.append(Step(position, t))
        elif kind is Kind.POINTWISE:
            builder.pre.append(Step(position, t))
        else:
            raise ValueError(f"argument 'transforms' item {position - start}: {type(t).__name__} is a filter "
                             f"but planned no filter passes for shape {shape}")
    if not builder.empty() or not stages:  # an empty chain still converts to the output dtype
        stages.append(builder.freeze())
    return Plan(tuple(stages), in_shape, in_spacing, shape, spacing)


# ---- the executor (stateless) ------------------------------------------------------------------
class LabelRun(NamedTuple):
    """The geometry of one resampling stage as labels take it (device arrays of one call)."""

    matrices: Any
    field: Any
    out_shape: tuple
    padding: str


@dataclass
class _Call:
    """What one call carries through its stages: made per call, never kept on the Pipeline."""

    batch: Any
    seed: int
    indices: np.ndarray
    mask: Any = None
    params: list = field(default_factory=list)  # per sample: the parameters drawn
    labels: list | None = None                  # LabelRun per geometry-changing stage, if labels follow


def execute(plan: Plan, batch: Any, *, seed: int, indices: np.ndarray, out_dtype: str = "float32",
            mask: Any = None, follow_labels: bool = False) -> tuple:
    """Runs ``plan`` on a validated batch: -> (output, per-sample params, LabelRun list or None)."""
    call = _Call(batch, seed, indices, mask, [[] for _ in range(int(batch.shape[0]))],
                 [] if follow_labels else None)
    current = batch
    last = len(plan.stages) - 1
    for s, stage in enumerate(plan.stages):
        current = _RUN_STAGE[type(stage)](stage, current, call, out_dtype if s == last else "float32")
    return current, call.params, call.labels


def _fold_affines(ops: list) -> list:
    """Merges consecutive Affine ops (Rescale then Window's scaling) into one."""
    out = []
    for op in ops:
        if out and op[0] == AFFINE and out[-1][0] == AFFINE:
            a1, b1 = out[-1][1], out[-1][2]
            out[-1] = (AFFINE, a1 * op[1], b1 * op[1] + op[2], 0.0)
        else:
            out.append(tuple(op))
    return out


def _sample_ops(steps: tuple, call: _Call, dims: int) -> np.ndarray:
    """(N, ops, 4) float32: each sample's intensity ops of these steps, affines folded; one
    shared list when no step is random."""
    n = call.indices.shape[0]
    if not any(step.transform.draws for step in steps):
        ops = _fold_affines([op for step in steps for op in step.transform.sample_ops(None, step.position, dims)[0]])
        return np.ascontiguousarray(np.broadcast_to(np.asarray(ops, np.float32).reshape(1, -1, 4),
                                                    (n, len(ops), 4)))
    per_sample = [[] for _ in range(n)]
    for step in steps:
        t = step.transform
        u = draw_uniform(call.seed, call.indices, step.position, t.draws) if t.draws else [None] * n
        for i in range(n):
            ops, p = t.sample_ops(u[i], step.position, dims)
            per_sample[i].extend(ops)
            if p is not None:
                call.params[i].append({"transform": type(t).__name__, "position": step.position, **p})
    folded = [_fold_affines(ops) for ops in per_sample]
    return np.ascontiguousarray(np.asarray(folded, np.float32).reshape(n, -1, 4))


def _run_resample(stage: ResampleStage, x: Any, call: _Call, out_dtype: str) -> Any:
    n, dims = int(x.shape[0]), len(stage.in_shape)
    matrices = np.broadcast_to(np.eye(dims + 1), (n, dims + 1, dims + 1)).copy()
    u = None
    for step in stage.geometry:
        t = step.transform
        u = draw_uniform(call.seed, call.indices, step.position, t.draws)
        for i in range(n):
            m, s_shape, _, p = t.plan(step.in_shape, step.in_spacing, u[i])
            if tuple(s_shape) != step.out_shape:
                raise ValueError(f"{type(t).__name__} gives different output shapes within one batch "
                                 f"({step.out_shape} vs {tuple(s_shape)})")
            matrices[i] = matrices[i] @ m
            call.params[i].append({"transform": type(t).__name__, "position": step.position, **p})
    field_host = None
    elastic = stage.elastic
    if elastic is not None:  # the last geometric step: ``u`` holds its draws
        field_host = np.ascontiguousarray(
            np.stack([elastic.transform.control_grid(stage.out_shape, u[i]) for i in range(n)]), dtype=np.float32)
        for i in range(n):
            call.params[i][-1]["max_control_displacement"] = float(np.abs(field_host[i]).max(initial=0.0))
    pre_ops = _sample_ops(stage.pre, call, dims)
    post_ops = _sample_ops(stage.post, call, dims)
    out = _empty(x, tuple(x.shape[:2]) + stage.out_shape, out_dtype)
    mats, samples, pre, post = (_like_device(a, x) for a in (np.ascontiguousarray(matrices[:, :dims, :]),
                                                              call.indices.astype(np.int64), pre_ops, post_ops))
    field_dev = None if field_host is None else _like_device(field_host, x)
    _C.resample_intensity(view(x, "batch"), view(mats, "matrices"), view(samples, "sample_indices"),
                          view(pre, "pre_ops"), view(post, "post_ops"), view(out, "output"),
                          MODE_CODES[stage.mode], PADDING_CODES[stage.padding], call.seed, stream_of(x),
                          field=None if field_dev is None else view(field_dev, "field"))
    if call.labels is not None and stage.geometry:
        call.labels.append(LabelRun(mats, field_dev, stage.out_shape, stage.padding))
    return out


def _run_filter(stage: FilterStage, x: Any, call: _Call, out_dtype: str) -> Any:
    """One _C.filter_axis per pass. The kernel reads float32 through any strides (the caller's
    batch included, never written); intermediates ping-pong between two flat float32 buffers,
    the last pass writes a fresh ``out_dtype`` array."""
    t = stage.transform
    n = int(x.shape[0])
    plan, drawn = t.sample_plan(stage.plan, draw_uniform(call.seed, call.indices, stage.position, t.draws))
    for p, d in zip(call.params, drawn):
        p.append({"transform": type(t).__name__, "position": stage.position, **d})
    if call.labels is not None and stage.label is not None:
        mats = np.broadcast_to(stage.label.matrix, (n,) + stage.label.matrix.shape)
        call.labels.append(LabelRun(_like_device(mats, x), None, plan.out_shape, stage.label.padding))
    if _dtype_name(x) != "float32" or not plan.passes:
        # raw integers -> float32 (or, with nothing to filter, the result itself) by an identity stage
        x = _run_resample(ResampleStage.identity(stage.in_shape, stage.in_spacing), x, call,
                          "float32" if plan.passes else out_dtype)
        if not plan.passes:
            return x
    c = int(x.shape[1])
    shapes, step = [], list(stage.in_shape)
    for axis, taps, _ in plan.passes:
        step[axis] = taps.shape[0]
        shapes.append((n, c, *step))
    sizes = [int(np.prod(s)) for s in shapes]
    buffers = [_empty(x, (max(sizes[:-1]),), "float32") for _ in range(min(2, len(shapes) - 1))]
    for p, (axis, taps, weights) in enumerate(plan.passes):
        if p == len(shapes) - 1:
            out = _empty(x, shapes[p], out_dtype)
        else:
            out = buffers[p % 2][:sizes[p]].reshape(shapes[p])
        taps_dev = _like_device(taps, x)
        weights_dev = _like_device(weights.astype(np.float32), x)
        _C.filter_axis(view(x, "input"), view(taps_dev, "indices"), view(weights_dev, "weights"),
                       view(out, "output"), axis, stream_of(x))
        x = out
    return x


def _run_normalize(stage: NormalizeStage, x: Any, call: _Call, out_dtype: str) -> Any:
    t = stage.transform
    if x is call.batch and _dtype_name(x) == "float32" and _is_contiguous(x):
        # the caller's float32 batch is read as it is and never written
        out = _empty(x, x.shape, out_dtype)
    else:
        if _dtype_name(x) != "float32" or x is call.batch:
            # statistics need contiguous float32 values of the image: an identity stage
            x = _run_resample(ResampleStage.identity(stage.out_shape, stage.out_spacing), x, call, "float32")
        # our own float32 intermediate is normalized in place (no second big allocation)
        out = x if out_dtype == "float32" else _empty(x, x.shape, out_dtype)
    m = None
    if call.mask is not None:
        m = _like_device(np.ascontiguousarray(to_numpy(call.mask)).astype(np.uint8), x)
    # GPU scratch (partial statistics, percentile histograms) from the caller's allocator
    source = view(x, "input")
    ws_bytes = _C.normalize_workspace_bytes(list(x.shape), t.code, t.channel_wise,
                                            int(source.device.startswith("cuda")))
    ws = _empty(x, (ws_bytes,), "uint8") if ws_bytes else None
    _C.normalize_intensity(source, None if m is None else view(m, "mask"), view(out, "output"), t.code,
                           t.channel_wise, t.eps, lower=t.lower, upper=t.upper, rescale=t.rescale,
                           workspace=None if ws is None else view(ws, "workspace"), stream=stream_of(x))
    return out


_RUN_STAGE = {ResampleStage: _run_resample, FilterStage: _run_filter, NormalizeStage: _run_normalize}


def _resample_label(label: Any, x: Any, runs: list, seed: int, indices: np.ndarray) -> Any:
    """The label (``x``: its float32 copy) through every geometry-changing stage of one call,
    nearest neighbour, no intensity op; returned in the label's own dtype."""
    n = x.shape[0]
    no_ops = _like_device(np.zeros((n, 0, 4), np.float32), x)
    samples = _like_device(indices.astype(np.int64), x)
    for run in runs:
        out = _empty(x, tuple(x.shape[:2]) + tuple(run.out_shape), "float32")
        _C.resample_intensity(view(x, "label"), view(run.matrices, "matrices"), view(samples, "sample_indices"),
                              view(no_ops, "pre_ops"), view(no_ops, "post_ops"), view(out, "output"),
                              MODE_CODES["nearest"], PADDING_CODES[run.padding], seed, stream_of(x),
                              field=None if run.field is None else view(run.field, "field"))
        x = out
    return _cast_like(x, label)


def _prepare(batch: Any, spacing: Any, indices: Sequence[int] | None) -> tuple:
    """Validated (batch, spacing float64 array or None, int64 sample indices); a
    ``medkern.io.Volume`` brings its pixels as a batch of one and its spacing."""
    if hasattr(batch, "pixels") and hasattr(batch, "spacing"):  # a medkern.io.Volume
        spacing = batch.spacing if spacing is None else spacing
        batch = batch.as_batch()
    dims = check_batch(batch)
    n = int(batch.shape[0])
    sp = check_spacing(spacing, dims)
    idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.shape[0] != n or np.any(idx < 0):
        raise ValueError(f"argument 'indices' must hold {n} non-negative sample indices, got {idx.shape[0]}")
    return batch, sp, idx


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2 ** 64:
        raise ValueError(f"argument 'seed' must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def run_transform(transform: Transform, batch: Any, spacing: Any = None, *, seed: int = 0,
                  indices: Sequence[int] | None = None, stream: int = 0, mask: Any = None) -> Any:
    """``transform(batch, ...)``: a one-transform pipeline whose step sits at position
    ``stream``, run by the kernel on the batch's device; float32 in the batch's array kind."""
    if isinstance(stream, bool) or not isinstance(stream, numbers.Integral) or not 0 <= int(stream) < 2 ** 31:
        raise ValueError(f"argument 'stream' must be an integer in [0, 2**31), got {stream!r}")
    seed = _check_seed(seed)
    batch, sp, idx = _prepare(batch, spacing, indices)
    plan = plan_transforms((transform,), tuple(batch.shape[2:]), sp, start=int(stream))
    return execute(plan, batch, seed=seed, indices=idx, mask=mask)[0]


# ---- the user-facing object ---------------------------------------------------------------------
class Pipeline:
    """Pipeline(transforms, seed=0, out_dtype='float32', check_finite=False).

    ``pipeline(batch, spacing=None, return_params=False, indices=None, mask=None, label=None)``:
    ``batch`` is (N, C, H, W) or (N, C, D, H, W) (or a ``medkern.io.Volume``, which brings its
    spacing), int16/uint8/uint16/float32, as a numpy array, torch tensor (CPU or CUDA) or cupy
    array; the result has the same kind and device, dtype ``out_dtype`` (bfloat16 needs torch).
    ``indices`` are the samples' Philox keys (default 0..N-1): pass the dataset indices and any
    batch split or worker count gives the same output. ``mask`` (same spatial shape as the
    output) restricts the statistics of ZScore/MinMax/PercentileClip. ``label`` (N, C_label,
    *spatial) follows the geometry (nearest neighbour) and comes back in its own dtype: the
    call then returns (image, label[, params]). NaN/Inf propagate unless ``check_finite`` (then
    ValueError naming 'batch').

    ``pipeline.plan(shape, spacing)`` is the plan for an input of that spatial shape (its
    ``out_shape`` / ``out_spacing`` say what comes out); calls never change the Pipeline, so one
    object may serve several threads. ``pipeline.reference(...)`` runs the unfused chain in
    float64 numpy (the test reference).
    """

    def __init__(self, transforms: Sequence[Transform], seed: int = 0, out_dtype: str = "float32",
                 check_finite: bool = False):
        self._transforms = tuple(transforms)
        for i, t in enumerate(self._transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"argument 'transforms' item {i} is not a medkern transform: {t!r}")
        self.seed = _check_seed(seed)
        if out_dtype not in OUT_DTYPES:
            raise ValueError(f"argument 'out_dtype' must be one of {OUT_DTYPES}, got {out_dtype!r}")
        self.out_dtype, self.check_finite = out_dtype, bool(check_finite)
        self._plans: dict = {}
        self._plans_lock = threading.Lock()

    @property
    def transforms(self) -> tuple:
        """The chain (fixed at construction: the cached plans are made from it)."""
        return self._transforms

    def __repr__(self) -> str:
        return f"Pipeline({list(self._transforms)!r}, seed={self.seed}, out_dtype={self.out_dtype!r})"

    def __getstate__(self) -> dict:  # to worker processes: the lock and the cache stay behind
        state = dict(self.__dict__)
        del state["_plans_lock"]
        state["_plans"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._plans_lock = threading.Lock()

    def plan(self, shape: Sequence[int], spacing: Any = None) -> Plan:
        """The plan for an input of this spatial shape / spacing, made once and cached."""
        shape = tuple(int(s) for s in shape)
        key = (shape, _as_spacing(check_spacing(spacing, len(shape))))
        found = self._plans.get(key)
        if found is None:
            planned = plan_transforms(self._transforms, *key)  # outside the lock: pure
            with self._plans_lock:
                found = self._plans.setdefault(key, planned)
                while len(self._plans) > PLAN_CACHE_SIZE:
                    del self._plans[next(iter(self._plans))]
        return found

    def __call__(self, batch: Any, spacing: Any = None, return_params: bool = False,
                 indices: Sequence[int] | None = None, mask: Any = None, label: Any = None):
        batch, sp, idx = _prepare(batch, spacing, indices)
        seed, out_dtype = self.seed, self.out_dtype  # read once: a concurrent change never mixes into a call
        kind = array_kind(batch)
        if out_dtype == "bfloat16" and kind != "torch":
            raise TypeError("argument 'out_dtype' bfloat16 needs a torch tensor input (numpy/cupy lack bfloat16)")
        if self.check_finite and _dtype_name(batch) == "float32":
            finite = bool(np.isfinite(to_numpy(batch)).all()) if kind != "torch" else bool(batch.isfinite().all())
            if not finite:
                raise ValueError("argument 'batch' contains NaN or Inf (check_finite=True)")
        label_in = None if label is None else _check_label(label, batch)
        plan = self.plan(tuple(batch.shape[2:]), sp)
        out, params, runs = execute(plan, batch, seed=seed, indices=idx, out_dtype=out_dtype, mask=mask,
                                    follow_labels=label_in is not None)
        result = (out,)
        if label_in is not None:
            result += (_resample_label(label, label_in, runs, seed, idx),)
        if return_params:
            result += (params,)
        return result[0] if len(result) == 1 else result

    # ---- the unfused reference -----------------------------------------------------------
    def reference(self, batch: Any, spacing: Any = None, indices: Sequence[int] | None = None,
                  mask: Any = None) -> np.ndarray:
        """The same chain run one transform at a time in float64 numpy (the test reference)."""
        batch, sp, idx = _prepare(batch, spacing, indices)
        x = to_numpy(batch).astype(np.float64)
        m = None if mask is None else to_numpy(mask)
        for position, t in enumerate(self._transforms):
            x, sp = t.reference(x, sp, self.seed, idx, position, mask=m)
        return x


# ---- array plumbing ----------------------------------------------------------------------------
def _dtype_name(array: Any) -> str:
    return str(array.dtype).rpartition(".")[2]


def _is_contiguous(array: Any) -> bool:
    kind = array_kind(array)
    if kind == "torch":
        return array.is_contiguous()
    return bool(array.flags.c_contiguous)


def _empty(like: Any, shape: tuple, dtype: str) -> Any:
    kind = array_kind(like)
    shape = tuple(int(s) for s in shape)
    if kind == "torch":
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype), device=like.device)
    if kind == "cupy":
        import cupy
        return cupy.empty(shape, dtype=dtype)
    return np.empty(shape, dtype=dtype)


_PINNED_IN_FLIGHT: list = []  # (cupy event, pinned host buffer) of copies not yet known complete
_PINNED_LOCK = threading.Lock()


def _like_device(array: np.ndarray, like: Any) -> Any:
    """A small host array (matrices, ops, fields) on the device of ``like``. To a GPU it goes
    from pinned memory on the caller's stream without blocking the host (so the call also works
    inside CUDA-graph capture); torch's caching host allocator keeps its pinned block until the
    copy is done, and for cupy the buffer is kept until its event has completed."""
    kind = array_kind(like)
    if kind == "torch":
        import torch
        t = torch.from_numpy(np.array(array, order="C", copy=True))
        if like.device.type == "cpu":
            return t
        if t.numel() == 0:  # e.g. a stage without pre ops: nothing to copy
            return torch.empty(t.shape, dtype=t.dtype, device=like.device)
        return t.pin_memory().to(like.device, non_blocking=True)
    if kind == "cupy":
        import cupy
        import cupyx
        if array.size == 0:
            return cupy.empty(array.shape, dtype=array.dtype)
        host = cupyx.empty_pinned(array.shape, dtype=array.dtype)
        host[...] = array
        out = cupy.empty(array.shape, dtype=array.dtype)
        stream = cupy.cuda.get_current_stream()
        out.set(host, stream=stream)
        event = cupy.cuda.Event()
        event.record(stream)
        with _PINNED_LOCK:  # several threads may copy at once: none may drop another's buffer
            _PINNED_IN_FLIGHT[:] = [(e, b) for e, b in _PINNED_IN_FLIGHT if not e.done]
            _PINNED_IN_FLIGHT.append((event, host))
        return out
    return np.ascontiguousarray(array)


LABEL_DTYPES = ("bool", "uint8", "int8", "int16", "uint16", "int32", "int64", "float32")


def _check_label(label: Any, batch: Any) -> Any:
    """Validates a label / mask batch against ``batch``; returns it as float32 (exact for the
    integer values a segmentation holds, |v| < 2**24) on the batch's device and array kind."""
    kind = array_kind(batch)
    try:
        label_kind = array_kind(label)
    except TypeError:
        raise TypeError(f"argument 'label' must be an array of the same kind as 'batch' ({kind}), "
                        f"got {type(label).__name__}") from None
    if label_kind != kind:
        raise TypeError(f"argument 'label' is a {label_kind} array but 'batch' is {kind}")
    if label.ndim != batch.ndim or label.shape[0] != batch.shape[0] or tuple(label.shape[2:]) != tuple(batch.shape[2:]):
        raise ValueError(f"argument 'label' must be (N, C_label, *spatial) matching 'batch' {tuple(batch.shape)} "
                         f"in N and spatial size, got {tuple(label.shape)}")
    dtype = _dtype_name(label)
    if dtype not in LABEL_DTYPES:
        raise TypeError(f"argument 'label' has dtype {dtype}; expected one of: {', '.join(LABEL_DTYPES)}")
    if kind == "torch":
        if label.device != batch.device:
            raise ValueError(f"argument 'label' is on {label.device} but 'batch' on {batch.device}")
        if dtype in ("int32", "int64") and label.numel() and int(label.abs().max()) >= 2 ** 24:
            raise ValueError("argument 'label' holds values of magnitude >= 2**24 (not exact in float32)")
        return label.float().contiguous()
    if dtype in ("int32", "int64") and label.size and int(abs(label).max()) >= 2 ** 24:
        raise ValueError("argument 'label' holds values of magnitude >= 2**24 (not exact in float32)")
    return label.astype("float32")


def _cast_like(x: Any, label: Any) -> Any:
    """float32 nearest-resampled values back to the label's dtype (exact: whole numbers)."""
    if array_kind(label) == "torch":
        return x.to(label.dtype)
    return x.astype(label.dtype)
