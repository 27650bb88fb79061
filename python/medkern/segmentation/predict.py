"""Label maps from a segmentation checkpoint: each input (a NIfTI volume or a 2-D image) is
z-scored as in training, predicted by the sliding window (optionally mirrored) and written under
the input's file name: NIfTI with the input's affine and header, PNG for images (a two-class
task as 0/255, as masks are usually stored; more classes as their indices)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..data.segmentation import _stem, read_png
from ..io.nifti import is_nifti, read_nifti, write_nifti
from ..io.volume import ImageFileError
from .inference import sliding_window
from .patches import zscore

__all__ = ["collect_inputs", "predict_case", "predict_files", "write_label_map"]

IMAGE_SUFFIXES = (".png",)


def collect_inputs(inputs: Iterable) -> list[Path]:
    """Files as given, folders expanded to their .nii / .nii.gz / .png files (sorted)."""
    out = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and (is_nifti(p) or p.suffix.lower() == ".png"))
            if not found:
                raise FileNotFoundError(f"argument INPUT: {path} holds no .nii, .nii.gz or .png file")
            out += found
        elif path.is_file():
            if not (is_nifti(path) or path.suffix.lower() in IMAGE_SUFFIXES):
                raise ValueError(f"argument INPUT: {path} is not a .nii, .nii.gz or .png file")
            out.append(path)
        else:
            raise FileNotFoundError(f"argument INPUT: {path} not found")
    return out


def tta_mirror(meta: dict, tta: bool):
    """What predict --tta mirrors: the axes the checkpoint's training mirrored (its
    normalization's mirror_axes; every axis where it has none recorded), or nothing without --tta."""
    if not tta:
        return False
    axes = (meta.get("normalization") or {}).get("mirror_axes")
    return True if axes is None else tuple(int(a) for a in axes)


def predict_case(model, image: np.ndarray, patch, num_classes: int, spatial_dims: int, mirror=False,
                 device=None, batch_size: int = 4) -> np.ndarray:
    """Label map (uint8, spatial shape of ``image``) of one image ((C, *spatial) or (*spatial))."""
    image = np.asarray(image)
    if image.ndim == spatial_dims:
        image = image[None]
    logits = sliding_window(model, zscore(image), patch, num_classes=num_classes, mirror=mirror, device=device,
                            batch_size=batch_size)
    return logits.argmax(0).to(torch.uint8).cpu().numpy()


def write_label_map(path: Path, label: np.ndarray, like, num_classes: int) -> Path:
    if is_nifti(path):
        return write_nifti(path, label.astype(np.uint8), like=like)
    from PIL import Image
    values = (label * 255).astype(np.uint8) if num_classes == 2 else label.astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(values).save(tmp)
    tmp.replace(path)
    return path


def predict_files(model, meta: dict, inputs: Iterable, output_dir, mirror: bool = False, device=None,
                  log: Callable[[str], None] | None = None, progress: bool = False) -> tuple[list, list]:
    """(written paths, errors): every input predicted and written into ``output_dir``; an input
    that cannot be read or does not fit the model is reported and the rest go on."""
    from tqdm.auto import tqdm

    log = log or (lambda message: None)
    norm = meta.get("normalization") or {}
    patch, spatial_dims = tuple(norm["patch"]), int(norm["spatial_dims"])
    num_classes, in_channels = int(meta["num_classes"]), int(meta["in_channels"])
    output_dir = Path(output_dir)
    written, errors = [], []
    for path in tqdm(collect_inputs(inputs), desc="predicting", unit="image", disable=not progress):
        try:
            volume = read_nifti(path) if is_nifti(path) else read_png(path)
            image = volume.rescaled() if (volume.slope, volume.intercept) != (1.0, 0.0) else volume.pixels
            if image.ndim == spatial_dims:
                image = image[None]
            if image.ndim != spatial_dims + 1 or image.shape[0] != in_channels:
                raise ImageFileError(path, f"shape {volume.shape} does not fit the model ({spatial_dims}-D, "
                                           f"{in_channels} channel{'s' if in_channels > 1 else ''})")
            label = predict_case(model, image, patch, num_classes, spatial_dims, mirror=tta_mirror(meta, mirror),
                                 device=device)
            suffix = ".nii.gz" if str(path).lower().endswith(".nii.gz") else path.suffix
            target = output_dir / f"{_stem(path)}{suffix}"
            written.append(write_label_map(target, label, volume, num_classes))
        except (ImageFileError, ValueError) as err:
            errors.append(f"{path}: {getattr(err, 'reason', err)}")
            log(f"skipped: {errors[-1]}")
    return written, errors
