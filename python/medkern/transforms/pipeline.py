"""Pipeline: plan a chain of transforms once, run it fused.

The chain is cut into stages; a stage is [point-wise ops on the source samples] -> [geometry,
composed into one matrix per sample, optionally ending in an elastic displacement field] ->
[point-wise ops, noise and bias field on the interpolated value], executed by one
`_C.resample_intensity` call for the whole batch; z-score / min-max / percentile clip run as a
second light pass (`_C.normalize_intensity`; its GPU workspace is allocated here, on the input's
device). A stage ends where fusing would change the result of the unfused chain: geometry after a
post-op, a change of interpolation or padding mode, a normalization, or any geometry after an
elastic deformation. So fused == unfused exactly when each stage has at most one interpolating
step; with several (e.g. affine then resize) the fused pass resamples once, which differs from
resampling twice by the interpolation error only (and is the better image).

Random parameters are drawn per sample (Philox keyed by seed, sample index and the transform's
position), so every sample gets its own matrix, elastic field and intensity ops. Labels / masks
passed as ``label=`` follow the same geometry with nearest-neighbour sampling and no intensity op.
Small per-call arrays go to the GPU through pinned memory without blocking the host.
Neighbourhood filters (GaussianBlur, antialiased Resize) run as separable stages: one
`_C.filter_axis` pass per filtered axis.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._backend import _C, stream_of, view
from .base import (MODE_CODES, PADDING_CODES, Transform, array_kind, check_batch, check_spacing,
                   draw_uniform, to_numpy)
from .intensity import AFFINE

OUT_DTYPES = ("float32", "float16", "bfloat16")


class _Stage:
    def __init__(self):
        self.pre: list = []       # (position, transform)
        self.geometry: list = []
        self.post: list = []
        self.elastic = None       # (position, transform): the last geometric step, if elastic
        self.mode = None
        self.padding = None

    def empty(self) -> bool:
        return not (self.pre or self.geometry or self.post)


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


class _SeparableStage:
    """A transform run as its own stage of per-axis filter passes (see filter.SeparablePlan)."""

    def __init__(self, position: int, transform: Transform, plan: Any):
        self.position, self.transform, self.plan = position, transform, plan


def _separable_plan(t: Transform, shape: tuple, spacing) -> Any:
    """The filter passes of ``t`` on this shape, or None when it does not run as a separable
    stage (a Resize only does when it antialiases a shrinking axis)."""
    ask = getattr(t, "separable_plan", None)
    return None if ask is None else ask(shape, spacing)


class Pipeline:
    """Pipeline(transforms, seed=0, out_dtype='float32', check_finite=False).

    ``pipeline(batch, spacing=None, return_params=False, indices=None, mask=None)``: ``batch``
    is (N, C, H, W) or (N, C, D, H, W) (or a ``medkern.io.Volume``, which brings its spacing), int16/uint8/uint16/float32, as a numpy array, torch tensor
    (CPU or CUDA) or cupy array; the result has the same kind and device, dtype ``out_dtype``
    (bfloat16 needs torch). ``indices`` are the samples' Philox keys (default 0..N-1): pass the
    dataset indices and any batch split or worker count gives the same output. ``mask`` (same
    spatial shape as the output) restricts the statistics of ZScore/MinMax/PercentileClip. NaN/Inf
    propagate unless ``check_finite`` (then ValueError naming 'batch').
    """

    def __init__(self, transforms: Sequence[Transform], seed: int = 0, out_dtype: str = "float32",
                 check_finite: bool = False):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"argument 'transforms' item {i} is not a medkern transform: {t!r}")
        if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 64:
            raise ValueError(f"argument 'seed' must be an integer in [0, 2**64), got {seed!r}")
        if out_dtype not in OUT_DTYPES:
            raise ValueError(f"argument 'out_dtype' must be one of {OUT_DTYPES}, got {out_dtype!r}")
        self.seed, self.out_dtype, self.check_finite = int(seed), out_dtype, bool(check_finite)
        self._plans: dict = {}

    def __repr__(self) -> str:
        return f"Pipeline({self.transforms!r}, seed={self.seed}, out_dtype={self.out_dtype!r})"

    def _plan(self, shape: tuple, spacing) -> list:
        """Stages for an input of this spatial shape/spacing (shapes decide whether a resize can
        fuse with a neighbour of another padding mode; output shapes never depend on draws)."""
        stages: list = []
        stage = _Stage()
        for position, t in enumerate(self.transforms):
            separable = _separable_plan(t, shape, spacing)
            if separable is not None:
                if not stage.empty():
                    stages.append(stage)
                stages.append(_SeparableStage(position, t, separable))
                stage = _Stage()
                shape, spacing = separable.out_shape, separable.out_spacing
                continue
            if t.kind == "normalize":
                if not stage.empty():
                    stages.append(stage)
                stages.append((position, t))
                stage = _Stage()
            elif t.kind == "geometry":
                _, out_shape, spacing, _ = t.plan(shape, spacing, np.full(max(t.draws, 1), 0.5))
                mode_free, padding_free = t.fusable_with_any(shape, tuple(out_shape))
                mode = None if mode_free else t.mode
                padding = None if padding_free else t.padding
                clash = ((mode is not None and stage.mode not in (None, mode)) or
                         (padding is not None and stage.padding not in (None, padding)))
                if stage.post or clash or stage.elastic is not None:
                    stages.append(stage)
                    stage = _Stage()
                stage.geometry.append((position, t))
                if hasattr(t, "control_grid"):
                    stage.elastic = (position, t)
                stage.mode = stage.mode or mode
                stage.padding = stage.padding or padding
                shape = tuple(out_shape)
            elif t.kind == "post" or stage.geometry or stage.post:
                stage.post.append((position, t))
            else:
                stage.pre.append((position, t))
        if not stage.empty():
            stages.append(stage)
        return stages

    # ---- execution ---------------------------------------------------------------------
    def __call__(self, batch: Any, spacing: Any = None, return_params: bool = False,
                 indices: Sequence[int] | None = None, mask: Any = None, label: Any = None):
        if hasattr(batch, "pixels") and hasattr(batch, "spacing"):  # a medkern.io.Volume
            spacing = batch.spacing if spacing is None else spacing
            batch = batch.as_batch()
        dims = check_batch(batch)
        kind = array_kind(batch)
        n = batch.shape[0]
        sp = check_spacing(spacing, dims)
        idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.shape[0] != n or np.any(idx < 0):
            raise ValueError(f"argument 'indices' must hold {n} non-negative sample indices, got {idx.shape[0]}")
        if self.out_dtype == "bfloat16" and kind != "torch":
            raise TypeError("argument 'out_dtype' bfloat16 needs a torch tensor input (numpy/cupy lack bfloat16)")
        if self.check_finite and str(batch.dtype).endswith("float32"):
            finite = bool(np.isfinite(to_numpy(batch)).all()) if kind != "torch" else bool(batch.isfinite().all())
            if not finite:
                raise ValueError("argument 'batch' contains NaN or Inf (check_finite=True)")
        label_in = None if label is None else _check_label(label, batch)
        key = (tuple(batch.shape[2:]), None if sp is None else tuple(sp))
        if key not in self._plans:
            self._plans[key] = self._plan(*key)
        self.stages = self._plans[key]
        params = [[] for _ in range(n)]
        self._geometry_runs = []  # (matrices, field, out shape, padding) per resampling stage, for labels
        current = batch
        shape = tuple(batch.shape[2:])
        for s, stage in enumerate(self.stages):
            last = s == len(self.stages) - 1
            if isinstance(stage, _SeparableStage):
                current, shape, sp = self._run_separable(stage, current, shape, sp, idx,
                                                         self.out_dtype if last else "float32", params)
                continue
            if isinstance(stage, tuple):
                position, t = stage
                out_dtype = self.out_dtype if last else "float32"
                if current is batch and str(batch.dtype).endswith("float32") and _is_contiguous(batch):
                    # the caller's float32 batch is read as it is and never written
                    out = _empty(current, current.shape, out_dtype)
                else:
                    if str(current.dtype).rpartition(".")[2] != "float32" or current is batch:
                        # statistics need contiguous float32 values of the image: an identity stage
                        current = self._run_stage(_Stage(), current, shape, sp, idx, "float32", params)[0]
                    # our own float32 intermediate is normalized in place (no second big allocation)
                    out = current if out_dtype == "float32" else _empty(current, current.shape, out_dtype)
                m = None
                if mask is not None:
                    m = _like_device(np.ascontiguousarray(to_numpy(mask)).astype(np.uint8), current)
                # GPU scratch (partial statistics, percentile histograms) from the caller's allocator
                source = view(current, "input")
                ws_bytes = _C.normalize_workspace_bytes(list(current.shape), t.code, t.channel_wise,
                                                        int(source.device.startswith("cuda")))
                ws = _empty(current, (ws_bytes,), "uint8") if ws_bytes else None
                _C.normalize_intensity(source, None if m is None else view(m, "mask"),
                                       view(out, "output"), t.code, t.channel_wise, t.eps, lower=t.lower,
                                       upper=t.upper, rescale=t.rescale,
                                       workspace=None if ws is None else view(ws, "workspace"),
                                       stream=stream_of(current))
                current = out
            else:
                dtype = self.out_dtype if last else "float32"
                current, shape, sp = self._run_stage(stage, current, shape, sp, idx, dtype, params)
        if not self.stages:
            current, shape, sp = self._run_stage(_Stage(), batch, shape, sp, idx, self.out_dtype, params)
        result = current
        if label_in is not None:
            result = (current, self._resample_label(label, label_in, idx))
        if return_params:
            return (*result, params) if label_in is not None else (current, params)
        return result

    def _resample_label(self, label: Any, x: Any, idx: np.ndarray) -> Any:
        """The label through every resampling stage's geometry, nearest neighbour, no intensity
        op; returned in the label's own dtype."""
        n = x.shape[0]
        no_ops = _like_device(np.zeros((n, 0, 4), np.float32), x)
        samples = _like_device(idx.astype(np.int64), x)
        for mats, field, out_shape, padding in self._geometry_runs:
            if isinstance(mats, np.ndarray) and array_kind(x) != "numpy":
                mats = _like_device(mats, x)
            out = _empty(x, tuple(x.shape[:2]) + tuple(out_shape), "float32")
            _C.resample_intensity(view(x, "label"), view(mats, "matrices"), view(samples, "sample_indices"),
                                  view(no_ops, "pre_ops"), view(no_ops, "post_ops"), view(out, "output"),
                                  MODE_CODES["nearest"], PADDING_CODES[padding], self.seed, stream_of(x),
                                  field=None if field is None else view(field, "field"))
            x = out
        return _cast_like(x, label)

    def _run_stage(self, stage: _Stage, x: Any, shape: tuple, spacing, idx: np.ndarray, out_dtype: str,
                   params: list):
        n, dims = x.shape[0], x.ndim - 2
        matrices = np.broadcast_to(np.eye(dims + 1), (n, dims + 1, dims + 1)).copy()
        out_shape, out_spacing = None, spacing
        for position, t in stage.geometry:
            u = draw_uniform(self.seed, idx, position, t.draws)
            step_shape = step_spacing = None
            for i in range(n):
                m, s_shape, s_spacing, p = t.plan(shape, spacing, u[i])
                if step_shape is None:
                    step_shape, step_spacing = tuple(s_shape), s_spacing
                elif tuple(s_shape) != step_shape:
                    raise ValueError(f"{type(t).__name__} gives different output shapes within one batch "
                                     f"({step_shape} vs {tuple(s_shape)})")
                matrices[i] = matrices[i] @ m
                params[i].append({"transform": type(t).__name__, "position": position, **p})
            shape, spacing = step_shape, step_spacing
        out_shape, out_spacing = shape, spacing
        field = None
        if stage.elastic is not None:
            position, t = stage.elastic
            u = draw_uniform(self.seed, idx, position, t.draws)
            field = np.ascontiguousarray(np.stack([t.control_grid(tuple(out_shape), u[i]) for i in range(n)]),
                                         dtype=np.float32)
            for i in range(n):
                params[i][-1]["max_control_displacement"] = float(np.abs(field[i]).max(initial=0.0))
        pre_arr = self._sample_ops(stage.pre, idx, dims, params)
        post_arr = self._sample_ops(stage.post, idx, dims, params)
        mats = np.ascontiguousarray(matrices[:, :dims, :])
        out = _empty(x, tuple(x.shape[:2]) + tuple(out_shape), out_dtype)
        dev = [_like_device(a, x) for a in (mats, idx.astype(np.int64), pre_arr, post_arr)]
        field_dev = None if field is None else _like_device(field, x)
        _C.resample_intensity(view(x, "batch"), view(dev[0], "matrices"), view(dev[1], "sample_indices"),
                              view(dev[2], "pre_ops"), view(dev[3], "post_ops"), view(out, "output"),
                              # no geometry: nearest copies each value exactly (linear would spread NaN/Inf
                              # through its zero-weight taps)
                              MODE_CODES[stage.mode or ("linear" if stage.geometry else "nearest")],
                              PADDING_CODES[stage.padding or "zeros"],
                              self.seed, stream_of(x), field=None if field_dev is None else view(field_dev, "field"))
        if stage.geometry:
            self._geometry_runs.append((dev[0], field_dev, tuple(out_shape), stage.padding or "zeros"))
        return out, out_shape, out_spacing

    def _sample_ops(self, steps: list, idx: np.ndarray, dims: int, params: list) -> np.ndarray:
        """(N, ops, 4) float32: each sample's intensity ops of these (position, transform) steps,
        affines folded; one shared list when no step is random."""
        n = idx.shape[0]
        if not any(t.draws for _, t in steps):
            ops = _fold_affines([op for position, t in steps for op in t.sample_ops(None, position, dims)[0]])
            return np.ascontiguousarray(np.broadcast_to(np.asarray(ops, np.float32).reshape(1, -1, 4),
                                                        (n, len(ops), 4)))
        per_sample = [[] for _ in range(n)]
        for position, t in steps:
            u = draw_uniform(self.seed, idx, position, t.draws) if t.draws else [None] * n
            for i in range(n):
                ops, p = t.sample_ops(u[i], position, dims)
                per_sample[i].extend(ops)
                if p is not None:
                    params[i].append({"transform": type(t).__name__, "position": position, **p})
        folded = [_fold_affines(ops) for ops in per_sample]
        return np.ascontiguousarray(np.asarray(folded, np.float32).reshape(n, -1, 4))

    def _run_separable(self, stage: _SeparableStage, x: Any, shape: tuple, spacing, idx: np.ndarray,
                       out_dtype: str, params: list):
        """One _C.filter_axis per pass. The kernel reads float32 through any strides (the
        caller's batch included, never written); intermediates ping-pong between two flat
        float32 buffers, the last pass writes a fresh ``out_dtype`` array."""
        plan = stage.plan
        if getattr(stage.transform, "draws", 0):  # a random filter: this batch's own weights
            u = draw_uniform(self.seed, idx, stage.position, stage.transform.draws)
            plan, drawn = stage.transform.sample_plan(tuple(shape), spacing, u)
            for p, d in zip(params, drawn):
                p.append({"transform": type(stage.transform).__name__, "position": stage.position, **d})
        else:
            for p in params:
                p.append({"transform": type(stage.transform).__name__, "position": stage.position, **plan.params})
        if hasattr(stage.transform, "plan"):  # a resize: labels follow it with its nearest-sampling matrix
            dims = len(shape)
            m = stage.transform.plan(tuple(shape), spacing, None)[0][:dims]
            mats = np.ascontiguousarray(np.broadcast_to(m, (int(x.shape[0]), dims, dims + 1)))
            self._geometry_runs.append((mats, None, tuple(plan.out_shape), stage.transform.padding))
        if str(x.dtype).rpartition(".")[2] != "float32" or not plan.passes:
            # raw integers -> float32 (or, with nothing to filter, the result itself) by an identity stage
            dtype = "float32" if plan.passes else out_dtype
            x = self._run_stage(_Stage(), x, shape, spacing, idx, dtype, [[] for _ in params])[0]
            if not plan.passes:
                return x, plan.out_shape, plan.out_spacing
        n, c = int(x.shape[0]), int(x.shape[1])
        shapes, step = [], list(shape)
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
        return x, plan.out_shape, plan.out_spacing

    # ---- the unfused reference -----------------------------------------------------------
    def reference(self, batch: Any, spacing: Any = None, indices: Sequence[int] | None = None,
                  mask: Any = None) -> np.ndarray:
        """The same chain run one transform at a time in float64 numpy (the test reference)."""
        dims = check_batch(batch)
        sp = check_spacing(spacing, dims)
        x = to_numpy(batch).astype(np.float64)
        idx = np.arange(x.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
        m = None if mask is None else to_numpy(mask)
        for position, t in enumerate(self.transforms):
            x, sp = t.reference(x, sp, self.seed, idx, position, mask=m)
        return x


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
        _PINNED_IN_FLIGHT[:] = [(e, b) for e, b in _PINNED_IN_FLIGHT if not e.done]
        host = cupyx.empty_pinned(array.shape, dtype=array.dtype)
        host[...] = array
        out = cupy.empty(array.shape, dtype=array.dtype)
        stream = cupy.cuda.get_current_stream()
        out.set(host, stream=stream)
        event = cupy.cuda.Event()
        event.record(stream)
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
    dtype = str(label.dtype).rpartition(".")[2]
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
