"""medkern.io: DICOM (pydicom) and NIfTI (nibabel) readers returning ``Volume`` with stored pixels
and geometry in one convention, and a NIfTI writer that keeps an input's geometry."""
from .dicom import DicomError, SeriesKey, read_dicom, read_dicom_series, scan_series
from .nifti import NiftiError, is_nifti, read_nifti, write_nifti
from .volume import ImageFileError, Volume

__all__ = ["DicomError", "ImageFileError", "NiftiError", "SeriesKey", "Volume", "is_nifti", "read_dicom",
           "read_dicom_series", "read_nifti", "scan_series", "write_nifti"]
