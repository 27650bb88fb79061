"""medkern.io on pydicom's bundled test files: single files (uncompressed, RLE, JPEG 2000,
multi-frame), the dicomdirtests CT2 series (ordering by position, its 200 mm gap reported),
mixed series, truncated files and a missing decoder."""
import os
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medkern.io import DicomError, SeriesKey, Volume, read_dicom, read_dicom_series, scan_series


def pydicom_file(name):
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} not available")
    return path


CT2 = os.path.join(os.path.dirname(pydicom_file("CT_small.dcm")), "dicomdirtests", "77654033", "CT2")


def test_read_ct_keeps_stored_dtype_and_header_values():
    v = read_dicom(pydicom_file("CT_small.dcm"))
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    assert isinstance(v, Volume) and v.pixels.dtype == np.int16 and v.shape == (128, 128)
    np.testing.assert_array_equal(v.pixels, ds.pixel_array)
    assert v.modality == "CT" and v.slope == 1.0 and v.intercept == -1024.0
    assert v.spacing == pytest.approx((0.661468, 0.661468))
    assert v.origin == pytest.approx(tuple(float(x) for x in ds.ImagePositionPatient))
    np.testing.assert_allclose(v.rescaled(), ds.pixel_array * 1.0 - 1024)


def test_read_mr_windows_and_compressed_syntaxes_agree():
    plain = read_dicom(pydicom_file("MR_small.dcm"))
    assert plain.windows == [(600.0, 1600.0)] and plain.modality == "MR"
    rle = read_dicom(pydicom_file("MR_small_RLE.dcm"))
    np.testing.assert_array_equal(rle.pixels, plain.pixels)
    try:
        j2k = read_dicom(pydicom_file("MR_small_jp2klossless.dcm"))
    except DicomError as e:  # no JPEG 2000 decoder installed: the error must say so
        assert "MR_small_jp2klossless.dcm" in str(e) and "handler" in str(e)
    else:
        np.testing.assert_array_equal(j2k.pixels, plain.pixels)


def test_missing_handler_error_names_file_and_handler():
    path = pydicom_file("MR_small_jpeg_ls_lossless.dcm")
    try:
        pydicom.dcmread(path).pixel_array
        pytest.skip("a JPEG-LS decoder is installed here")
    except RuntimeError:
        pass
    with pytest.raises(DicomError) as info:
        read_dicom(path)
    msg = str(info.value)
    assert "MR_small_jpeg_ls_lossless.dcm" in msg and "JPEG-LS" in msg and "pylibjpeg" in msg


def test_truncated_file_raises_dicom_error_naming_file():
    with pytest.raises(DicomError, match=r"MR_truncated\.dcm.*truncated") as info:
        read_dicom(pydicom_file("MR_truncated.dcm"))
    assert info.value.path.endswith("MR_truncated.dcm")


def test_not_dicom_and_missing_files(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(DicomError, match="notes.txt.*not a DICOM"):
        read_dicom(junk)
    with pytest.raises(DicomError, match="nothing.dcm"):
        read_dicom(tmp_path / "nothing.dcm")


def test_single_frame_seg_and_multi_frame():
    seg = read_dicom(pydicom_file("liver_1frame.dcm"))
    assert seg.pixels.dtype == np.uint8 and seg.shape[-2:] == (512, 512) and seg.modality == "SEG"
    assert seg.spacing[-2:] == pytest.approx((0.810547, 0.810547))
    multi = read_dicom(pydicom_file("rtdose.dcm"))
    ds = pydicom.dcmread(pydicom_file("rtdose.dcm"))
    assert multi.shape == (int(ds.NumberOfFrames), ds.Rows, ds.Columns) and len(multi.spacing) == 3
    np.testing.assert_array_equal(multi.pixels, ds.pixel_array)
    assert multi.spacing[0] == pytest.approx(abs(float(ds.GridFrameOffsetVector[1]) - float(ds.GridFrameOffsetVector[0])))


def test_descending_grid_frame_offsets_give_a_positive_spacing(tmp_path):
    """RT dose grids often list their frame offsets from high to low: the step is a distance."""
    ds = pydicom.dcmread(pydicom_file("rtdose.dcm"))
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    ds.GridFrameOffsetVector = offsets[::-1]
    ds.save_as(tmp_path / "descending.dcm")
    step = abs(offsets[1] - offsets[0])
    assert step > 0
    assert read_dicom(tmp_path / "descending.dcm").spacing[0] == pytest.approx(step)


def test_a_series_is_one_uid_within_one_folder(tmp_path):
    """The same series copied into two folders is two series, for scan_series, the dataset
    and `medkern preprocess` alike."""
    import medkern.preprocess as prep
    from medkern.data import DicomSeriesDataset
    for folder in ("export1", "export2"):
        shutil.copytree(CT2, tmp_path / folder)
    groups, failed = scan_series(tmp_path)
    uid = str(pydicom.dcmread(os.path.join(CT2, os.listdir(CT2)[0])).SeriesInstanceUID)
    assert list(groups) == [SeriesKey(str(tmp_path / "export1"), uid), SeriesKey(str(tmp_path / "export2"), uid)]
    assert failed == []
    ds = DicomSeriesDataset(tmp_path)
    assert [(s.path, s.uid) for s in ds.series] == [tuple(k) for k in groups]
    for i in range(2):  # each item is one copy's four slices, not a mix of eight
        assert ds[i]["image"].shape == (1, 4, 16, 16)
    items = [it for it in prep.find_items(tmp_path) if it["kind"] == "dicom"]
    assert [(os.path.dirname(it["files"][0]), it["series_uid"]) for it in items] == [tuple(k) for k in groups]


def test_series_is_ordered_by_position_and_gap_is_reported(tmp_path):
    # reverse InstanceNumber so only the positions give the right order
    for i, name in enumerate(sorted(os.listdir(CT2))):
        ds = pydicom.dcmread(os.path.join(CT2, name))
        ds.InstanceNumber = 100 - i
        ds.save_as(tmp_path / f"slice{3 - i}.dcm")
    v = read_dicom_series(tmp_path)
    z = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in v.files]
    assert z == sorted(z) and v.shape == (4, 16, 16) and v.pixels.dtype == np.int16
    assert v.spacing == pytest.approx((1.25, 0.488281, 0.488281))
    assert any("missing slice" in w for w in v.warnings) and any("uneven" in w for w in v.warnings)
    for k, f in enumerate(v.files):
        np.testing.assert_array_equal(v.pixels[k], pydicom.dcmread(f).pixel_array)
    with pytest.raises(DicomError, match="missing slice"):
        read_dicom_series(tmp_path, strict=True)


def test_even_series_has_no_warnings(tmp_path):
    for name in sorted(os.listdir(CT2))[1:]:  # the three 1.25 mm-spaced slices
        shutil.copy(os.path.join(CT2, name), tmp_path / name)
    v = read_dicom_series(tmp_path)
    assert v.warnings == [] and v.shape[0] == 3


def test_mixed_series_is_an_error_and_scan_series_groups(tmp_path):
    for name in os.listdir(CT2):
        shutil.copy(os.path.join(CT2, name), tmp_path / name)
    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "other.dcm")
    with pytest.raises(DicomError, match="mixed series"):
        read_dicom_series(tmp_path)
    (tmp_path / "sub").mkdir()
    shutil.copy(pydicom_file("MR_truncated.dcm"), tmp_path / "sub" / "bad.dcm")
    (tmp_path / "sub" / "readme.txt").write_text("not dicom")
    groups, failed = scan_series(tmp_path)
    assert sorted(len(v) for v in groups.values()) == [1, 1, 4]  # CT2, CT_small, the truncated MR
    ct2_uid = str(pydicom.dcmread(os.path.join(CT2, os.listdir(CT2)[0])).SeriesInstanceUID)
    assert groups[SeriesKey(str(tmp_path), ct2_uid)] == sorted(str(tmp_path / n) for n in os.listdir(CT2))
    assert [os.path.basename(f) for f, _ in failed] == ["readme.txt"]
