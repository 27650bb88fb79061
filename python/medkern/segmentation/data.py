"""Opening a segmentation folder for training or evaluation: a decathlon task (``dataset.json``)
or a 2-D image/mask folder with a CSV, read into memory as ``CaseArrays``; the cases that cannot
be read are reported and left out; the split into training and validation keeps a subject's
cases together."""
from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.segmentation import CaseError, DecathlonDataset, ImageMaskFolder
from .patches import CaseArrays, prepare_case

__all__ = ["SegmentationData", "open_segmentation_data", "split_by_subject"]


@dataclasses.dataclass
class SegmentationData:
    name: str
    root: Path
    spatial_dims: int
    in_channels: int
    class_names: dict          # {index: name}, background included
    cases: list                # CaseArrays
    subjects: list             # per case
    skipped: list              # CaseError of the cases left out
    mirror_axes: tuple | None = None  # spatial axes (negative) that augmentation may mirror; None: all

    @property
    def num_classes(self) -> int:
        return max(self.class_names) + 1


def open_segmentation_data(root, csv: str = "labels.csv", spacing_column: str | None = "pixel_size_mm",
                           max_cases: int | None = None, seed: int = 0,
                           log: Callable[[str], None] | None = None, progress: bool = False) -> SegmentationData:
    """Reads every case of ``root`` (a decathlon task or an image/mask folder) into memory."""
    from tqdm.auto import tqdm

    log = log or (lambda message: None)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"argument 'data': {root} is not a folder")
    if (root / "dataset.json").is_file():
        source = DecathlonDataset(root)
        class_names, name = dict(source.labels), source.name
    elif (root / csv).is_file():
        import csv as csvlib
        with open(root / csv, newline="") as f:
            columns = csvlib.DictReader(f).fieldnames or []
        source = ImageMaskFolder(root, csv=csv, spacing_column=spacing_column if spacing_column in columns else None)
        class_names, name = None, root.name
    else:
        raise FileNotFoundError(f"argument 'data': {root} holds neither a dataset.json (decathlon task) nor "
                                f"{csv} (image/mask folder)")
    indices = list(range(len(source)))
    if max_cases is not None:
        indices = indices[:max_cases]
    raw, skipped = [], []
    for i in tqdm(indices, desc="reading cases", unit="case", disable=not progress, leave=False):
        try:
            case = source[i]
        except CaseError as err:
            skipped.append(err)
            log(f"skipped: {err}")
            continue
        raw.append(case)
    if not raw:
        raise ValueError(f"argument 'data': no readable case in {root} ({len(skipped)} skipped)")
    spatial_dims = raw[0].label.pixels.ndim
    if class_names is None:
        top = max(int(c.label.pixels.max()) for c in raw)
        class_names = {0: "background", **{k: f"class {k}" for k in range(1, max(top, 1) + 1)}}
        if top == 1:
            class_names[1] = "foreground"
    num_classes = max(class_names) + 1
    cases, subjects = [], []
    for case in raw:
        try:
            cases.append(prepare_case(case.name, case.image.rescaled() if case.image.slope != 1 or
                                      case.image.intercept != 0 else case.image.pixels,
                                      case.label.pixels, case.image.spacing, num_classes, seed=seed))
            subjects.append(case.subject or case.name)
        except ValueError as err:
            skipped.append(CaseError(case.image.files[0] if case.image.files else case.name, str(err)))
            log(f"skipped: {err}")
    in_channels = cases[0].image.shape[0]
    return SegmentationData(name, root, spatial_dims, in_channels, class_names, cases, subjects, skipped,
                            mirror_axes=left_right_axes(raw[0].image, spatial_dims))


def left_right_axes(volume, spatial_dims: int) -> tuple | None:
    """The axes a mirror keeps anatomically plausible: for a volume with a patient geometry, the one
    array axis along the patient's left-right direction (a reflection in the sagittal plane gives
    the other side's anatomy; one front-to-back or top-to-bottom does not, and it swaps regions
    such as the anterior and posterior hippocampus). None (every axis) for 2-D images and volumes
    without a direction."""
    direction = getattr(volume, "direction", None)
    if spatial_dims != 3 or direction is None:
        return None
    d = np.abs(np.asarray(direction, dtype=float))
    if d.shape != (3, 3):
        return None
    column = int(np.argmax(d[0]))  # columns: patient directions of the W, H and D axes
    return (-(column + 1),)


def split_by_subject(subjects: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """(train indices, val indices): whole subjects, shuffled with ``seed``, about ``val_fraction``
    of the cases to validation (at least one subject when the fraction is > 0 and there are two)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"argument 'val_fraction' must be in [0, 1), got {val_fraction}")
    unique = sorted(set(subjects))
    order = np.random.default_rng(seed).permutation(len(unique))
    target = val_fraction * len(subjects)
    val_subjects, count = set(), 0
    counts = collections.Counter(subjects)
    for k in order:
        if count >= target or (val_fraction > 0 and len(val_subjects) == len(unique) - 1):
            break
        val_subjects.add(unique[k])
        count += counts[unique[k]]
    train = [i for i, s in enumerate(subjects) if s not in val_subjects]
    val = [i for i, s in enumerate(subjects) if s in val_subjects]
    return train, val
