"""DICOM reading on pydicom: one file (incl. multi-frame) or one series -> a ``Volume`` that keeps
the stored integer pixels and the geometry needed to resample them (spacing, origin, direction).

Slices are ordered by the projection of ImagePositionPatient on the slice normal (the cross
product of the ImageOrientationPatient row and column cosines), never by InstanceNumber. The
z spacing is the median step; uneven steps and missing slices are reported in
``Volume.warnings`` (and raise with ``strict=True``), never silently averaged away.
"""
from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from .volume import ImageFileError, Volume

__all__ = ["Volume", "DicomError", "SeriesKey", "read_dicom", "read_dicom_series", "scan_series"]


class DicomError(ImageFileError):
    """A file that cannot be read as DICOM image data; the message names the file and why."""


def _read_dataset(path, stop_before_pixels: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as e:
        raise DicomError(path, f"not a DICOM file ({e})") from e
    except FileNotFoundError as e:
        raise DicomError(path, "file not found") from e
    except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise DicomError(path, f"unreadable or truncated header ({type(e).__name__}: {e})") from e


def _jpeg_extra_installed() -> bool:
    """Whether the packages of medkern's ``jpeg`` extra are importable."""
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("pylibjpeg", "libjpeg", "openjpeg"))


def _pixels(ds, path) -> np.ndarray:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError(path, "has no pixel data")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.pixel_array
        except (RuntimeError, NotImplementedError) as e:
            text = str(e)
            lowered = text.lower()
            name = getattr(syntax, "name", str(syntax))
            # pydicom 3: "all plugins are missing dependencies"; 2.x: "missing required dependencies"
            # or "no available image handler": nothing installed can decode this syntax
            if ("missing" in lowered and "dependenc" in lowered) or "no available image handler" in lowered:
                raise DicomError(path, f"no pixel data handler for transfer syntax '{name}' ({syntax}); "
                                       f"install medkern's optional decoders with `pip install medkern[jpeg]` "
                                       f"(pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg) or python-gdcm "
                                       f"(pydicom: {text.strip()})") from e
            if "handler" in lowered or "plugin" in lowered:
                # handlers are installed but every one failed on this file: more decoders may help
                hint = "" if _jpeg_extra_installed() else "; `pip install medkern[jpeg]` adds the pylibjpeg decoders"
                raise DicomError(path, f"cannot decode pixel data of transfer syntax '{name}' ({syntax}) "
                                       f"with the installed pixel data handlers{hint} (pydicom: {text.strip()})") from e
            raise DicomError(path, f"cannot decode pixel data ({text})") from e
        except (ValueError, EOFError, OSError, AttributeError, KeyError) as e:
            raise DicomError(path, f"corrupt or truncated pixel data ({type(e).__name__}: {e})") from e


def _float(v, default):
    try:
        return float(v) if v is not None and v != "" else default
    except (TypeError, ValueError):
        return default


def _multi(v) -> list:
    if v is None or v == "":
        return []
    return [float(x) for x in (v if isinstance(v, (list, tuple)) or hasattr(v, "__iter__") and not
                               isinstance(v, str) else [v])]


def _windows(ds) -> list:
    centres, widths = _multi(ds.get("WindowCenter")), _multi(ds.get("WindowWidth"))
    return [(c, w) for c, w in zip(centres, widths) if w > 0]


def _functional(ds, sequence_name, item_name, attribute):
    """Attribute from the shared functional groups of an enhanced multi-frame object."""
    seq = ds.get(sequence_name)
    if not seq:
        return None
    item = seq[0].get(item_name)
    if not item:
        return None
    return item[0].get(attribute)


def _geometry(ds):
    orientation = ds.get("ImageOrientationPatient") or _functional(
        ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence", "ImageOrientationPatient")
    position = ds.get("ImagePositionPatient") or _functional(
        ds, "PerFrameFunctionalGroupsSequence", "PlanePositionSequence", "ImagePositionPatient")
    pixel_spacing = ds.get("PixelSpacing") or _functional(
        ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "PixelSpacing")
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, 1.0, 0.0])
    if orientation is not None and len(orientation) == 6:
        row, col = np.array([float(v) for v in orientation[:3]]), np.array([float(v) for v in orientation[3:]])
    normal = np.cross(row, col)
    origin = tuple(float(v) for v in position) if position is not None and len(position) == 3 else (0.0, 0.0, 0.0)
    if pixel_spacing is not None and len(pixel_spacing) == 2:
        dy, dx = float(pixel_spacing[0]), float(pixel_spacing[1])
    else:
        dy = dx = _float(ds.get("ImagerPixelSpacing", [1.0])[0] if ds.get("ImagerPixelSpacing") else None, 1.0)
    return row, col, normal, origin, (dy, dx)


def read_dicom(path: str | os.PathLike) -> Volume:
    """One DICOM file -> Volume ((H, W), or (frames, H, W) for multi-frame)."""
    ds = _read_dataset(path)
    pixels = _pixels(ds, path)
    frames = int(_float(ds.get("NumberOfFrames"), 1))
    row, col, normal, origin, (dy, dx) = _geometry(ds)
    if frames > 1 and pixels.ndim >= 3:
        offsets = _multi(ds.get("GridFrameOffsetVector"))  # RT dose grids give frame positions
        # frame positions may run either way (descending grids are common): the step is a distance
        from_offsets = float(np.median(np.abs(np.diff(offsets)))) if len(offsets) == frames and frames > 1 else None
        thickness = from_offsets or _float(ds.get("SpacingBetweenSlices"), None) or _float(
            _functional(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "SliceThickness"), None) or \
            _float(ds.get("SliceThickness"), 1.0)
        spacing = (thickness, dy, dx)
    else:
        spacing = (dy, dx)
    return Volume(pixels=pixels, spacing=spacing, origin=origin, direction=np.stack([row, col, normal], axis=1),
                  slope=_float(ds.get("RescaleSlope"), 1.0), intercept=_float(ds.get("RescaleIntercept"), 0.0),
                  modality=str(ds.get("Modality", "")), windows=_windows(ds), files=[str(path)],
                  series_uid=str(ds.get("SeriesInstanceUID", "")))


def _expand(paths: str | os.PathLike | Iterable) -> list:
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        if p.is_dir():
            return sorted(str(f) for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        return [str(p)]
    return [str(p) for p in paths]


def read_dicom_series(dir_or_files: str | os.PathLike | Sequence, strict: bool = False,
                      gap_tolerance: float = 0.01) -> Volume:
    """A directory (its files) or a list of files of ONE series -> a (D, H, W) Volume.

    Raises DicomError for a mixed series (several SeriesInstanceUIDs; use scan_series), slices
    of different size or orientation, or an unreadable file. Uneven slice steps (relative spread
    above ``gap_tolerance``) and missing slices (a step > 1.5 x the median) are listed in
    ``Volume.warnings``; with ``strict=True`` they raise DicomError.
    """
    files = _expand(dir_or_files)
    if not files:
        raise DicomError(dir_or_files, "no files to read")
    datasets = [(f, _read_dataset(f)) for f in files]
    uids = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in datasets})
    if len(uids) > 1:
        raise DicomError(files[0], f"mixed series: {len(uids)} SeriesInstanceUIDs ({', '.join(uids)}); "
                                   f"use medkern.io.scan_series to group them")
    first_file, first = datasets[0]
    row, col, normal, _, (dy, dx) = _geometry(first)
    slices = []
    for f, ds in datasets:
        r, c, _, origin, _ = _geometry(ds)
        if not (np.allclose(r, row, atol=1e-4) and np.allclose(c, col, atol=1e-4)):
            raise DicomError(f, "slice orientation differs from the rest of the series")
        slices.append((float(np.dot(np.asarray(origin), normal)), f, ds, origin))
    slices.sort(key=lambda s: s[0])
    pixels = []
    for _, f, ds, _ in slices:
        a = _pixels(ds, f)
        if pixels and a.shape != pixels[0].shape:
            raise DicomError(f, f"slice shape {a.shape} differs from {pixels[0].shape}")
        pixels.append(a)
    notes = []
    positions = np.array([s[0] for s in slices])
    if len(positions) > 1:
        steps = np.diff(positions)
        if np.any(steps < 1e-6):
            raise DicomError(slices[int(np.argmin(steps)) + 1][1], "two slices share one position")
        dz = float(np.median(steps))
        if (steps.max() - steps.min()) > gap_tolerance * dz + 1e-4:
            notes.append(f"uneven slice spacing: steps from {steps.min():.4g} to {steps.max():.4g} mm "
                         f"(median {dz:.4g} mm used)")
        missing = int(np.sum(np.round(steps[steps > 1.5 * dz] / dz) - 1))
        if missing > 0:
            notes.append(f"about {missing} missing slice(s): largest gap {steps.max():.4g} mm "
                         f"vs median step {dz:.4g} mm")
    else:
        dz = _float(first.get("SpacingBetweenSlices"), None) or _float(first.get("SliceThickness"), 1.0)
    if notes and strict:
        raise DicomError(first_file, "; ".join(notes))
    slopes = {(_float(ds.get("RescaleSlope"), 1.0), _float(ds.get("RescaleIntercept"), 0.0)) for _, _, ds, _ in slices}
    if len(slopes) > 1:
        notes.append(f"rescale slope/intercept vary between slices: {sorted(slopes)} (first slice's used)")
    head = slices[0][2]
    return Volume(pixels=np.stack(pixels), spacing=(dz, dy, dx), origin=slices[0][3],
                  direction=np.stack([row, col, normal], axis=1),
                  slope=_float(head.get("RescaleSlope"), 1.0), intercept=_float(head.get("RescaleIntercept"), 0.0),
                  modality=str(head.get("Modality", "")), windows=_windows(head), files=[s[1] for s in slices],
                  series_uid=uids[0], warnings=notes)


class SeriesKey(NamedTuple):
    """What medkern counts as one DICOM series: the files of one SeriesInstanceUID within one
    directory. A copy of a series in another folder (an export made twice, a study filed under
    two patients) is a series of its own, so reading it never mixes two copies' slices; a file
    without a SeriesInstanceUID is a series of one file. ``scan_series`` groups by this key;
    ``medkern preprocess`` and ``medkern.data.DicomSeriesDataset`` both take their items from it."""

    folder: str
    uid: str


def scan_series(root: str | os.PathLike) -> tuple[dict, list]:
    """Walk a directory tree; returns ({SeriesKey(folder, uid): [files]}, [(file, reason) for
    files that are not readable DICOM]), both sorted. Only headers are read (no pixel data)."""
    series: dict = defaultdict(list)
    failed = []
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = os.path.join(dirpath, name)
            try:
                ds = _read_dataset(path, stop_before_pixels=True)
            except DicomError as e:
                failed.append((path, e.reason))
                continue
            uid = str(ds.get("SeriesInstanceUID", "")) or f"no-series-uid:{path}"
            series[SeriesKey(dirpath, uid)].append(path)
    return {k: sorted(v) for k, v in sorted(series.items())}, sorted(failed)
