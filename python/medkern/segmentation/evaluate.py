"""Evaluating label maps against references: Dice and HD95 (mm, from the reference's spacing)
per foreground class and case, and their means (NaN-free JSON: a class absent from both maps
counts as no value). Predictions come from files (``--pred``, matched to the reference cases by
name) or from a checkpoint run on the cases."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data.segmentation import CaseError, DecathlonDataset, ImageMaskFolder, read_png
from ..io.nifti import read_nifti
from .metrics import dice_per_class, hd95_per_class, mean_ignoring_nan

__all__ = ["evaluate_label_maps", "evaluate_predictions", "reference_source"]


def reference_source(root, csv: str = "labels.csv"):
    """(cases, class names) of a decathlon task or an image/mask folder."""
    root = Path(root)
    if (root / "dataset.json").is_file():
        ds = DecathlonDataset(root)
        return ds, dict(ds.labels)
    if (root / csv).is_file():
        return ImageMaskFolder(root, csv=csv), None
    raise FileNotFoundError(f"argument --ref/--data: {root} holds neither dataset.json nor {csv}")


def _summary(rows: list, names: list) -> dict:
    dice = np.array([[r["dice"][n] if r["dice"][n] is not None else np.nan for n in names] for r in rows])
    hd = np.array([[r["hd95"][n] if r["hd95"][n] is not None else np.nan for n in names] for r in rows])
    per_class = {n: {"dice": mean_ignoring_nan(dice[:, j]), "hd95": mean_ignoring_nan(hd[:, j])}
                 for j, n in enumerate(names)}
    return {"mean_dice": mean_ignoring_nan([v["dice"] for v in per_class.values()]),
            "mean_hd95": mean_ignoring_nan([v["hd95"] for v in per_class.values()]),
            "per_class": per_class, "cases": rows}


def _row(name: str, pred: np.ndarray, ref: np.ndarray, spacing, names: list) -> dict:
    k = len(names) + 1
    d, h = dice_per_class(pred, ref, k), hd95_per_class(pred, ref, k, spacing)
    clean = lambda v: None if np.isnan(v) else float(v)  # noqa: E731
    return {"case": name, "dice": {n: clean(d[j]) for j, n in enumerate(names)},
            "hd95": {n: clean(h[j]) for j, n in enumerate(names)}}


def _class_names(class_names: dict | None, top: int) -> list:
    if class_names:
        return [class_names[k] for k in sorted(class_names) if k > 0]
    return ["foreground"] if top <= 1 else [f"class {k}" for k in range(1, top + 1)]


def evaluate_label_maps(pred_dir, ref_root, csv: str = "labels.csv",
                        log: Callable[[str], None] | None = None) -> dict:
    """Dice / HD95 of the label maps in ``pred_dir`` (``NAME.nii.gz``, ``NAME.nii`` or ``NAME.png``
    for each reference case NAME) against ``ref_root``; missing or unreadable predictions are
    listed under "missing" / "errors"."""
    log = log or (lambda message: None)
    source, class_names = reference_source(ref_root, csv)
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"argument --pred: {pred_dir} is not a folder")
    refs, missing, errors = [], [], []
    for i in range(len(source)):
        try:
            case = source[i]
        except CaseError as err:
            errors.append(str(err))
            log(f"skipped: {err}")
            continue
        found = [pred_dir / f"{case.name}{s}" for s in (".nii.gz", ".nii", ".png")]
        found = [p for p in found if p.is_file()]
        if not found:
            missing.append(case.name)
            continue
        try:
            pred = read_nifti(found[0]) if found[0].suffix != ".png" else read_png(found[0], is_label=True)
        except CaseError as err:
            errors.append(str(err))
            continue
        except ValueError as err:
            errors.append(str(err))
            continue
        if pred.shape != case.label.shape:
            errors.append(f"{found[0]}: shape {pred.shape} differs from the reference's {case.label.shape}")
            continue
        refs.append((case, pred.pixels))
    if not refs:
        raise ValueError(f"argument --pred: no prediction in {pred_dir} matches a case of {ref_root}")
    top = max(int(c.label.pixels.max()) for c, _ in refs)
    names = _class_names(class_names, top)
    rows = [_row(c.name, p.astype(np.int64), c.label.pixels.astype(np.int64), c.label.spacing, names)
            for c, p in refs]
    return {**_summary(rows, names), "missing": missing, "errors": errors}


def evaluate_predictions(items, class_names: dict) -> dict:
    """``items``: (name, predicted label map, reference label map, spacing) tuples."""
    names = _class_names(class_names, 1)
    rows = [_row(n, np.asarray(p).astype(np.int64), np.asarray(r).astype(np.int64), s, names) for n, p, r, s in items]
    return _summary(rows, names)
