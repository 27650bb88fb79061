"""A torch Dataset with one item per DICOM series found under a directory tree: headers are
scanned once at construction (medkern.io.scan_series), pixels are read when an item is asked
for, so DataLoader workers share nothing but the list of files.

An optional medkern Pipeline runs per item keyed by the dataset index, so an item's
augmentation is the same whatever the batch split or worker count (see BatchAugment for the
faster variant that augments whole batches on the GPU after collation).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..io.dicom import DicomError, Volume, read_dicom, read_dicom_series, scan_series
from ..transforms.pipeline import Pipeline

__all__ = ["SeriesInfo", "DicomSeriesDataset"]


@dataclasses.dataclass(frozen=True)
class SeriesInfo:
    """What is known of a series (``medkern.io.SeriesKey``: a SeriesInstanceUID within one
    directory) before its pixels are read: its UID, its files (sorted paths), and ``path``: the
    directory holding its files (the file itself for a one-file series). ``label_fn`` receives this."""

    uid: str
    files: tuple
    path: str


def _not_dicom(reason: str) -> bool:
    """scan_series' reason for a file that is simply not DICOM (notes, thumbnails): ignored,
    unlike a DICOM file whose header is damaged."""
    return reason.startswith("not a DICOM file") or reason == "file not found"


class DicomSeriesDataset(torch.utils.data.Dataset):
    """``DicomSeriesDataset(root, transform=None, label_fn=None, cache=False, skip_errors=False,
    rescale=True, strict=False)``: one item per DICOM series under ``root``.

    Series are found by ``medkern.io.scan_series`` (one series = one SeriesInstanceUID within one
    directory, the same rule as ``medkern preprocess``) and ordered by the path of their first
    file relative to ``root``, then UID, so the order (and hence every index) is
    the same on every machine holding the same tree. ``dataset[i]`` is a dict:

    - ``"image"``: (C, D, H, W) tensor; C = 1 for grayscale (samples per pixel otherwise).
      ``rescale=True`` (default): float32 stored value * RescaleSlope + RescaleIntercept (HU for
      CT); ``rescale=False``: the stored integer dtype, unchanged. A single-frame file gives D = 1.
    - ``"spacing"``: float64 tensor (dz, dy, dx) in mm of the source (dz = 1.0 for a single
      frame, where DICOM gives no slice step); a geometric ``transform`` does not update it.
    - ``"series_uid"``, ``"path"`` (see ``SeriesInfo``), ``"index"`` (= i, what BatchAugment
      and the Pipeline use as the Philox key) and ``"label"`` when ``label_fn`` is given.

    ``transform``: a ``medkern.transforms.Pipeline``, run on the item as a batch of one with
    ``indices=[i]`` and the item's spacing (so the draws depend on the index alone: change the
    pipeline's seed per epoch for new draws), or any other callable taking the image tensor.
    ``label_fn(SeriesInfo)`` is called once per series at construction (labels in
    ``self.labels``). ``cache=True`` keeps each item's untransformed image in memory after its
    first read (per process: every DataLoader worker holds its own copy).

    Errors: ``root`` missing, not a directory, or holding no DICOM series raise ValueError
    naming 'root'. A series that cannot be read raises ``medkern.io.DicomError`` naming the file
    when its item is read; a DICOM file whose header is damaged raises at construction. With
    ``skip_errors=True`` every series is read once at construction (a full pass over the data,
    kept when ``cache=True``) and the unreadable ones are dropped with one warning listing them
    (also in ``self.skipped`` as (path, reason)). Files that are not DICOM at all are ignored
    (listed in ``self.ignored``). ``strict`` is passed to ``medkern.io.read_dicom_series``.
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 label_fn: Callable[[SeriesInfo], Any] | None = None, cache: bool = False,
                 skip_errors: bool = False, rescale: bool = True, strict: bool = False):
        root_path = Path(root)
        if not root_path.exists():
            raise ValueError(f"argument 'root': {root_path} does not exist")
        if not root_path.is_dir():
            raise ValueError(f"argument 'root': {root_path} is not a directory")
        if transform is not None and not callable(transform):
            raise TypeError(f"argument 'transform' must be a medkern Pipeline or a callable, "
                            f"got {type(transform).__name__}")
        if label_fn is not None and not callable(label_fn):
            raise TypeError(f"argument 'label_fn' must be callable, got {type(label_fn).__name__}")
        self.root = root_path
        self.transform, self.rescale, self.strict, self.cache = transform, bool(rescale), bool(strict), bool(cache)
        self._cache: dict = {}

        groups, failed = scan_series(root_path)
        self.ignored = [(path, reason) for path, reason in failed if _not_dicom(reason)]
        self.skipped = [(path, reason) for path, reason in failed if not _not_dicom(reason)]
        if self.skipped and not skip_errors:
            path, reason = self.skipped[0]
            raise DicomError(path, f"{reason} (pass skip_errors=True to drop unreadable series)")

        def order(item):
            key, files = item
            return (os.path.relpath(files[0], root_path).replace(os.sep, "/"), key.uid)

        self.series = [SeriesInfo(uid=key.uid, files=tuple(files), path=files[0] if len(files) == 1 else key.folder)
                       for key, files in sorted(groups.items(), key=order)]
        if skip_errors:
            kept = []
            for info in self.series:
                try:
                    image, spacing = self._load(info)
                except DicomError as e:
                    self.skipped.append((e.path, e.reason))
                    continue
                if self.cache:
                    self._cache[info] = (image, spacing)
                kept.append(info)
            self.series = kept
            if self.skipped:
                listing = "; ".join(f"{path}: {reason}" for path, reason in self.skipped)
                warnings.warn(f"DicomSeriesDataset: skipped {len(self.skipped)} unreadable file(s)/series under "
                              f"{root_path}: {listing}", UserWarning, stacklevel=2)
        if not self.series:
            raise ValueError(f"argument 'root': no readable DICOM series under {root_path}"
                             + (f" ({len(self.ignored)} non-DICOM file(s) ignored)" if self.ignored else ""))
        self.labels = None if label_fn is None else [label_fn(info) for info in self.series]

    def __len__(self) -> int:
        return len(self.series)

    def _load(self, info: SeriesInfo) -> tuple:
        """(image tensor (C, D, H, W), spacing (dz, dy, dx)) of one series, before ``transform``."""
        if len(info.files) == 1:  # one file: a single frame or a multi-frame object
            volume = read_dicom(info.files[0])
        else:
            volume = read_dicom_series(list(info.files), strict=self.strict)
        return _to_image(volume, self.rescale)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} series")
        index = index % len(self)
        info = self.series[index]
        cached = self._cache.get(info)
        image, spacing = cached if cached is not None else self._load(info)
        if self.cache and cached is None:
            self._cache[info] = (image, spacing)
        if isinstance(self.transform, Pipeline):
            image = self.transform(image[None], spacing=spacing, indices=[index])[0]
        elif self.transform is not None:
            image = self.transform(image)
        item = {"image": image, "spacing": torch.tensor(spacing, dtype=torch.float64),
                "series_uid": info.uid, "path": info.path, "index": index}
        if self.labels is not None:
            item["label"] = self.labels[index]
        return item


def _to_image(volume: Volume, rescale: bool) -> tuple:
    pixels = volume.pixels
    spacing = tuple(float(s) for s in volume.spacing)
    # a trailing samples axis (RGB) is there exactly when pixels have one axis more than spacing
    samples = pixels.ndim == len(spacing) + 1
    if samples:
        pixels = np.moveaxis(pixels, -1, 0)
    else:
        pixels = pixels[None]
    if len(spacing) == 2:  # a single frame: D = 1, and DICOM gives no slice step
        pixels = pixels[:, None]
        spacing = (1.0,) + spacing
    if rescale:
        pixels = pixels.astype(np.float32) * np.float32(volume.slope) + np.float32(volume.intercept)
    return torch.from_numpy(np.ascontiguousarray(pixels)), spacing
