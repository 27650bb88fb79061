"""Segmentation datasets: the Medical Segmentation Decathlon layout (``dataset.json``,
``imagesTr/``, ``labelsTr/``: what nnU-Net and MONAI read) and 2-D image/mask folders listed in a
CSV (Pillow). Each item is a ``SegmentationCase``: image and label as ``medkern.io.Volume`` in
the readers' (D,) H, W order, a name, the subject it belongs to (for splits that keep a
patient's images together) and the CSV row. Every problem with a case (an unreadable file, an
image without its label, image and label of different shape or geometry) raises a
``CaseError`` naming the file; ``check()`` lists them all without stopping at the first.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.nifti import read_nifti
from ..io.volume import ImageFileError, Volume

__all__ = ["SegmentationCase", "CaseError", "DecathlonDataset", "ImageMaskFolder", "read_png"]


class CaseError(ImageFileError):
    """A case that cannot be used: the message names the file and why."""


@dataclasses.dataclass
class SegmentationCase:
    name: str
    image: Volume
    label: Volume | None
    subject: str = ""
    row: dict = dataclasses.field(default_factory=dict)


def _check_pair(image: Volume, label: Volume, image_path, label_path) -> None:
    spatial = image.shape[-label.pixels.ndim:] if image.pixels.ndim > label.pixels.ndim else image.shape
    if tuple(spatial) != tuple(label.shape):
        raise CaseError(label_path, f"label shape {tuple(label.shape)} differs from the image's {tuple(spatial)} "
                                    f"({image_path})")
    if image.affine is not None and label.affine is not None and not np.allclose(
            image.affine, label.affine, rtol=1e-4, atol=1e-3):
        raise CaseError(label_path, f"label affine differs from the image's ({image_path}): "
                                    f"{label.affine.round(4).tolist()} vs {image.affine.round(4).tolist()}")
    if not np.issubdtype(label.pixels.dtype, np.integer):
        values = label.pixels
        if not np.all(values == np.round(values)) or values.min() < 0:
            raise CaseError(label_path, "label map holds values that are not class indices (non-integer or negative)")


class _Cases(Sequence):
    """The common part: a list of (image path, label path or None, subject, row) read on demand."""

    def __init__(self, items: list[tuple[Path, Path | None, str, dict]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> SegmentationCase:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} cases")
        image_path, label_path, subject, row = self.items[index]
        image = self._read(image_path, row)
        label = None
        if label_path is not None:
            if not label_path.is_file():
                raise CaseError(label_path, f"label file not found for image {image_path}")
            label = self._read(label_path, row, is_label=True)
            _check_pair(image, label, image_path, label_path)
        return SegmentationCase(name=_stem(image_path), image=image, label=label, subject=subject, row=row)

    def check(self) -> list[CaseError]:
        """Reads every case; returns the errors (each naming its file) instead of raising."""
        problems = []
        for i in range(len(self)):
            try:
                self[i]
            except ImageFileError as e:
                problems.append(e if isinstance(e, CaseError) else CaseError(e.path, e.reason))
        return problems

    def subjects(self) -> list[str]:
        return [subject for _, _, subject, _ in self.items]

    def _read(self, path: Path, row: dict, is_label: bool = False) -> Volume:
        raise NotImplementedError


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".png"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


class DecathlonDataset(_Cases):
    """A Medical Segmentation Decathlon task folder: ``root/dataset.json`` lists the cases of
    ``section`` ("training": image and label; "test": images only). ``labels`` maps class index to
    name, ``modalities`` channel index to modality, ``name`` is the task's name."""

    def __init__(self, root, section: str = "training"):
        self.root = Path(root)
        manifest = self.root / "dataset.json"
        if section not in ("training", "test"):
            raise ValueError(f"section: expected 'training' or 'test', got {section!r}")
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest}: no dataset.json (root must be a decathlon task folder)")
        try:
            meta = json.loads(manifest.read_text())
            entries = meta.get(section, [])
            self.labels = {int(k): str(v) for k, v in meta.get("labels", {"0": "background"}).items()}
            self.modalities = {int(k): str(v) for k, v in meta.get("modality", {"0": ""}).items()}
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"{manifest}: not a decathlon dataset.json ({type(e).__name__}: {e})") from e
        self.name = str(meta.get("name", self.root.name))
        items = []
        for k, entry in enumerate(entries):
            if isinstance(entry, str):
                image, label = entry, None
            elif isinstance(entry, dict) and "image" in entry:
                image, label = entry["image"], entry.get("label")
            else:
                raise ValueError(f"{manifest}: entry {k} of {section!r} has no 'image': {entry!r}")
            image_path = (self.root / image).resolve()
            label_path = (self.root / label).resolve() if label else None
            items.append((image_path, label_path, _stem(image_path), {}))
        if section == "training" and any(label is None for _, label, _, _ in items):
            missing = next(str(i) for i, label, _, _ in items if label is None)
            raise ValueError(f"{manifest}: training entry for {missing} names no label")
        super().__init__(items)

    def _read(self, path: Path, row: dict, is_label: bool = False) -> Volume:
        try:
            return read_nifti(path)
        except ImageFileError as e:
            raise CaseError(e.path, e.reason) from e


def read_png(path, is_label: bool = False, spacing=(1.0, 1.0)) -> Volume:
    """A 2-D image file (PNG or anything Pillow reads) -> Volume (H, W). Colour images are read as
    grey (ITU-R 601 luma); 16-bit images keep their values. A label image holding only 0 and 255
    is read as 0/1; otherwise its values are the class indices (palette images: the indices)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise CaseError(path, "file not found")
    try:
        with Image.open(path) as img:
            if img.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr") or (img.mode == "P" and not is_label):
                img = img.convert("L")
            pixels = np.array(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise CaseError(path, f"unreadable image ({type(e).__name__}: {e})") from e
    if pixels.ndim != 2 or pixels.size == 0:
        raise CaseError(path, f"expected a 2-D image, got shape {pixels.shape}")
    if is_label:
        if pixels.dtype == np.bool_:
            pixels = pixels.astype(np.uint8)
        values = np.unique(pixels)
        if values.max() == 255 and set(values.tolist()) <= {0, 255}:
            pixels = (pixels > 0).astype(np.uint8)
    return Volume(pixels=pixels, spacing=tuple(float(s) for s in spacing), origin=(0.0, 0.0, 0.0),
                  direction=np.eye(3), files=[str(path)])


class ImageMaskFolder(_Cases):
    """2-D images and their masks, listed in ``root/csv`` (columns ``image_column`` and
    ``mask_column``, paths relative to root; ``subject_column`` groups images of one subject,
    default the image's name; ``spacing_column`` gives the pixel size in mm, default 1). With
    ``csv=None`` it pairs ``root/images/NAME`` with ``root/masks/NAME``. Every CSV column is kept
    in the case's ``row``."""

    def __init__(self, root, csv: str | None = "labels.csv", image_column: str = "image",
                 mask_column: str = "mask", subject_column: str = "subject", spacing_column: str | None = None):
        self.root = Path(root)
        self.spacing_column = spacing_column
        items = []
        if csv is None:
            images = sorted(p for p in (self.root / "images").glob("*") if p.is_file())
            if not images:
                raise FileNotFoundError(f"{self.root / 'images'}: no image files")
            items = [(p, self.root / "masks" / p.name, _stem(p), {}) for p in images]
        else:
            table = self.root / csv
            if not table.is_file():
                raise FileNotFoundError(f"{table}: no such CSV file")
            with open(table, newline="") as f:
                reader = _csv_rows(table, f)
                for line, row in reader:
                    for column in (image_column, mask_column):
                        if not row.get(column):
                            raise ValueError(f"{table}: line {line} has no {column!r} value")
                    if spacing_column is not None:
                        try:
                            if not float(row.get(spacing_column, "")) > 0:
                                raise ValueError
                        except ValueError:
                            raise ValueError(f"{table}: line {line}: {spacing_column!r} is not a positive "
                                             f"number: {row.get(spacing_column)!r}") from None
                    image = self.root / row[image_column]
                    subject = row.get(subject_column) or _stem(image)
                    items.append((image, self.root / row[mask_column], subject, row))
            if not items:
                raise ValueError(f"{table}: no rows")
        super().__init__(items)

    def _read(self, path: Path, row: dict, is_label: bool = False) -> Volume:
        size = float(row[self.spacing_column]) if self.spacing_column is not None and row else 1.0
        return read_png(path, is_label=is_label, spacing=(size, size))


def _csv_rows(table: Path, f):
    reader = csv.DictReader(f)
    if not reader.fieldnames:
        raise ValueError(f"{table}: empty CSV (no header row)")
    for line, row in enumerate(reader, start=2):
        yield line, row
