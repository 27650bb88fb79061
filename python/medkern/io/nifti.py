"""NIfTI reading and writing on nibabel, in the ``Volume`` conventions of the DICOM reader.

nibabel indexes a volume's data as (i, j, k) with a 4x4 affine to RAS millimetres; a ``Volume``
holds it as (D, H, W) = (k, j, i), spacing in that order, origin and direction in the DICOM
patient frame (LPS: x and y negated), so the two readers' volumes feed the same pipeline. The
file's affine and header stay on the Volume, and ``write_nifti(path, array, like=volume)``
writes an array of that volume's shape (a label map, a prediction) with them, so the output
overlays the input in any viewer. 4-D files (i, j, k, c) read as channels-first (C, D, H, W).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .volume import ImageFileError, Volume

__all__ = ["NiftiError", "read_nifti", "write_nifti", "is_nifti"]

_LPS = np.diag([-1.0, -1.0, 1.0])
_SUFFIXES = (".nii", ".nii.gz")


class NiftiError(ImageFileError):
    """A file that cannot be read (or written) as NIfTI; the message names the file and why."""


def is_nifti(path) -> bool:
    return str(path).lower().endswith(_SUFFIXES)


def _to_volume_order(data: np.ndarray) -> np.ndarray:
    """nibabel's (i, j[, k[, c]]) -> (H, W), (D, H, W) or (C, D, H, W), contiguous."""
    if data.ndim == 4:
        return np.ascontiguousarray(data.transpose(3, 2, 1, 0))
    return np.ascontiguousarray(data.T)


def _from_volume_order(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 4:
        return pixels.transpose(3, 2, 1, 0)
    return pixels.T


def read_nifti(path) -> Volume:
    """One .nii / .nii.gz file -> Volume with its stored dtype (the scaling, if the header has
    one, in ``slope`` / ``intercept``; ``rescaled()`` applies it), 1-4 dimensions."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError as NibabelFileError

    path = Path(path)
    if not path.is_file():
        raise NiftiError(path, "file not found")
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise NiftiError(path, f"not a NIfTI image (nibabel read it as {type(img).__name__})")
        data = np.asanyarray(img.dataobj.get_unscaled() if hasattr(img.dataobj, "get_unscaled") else img.dataobj)
        slope, inter = (img.dataobj.slope, img.dataobj.inter) if hasattr(img.dataobj, "slope") else (1.0, 0.0)
    except NiftiError:
        raise
    except (NibabelFileError, OSError, EOFError, ValueError, TypeError, KeyError, IndexError) as e:
        raise NiftiError(path, f"unreadable NIfTI file ({type(e).__name__}: {e})") from e
    if data.ndim < 2 or data.ndim > 4 or data.size == 0:
        raise NiftiError(path, f"expected a 2-D, 3-D or 4-D image, got shape {data.shape}")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise NiftiError(path, "the affine holds NaN or infinity")
    columns = affine[:3, :3]
    zooms = np.linalg.norm(columns, axis=0)
    if np.any(zooms == 0):
        raise NiftiError(path, f"the affine has a zero-length axis: {affine[:3, :3].tolist()}")
    direction = _LPS @ (columns / zooms)              # columns: patient directions of i, j, k
    spatial = min(data.ndim, 3)
    spacing = tuple(float(z) for z in zooms[:spatial][::-1])
    origin = tuple(float(v) for v in _LPS @ affine[:3, 3])
    return Volume(pixels=_to_volume_order(data), spacing=spacing, origin=origin, direction=direction,
                  slope=float(slope) if np.isfinite(slope) else 1.0,
                  intercept=float(inter) if np.isfinite(inter) else 0.0, modality="",
                  files=[str(path)], affine=affine, header=img.header.copy())


def _writable(array: np.ndarray) -> np.ndarray:
    """bool -> uint8; int64 / uint64 -> int32 when the values fit (many NIfTI tools refuse 64-bit
    integers); other dtypes as they are."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype in (np.int64, np.uint64):
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
            raise ValueError(f"array: int64 values {lo}..{hi} do not fit the int32 a NIfTI file stores")
        return array.astype(np.int32)
    return array


def write_nifti(path, array, like: Volume | None = None, spacing=None) -> Path:
    """Writes ``array`` ((H, W), (D, H, W) or (C, D, H, W) in Volume order; numpy or torch) as
    NIfTI. ``like``: a Volume whose geometry the file takes (a NIfTI volume's affine and header;
    a DICOM volume's spacing, origin and direction), its spatial shape must equal the array's.
    Without ``like``, ``spacing`` (Volume order, default 1 mm) and an identity orientation.
    The written file holds the array's values unscaled. Writes to a temporary name first, so an
    interrupted write leaves no partial file under ``path``."""
    import nibabel as nib

    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim < 2 or array.ndim > 4 or array.size == 0:
        raise ValueError(f"array: expected a non-empty 2-D, 3-D or 4-D array, got shape {array.shape}")
    if not is_nifti(path):
        raise ValueError(f"path: a NIfTI file name ends with .nii or .nii.gz, got {str(path)!r}")
    data = _from_volume_order(_writable(array))
    header = None
    if like is not None:
        spatial_like = like.shape[-3:] if len(like.shape) == 4 else like.shape
        spatial = array.shape[-3:] if array.ndim == 4 else array.shape
        if tuple(spatial_like) != tuple(spatial):
            raise ValueError(f"array: spatial shape {tuple(spatial)} differs from like's {tuple(spatial_like)}")
        if like.affine is not None:
            affine = like.affine
            header = like.header.copy() if like.header is not None else None
        else:
            affine = _affine_from_geometry(like.spacing, like.origin, like.direction, len(spatial))
    else:
        ndim = min(array.ndim, 3)
        spacing = tuple(spacing) if spacing is not None else (1.0,) * ndim
        if len(spacing) != ndim or any(not (s > 0) for s in spacing):
            raise ValueError(f"spacing: expected {ndim} positive values, got {spacing}")
        affine = _affine_from_geometry(spacing, (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]), ndim)
    img = nib.Nifti1Image(data, affine, header)
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if str(path).lower().endswith(".gz") else ".nii"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _affine_from_geometry(spacing, origin, direction, ndim: int) -> np.ndarray:
    """Volume geometry (spacing in array order, LPS origin and direction) -> a RAS voxel affine."""
    zooms = np.ones(3)
    zooms[:ndim] = tuple(spacing)[::-1]
    affine = np.eye(4)
    affine[:3, :3] = (_LPS @ np.asarray(direction, dtype=np.float64)) * zooms
    affine[:3, 3] = _LPS @ np.asarray(origin, dtype=np.float64)
    return affine
