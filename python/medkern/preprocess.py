"""`medkern preprocess INPUT OUTPUT --config pipeline.yaml`: run a transform Pipeline over a
tree of DICOM series (or .npy/.npz arrays) and write one output file per series plus a
JSON-lines manifest.

Built for interruption and fan-out: every item's Philox key is its index in the sorted list of
ALL items (not the shard's), outputs are written to a temp file and renamed, the manifest is
appended per item and rewritten at the end, and a re-run skips every output already present;
so an interrupted run resumes to the same bytes, and `--shard i/n` splits the work over machines.
A corrupt input is recorded as failed and the run goes on.
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_preprocess_parser", "run_preprocess", "load_config", "build_pipeline", "find_items"]

CONFIG_KEYS = {"seed", "out_dtype", "transforms"}
ARRAY_SUFFIXES = (".npy", ".npz")
KEEP_DTYPES = ("int16", "uint8", "uint16", "float32")


# ---- configuration -------------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> dict:
    import yaml
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"config {path}: the top level must be a mapping with keys {sorted(CONFIG_KEYS)}")
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValueError(f"config {path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(CONFIG_KEYS)}")
    if not isinstance(config.get("transforms", []), list):
        raise ValueError(f"config {path}: 'transforms' must be a list of {{Name: {{arguments}}}} items")
    return config


def _make_transform(item: Any, index: int):
    from . import transforms as T
    if isinstance(item, str):
        name, kwargs = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, kwargs = next(iter(item.items()))
        kwargs = kwargs or {}
    else:
        raise ValueError(f"config 'transforms' item {index} must be 'Name' or {{Name: {{arguments}}}}, got {item!r}")
    if name not in T.__all__ or name in ("Pipeline", "Transform"):
        raise ValueError(f"config 'transforms' item {index}: unknown transform '{name}'")
    if not isinstance(kwargs, dict):
        raise ValueError(f"config 'transforms' item {index} ({name}): arguments must be a mapping, got {kwargs!r}")
    cls = getattr(T, name)
    if name == "Rescale" and kwargs.get("from_header"):
        extra = set(kwargs) - {"from_header"}
        if extra:
            raise ValueError(f"config transform Rescale: 'from_header' excludes {sorted(extra)}")
        return "rescale-from-header"
    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in kwargs if k not in params or k == "self"]
    if unknown:
        raise ValueError(f"config transform {name}: unknown key(s) {unknown}; allowed: "
                         f"{[p for p in params if p != 'self']}")
    return cls(**kwargs)


def build_pipeline(config: dict, slope: float = 1.0, intercept: float = 0.0):
    """The Pipeline of a config; 'Rescale: {from_header: true}' takes the item's slope/intercept."""
    from .transforms import Pipeline, Rescale
    steps = [_make_transform(t, i) for i, t in enumerate(config.get("transforms", []))]
    steps = [Rescale(slope, intercept) if s == "rescale-from-header" else s for s in steps]
    return Pipeline(steps, seed=int(config.get("seed", 0)), out_dtype=str(config.get("out_dtype", "float32")))


# ---- inputs ----------------------------------------------------------------------------------
def find_items(root: str | os.PathLike) -> list[dict]:
    """All work items under root, sorted: DICOM series (grouped by SeriesInstanceUID), arrays,
    and unreadable files (kept so the manifest lists them as failed)."""
    from .io import scan_series
    root = Path(root)
    items = []
    if root.is_file():
        kind = "array" if root.suffix in ARRAY_SUFFIXES else "dicom"
        return [dict(kind=kind, source=str(root), files=[str(root)], name=root.stem)]
    arrays = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in ARRAY_SUFFIXES)
    for p in arrays:
        rel = p.relative_to(root)
        items.append(dict(kind="array", source=str(p), files=[str(p)], name=str(rel.with_suffix("")).replace(os.sep, "__")))
    groups, failed = scan_series(root)  # one series = one SeriesKey (a UID within one folder)
    array_set = {str(p) for p in arrays}
    for (folder, uid), files in groups.items():
        rel_dir = os.path.relpath(folder, root)
        stem = "root" if rel_dir == "." else rel_dir.replace(os.sep, "__")
        digest = hashlib.sha1(uid.encode()).hexdigest()[:10]
        source = files[0] if len(files) == 1 else folder
        items.append(dict(kind="dicom", source=source, files=files, name=f"{stem}__{digest}", series_uid=uid))
    for path, reason in failed:
        if path not in array_set:
            items.append(dict(kind="unreadable", source=path, files=[path], name="", error=reason))
    items.sort(key=lambda it: (it["source"], it["name"]))
    return items


def _load(item: dict, notes: list | None = None):
    """-> (batch (1, 1, *spatial), spacing or None, slope, intercept); the reader's warnings
    (uneven spacing, missing slices) are appended to ``notes``."""
    from .io import read_dicom, read_dicom_series
    if item["kind"] == "unreadable":
        raise ValueError(item["error"])
    if item["kind"] == "array":
        path = item["files"][0]
        spacing = None
        if path.endswith(".npz"):
            with np.load(path) as data:
                key = "image" if "image" in data.files else data.files[0]
                array = data[key]
                spacing = data["spacing"] if "spacing" in data.files else None
        else:
            array = np.load(path)
        slope, intercept = 1.0, 0.0
        if spacing is None:
            spacing = (1.0,) * min(array.ndim, 3)
            if notes is not None:
                notes.append("no spacing stored with the array: 1 mm per axis assumed")
    else:
        volume = read_dicom(item["files"][0]) if len(item["files"]) == 1 else read_dicom_series(item["files"])
        array, spacing, slope, intercept = volume.pixels, volume.spacing, volume.slope, volume.intercept
        if notes is not None:
            notes.extend(volume.warnings)
        if array.ndim == 3 and array.shape[0] == 1:  # one slice: a 2D image
            array, spacing = array[0], spacing[1:]
    if array.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D image, got shape {array.shape}")
    if str(array.dtype) not in KEEP_DTYPES:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)[None, None], spacing, float(slope), float(intercept)


def _process(job: tuple) -> dict:
    """One item -> a manifest record (never raises for a bad input)."""
    item, index, config, out_dir, fmt = job
    record = dict(source=item["source"], series_uid=item.get("series_uid"), index=index, output=None, shape=None, spacing=None,
                  status="ok", error=None, warnings=[])
    try:
        batch, spacing, slope, intercept = _load(item, record["warnings"])
        pipeline = build_pipeline(config, slope, intercept)
        out = pipeline(batch, spacing=spacing, indices=[index])
        out_spacing = _output_spacing(pipeline, batch, spacing)
        target = Path(out_dir) / f"{item['name']}.{fmt}"
        _write_atomic(target, out[0], out_spacing, fmt)
        record.update(output=str(target), shape=list(out.shape[1:]),
                      spacing=None if out_spacing is None else [float(s) for s in out_spacing])
    except Exception as e:  # recorded, the run goes on
        record.update(status="failed", error=f"{type(e).__name__}: {e}")
    return record


def _output_spacing(pipeline, batch, spacing):
    """Spacing after the pipeline (the plan's output spacing, cached by the call just made)."""
    return pipeline.plan(tuple(batch.shape[2:]), spacing).out_spacing


def _tmp_prefix(target: Path) -> str:
    """Temp files of ``target`` are named ``{prefix}{pid}``: one name rule for writing and cleanup."""
    return f".{target.name}.tmp-"


def _remove_own_leftovers(out_dir: Path, items: list, shard: tuple[int, int], fmt: str) -> None:
    """Deletes the temp files an interrupted run left for THIS shard's items only: shards
    writing into one OUTPUT at the same time never touch each other's files in flight."""
    mine = {_tmp_prefix(out_dir / f"{it['name']}.{fmt}") for i, it in enumerate(items)
            if i % shard[1] == shard[0] and it["name"]}
    for path in out_dir.glob(".*.tmp-*"):
        prefix, sep, pid = path.name.rpartition(".tmp-")
        if sep and pid.isdigit() and prefix + sep in mine:
            path.unlink(missing_ok=True)


def _write_atomic(target: Path, array: np.ndarray, spacing, fmt: str) -> None:
    tmp = target.with_name(f"{_tmp_prefix(target)}{os.getpid()}")
    with open(tmp, "wb") as f:
        if fmt == "npz":
            extra = {} if spacing is None else {"spacing": np.asarray(spacing, dtype=np.float64)}
            np.savez(f, image=array, **extra)
        else:
            np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


# ---- the command -----------------------------------------------------------------------------
def add_preprocess_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("preprocess", help="run a transform pipeline over DICOM series or npy/npz arrays",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="a directory tree of DICOM series and/or .npy/.npz files, or one file")
    p.add_argument("output", help="output directory (created); one file per series + manifest")
    p.add_argument("--config", required=True, help="pipeline YAML: seed, out_dtype, transforms: [{Name: {args}}]")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--shard", default="0/1", help="i/n: process only items i, i+n, ... (default 0/1)")
    p.add_argument("--format", choices=("npy", "npz"), default="npy", help="output format (npz also stores spacing)")
    p.add_argument("--preview", action="store_true", help="also write preview.png: inputs and outputs side by side")
    p.set_defaults(func=run_preprocess)
    p.epilog = "exit status: 0 all items ok, 1 some items failed (see the manifest), 2 bad arguments or config"
    return p


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"argument '--shard' must be i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"argument '--shard' needs 0 <= i < n, got {text!r}")
    return i, n


MANIFEST_PATTERN = re.compile(r"manifest(?:\.shard(\d+)of(\d+))?\.jsonl")


def _manifest_path(out_dir: Path, shard: tuple[int, int]) -> Path:
    i, n = shard
    return out_dir / ("manifest.jsonl" if n == 1 else f"manifest.shard{i}of{n}.jsonl")


def manifest_shard(path: Path) -> tuple[int, int] | None:
    """(i, n) of a manifest written by ``--shard i/n`` ((0, 1) for ``manifest.jsonl``), or None
    for a file that is not a manifest: the inverse of the naming rule above."""
    match = MANIFEST_PATTERN.fullmatch(Path(path).name)
    if match is None:
        return None
    return (0, 1) if match.group(1) is None else (int(match.group(1)), int(match.group(2)))


def _read_manifest(path: Path) -> dict:
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
                records[_key(r)] = r
            except (ValueError, KeyError):
                continue  # a line cut by an interruption
    return records


def _key(record: dict) -> tuple:
    return record["source"], record.get("series_uid")


def run_preprocess(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    try:
        shard = _parse_shard(args.shard)
        if args.workers < 1:
            raise ValueError(f"argument '--workers' must be >= 1, got {args.workers}")
        if not os.path.exists(args.input):
            raise ValueError(f"argument 'input': {args.input} does not exist")
        config = load_config(args.config)
        build_pipeline(config)  # reject a bad config before any work
    except (ValueError, TypeError, OSError) as e:
        print(f"medkern preprocess: error: {e}", file=sys.stderr)
        return 2
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = find_items(args.input)
    fmt = getattr(args, "format", "npy")
    _remove_own_leftovers(out_dir, items, shard, fmt)
    manifest = _manifest_path(out_dir, shard)
    records = _read_manifest(manifest)
    todo = []
    for index, item in enumerate(items):
        if index % shard[1] != shard[0]:
            continue
        done = records.get(_key(item))
        if done and done["status"] == "ok" and done.get("output") and os.path.exists(done["output"]):
            continue
        todo.append((item, index, config, str(out_dir), fmt))
    with open(manifest, "a") as log:
        def finished(record):
            records[_key(record)] = record
            log.write(json.dumps(record) + "\n")
            log.flush()
        jobs = iter(todo)
        if args.workers == 1:
            results = map(_process, jobs)
            for record in tqdm(results, total=len(todo), desc="preprocess", unit="series", disable=None):
                finished(record)
        else:
            import multiprocessing as mp
            from . import _backend
            ctx = mp.get_context("spawn")
            threads = max(1, _backend._C.get_num_threads() // args.workers)
            with ctx.Pool(args.workers, initializer=_worker_init, initargs=(threads,)) as pool:
                for record in tqdm(pool.imap(_process, jobs), total=len(todo), desc="preprocess", unit="series",
                                   disable=None):
                    finished(record)
    # one line per item, in item order, replacing the appended log
    ordered = [records[_key(it)] for i, it in enumerate(items)
               if i % shard[1] == shard[0] and _key(it) in records]
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in ordered))
    os.replace(tmp, manifest)
    failed = sum(r["status"] != "ok" for r in ordered)
    print(f"medkern preprocess: {len(ordered) - failed} ok, {failed} failed, {len(items)} items in total "
          f"(shard {shard[0]}/{shard[1]}); manifest {manifest}")
    if args.preview:
        write_preview(ordered, out_dir / "preview.png", items)
    return 0 if failed == 0 else 1


def _worker_init(threads: int) -> None:
    from . import _backend
    _backend._C.set_num_threads(threads)


def write_preview(records: list, path: Path, items: list, limit: int = 8) -> None:
    """A grid: the input's middle slice (left) and the output's (right) for the first items."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_key = {_key(it): it for it in items}
    ok = [r for r in records if r["status"] == "ok"][:limit]
    if not ok:
        return
    fig, axes = plt.subplots(len(ok), 2, figsize=(6, 3 * len(ok)), squeeze=False)
    for row, r in enumerate(ok):
        batch = _load(by_key[_key(r)])[0][0, 0]
        out = np.load(r["output"]) if r["output"].endswith(".npy") else np.load(r["output"])["image"]
        out = out[0]
        for col, (img, title) in enumerate(((batch, "input"), (out, "output"))):
            img = np.asarray(img, dtype=np.float32)
            img = img[img.shape[0] // 2] if img.ndim == 3 else img
            axes[row, col].imshow(img, cmap="gray")
            axes[row, col].set_title(f"{title} {Path(r['source']).name}", fontsize=8)
            axes[row, col].axis("off")
    fig.tight_layout()
    tmp = path.with_name(".preview.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
