"""Segmentation metrics on label maps: Dice and the 95th-percentile Hausdorff distance (HD95, in
mm from the voxel spacing) per foreground class, with the conventions of the Decathlon and
nnU-Net: a class absent from both reference and prediction has no Dice (NaN, left out of means);
HD95 is NaN when either side lacks the class."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["dice_per_class", "hd95_per_class", "mean_ignoring_nan", "soft_dice_score"]


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape:
        raise ValueError(f"argument 'pred': shape {pred.shape} differs from argument 'ref' {ref.shape}")
    for name, a in (("pred", pred), ("ref", ref)):
        if a.size == 0:
            raise ValueError(f"argument '{name}' is empty")
        if a.dtype.kind not in "iub":
            raise TypeError(f"argument '{name}' must hold integer class indices, got dtype {a.dtype}")


def dice_per_class(pred, ref, num_classes: int) -> np.ndarray:
    """Dice 2|P∩R| / (|P| + |R|) of classes 1 .. num_classes - 1 (background left out), float64;
    NaN for a class in neither map."""
    pred, ref = _as_numpy(pred), _as_numpy(ref)
    _check_pair(pred, ref)
    out = np.full(num_classes - 1, math.nan)
    # one pass: a joint histogram of (ref, pred) pairs
    joint = np.bincount(ref.astype(np.int64).ravel() * num_classes + np.clip(pred.astype(np.int64).ravel(), 0,
                                                                            num_classes - 1),
                        minlength=num_classes * num_classes)[: num_classes * num_classes].reshape(num_classes,
                                                                                                 num_classes)
    for c in range(1, num_classes):
        inter, size_ref, size_pred = joint[c, c], joint[c, :].sum(), joint[:, c].sum()
        if size_ref + size_pred > 0:
            out[c - 1] = 2.0 * inter / (size_ref + size_pred)
    return out


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1),
                                          border_value=0)


def hd95_per_class(pred, ref, num_classes: int, spacing=None) -> np.ndarray:
    """95th percentile of the symmetric surface distances (mm) per foreground class; NaN when the
    class is missing from either map."""
    from scipy import ndimage

    pred, ref = _as_numpy(pred), _as_numpy(ref)
    _check_pair(pred, ref)
    spacing = (1.0,) * ref.ndim if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != ref.ndim:
        raise ValueError(f"argument 'spacing' needs {ref.ndim} values, got {len(spacing)}")
    out = np.full(num_classes - 1, math.nan)
    for c in range(1, num_classes):
        p, r = pred == c, ref == c
        if not p.any() or not r.any():
            continue
        sp, sr = _surface(p), _surface(r)
        to_r = ndimage.distance_transform_edt(~sr, sampling=spacing)[sp]
        to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)[sr]
        out[c - 1] = float(np.percentile(np.concatenate([to_r, to_p]), 95))
    return out


def mean_ignoring_nan(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def soft_dice_score(probabilities, onehot, eps: float = 1e-5):
    """Soft Dice per class over a batch (torch): sum(p * g) terms over batch and space, as
    nnU-Net's batch Dice; returns a (C,) tensor."""
    dims = (0,) + tuple(range(2, probabilities.dim()))
    inter = (probabilities * onehot).sum(dims)
    return (2 * inter + eps) / (probabilities.sum(dims) + onehot.sum(dims) + eps)
