"""The image type every medkern reader returns (DICOM and NIfTI alike): stored pixels in array
axis order ((D,) H, W), spacing in that order, and the patient geometry (origin, direction in the
DICOM patient frame, LPS), plus the error every reader raises for a file it cannot read."""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Volume", "ImageFileError"]


class ImageFileError(ValueError):
    """A file that cannot be read as image data; the message names the file and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclasses.dataclass
class Volume:
    """pixels: (H, W) for one frame, (D, H, W) for a series, multi-frame file or NIfTI volume
    ((C, D, H, W) for a 4-D NIfTI file), stored dtype.
    spacing/origin/direction use array axis order for spacing ((dz,) dy, dx in mm) and patient
    coordinates (x, y, z) for origin; direction is 3x3 with columns = patient directions of the
    array's x (row), y (column) and slice axes."""

    pixels: np.ndarray
    spacing: tuple
    origin: tuple
    direction: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    modality: str = ""
    windows: list = dataclasses.field(default_factory=list)  # [(level, width), ...] from the header
    files: list = dataclasses.field(default_factory=list)
    series_uid: str = ""
    warnings: list = dataclasses.field(default_factory=list)
    affine: np.ndarray | None = None  # NIfTI only: the file's 4x4 voxel (i, j, k) -> RAS mm affine
    header: object = None             # NIfTI only: the file's nibabel header, reused by write_nifti

    @property
    def shape(self) -> tuple:
        return tuple(self.pixels.shape)

    def rescaled(self) -> np.ndarray:
        """float32 pixels * slope + intercept (HU for CT)."""
        return (self.pixels.astype(np.float32) * np.float32(self.slope) + np.float32(self.intercept))

    def as_batch(self) -> np.ndarray:
        """(1, 1, *shape) view for a Pipeline ((1, C, D, H, W) for channels-first 4-D pixels), with
        ``spacing`` passed alongside."""
        return self.pixels[None] if self.pixels.ndim == 4 else self.pixels[None, None]
