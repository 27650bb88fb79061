"""medkern.io: DICOM readers (pydicom) returning ``Volume`` with stored pixels and geometry."""
from .dicom import DicomError, SeriesKey, Volume, read_dicom, read_dicom_series, scan_series

__all__ = ["DicomError", "SeriesKey", "Volume", "read_dicom", "read_dicom_series", "scan_series"]
