"""medkern.io.read_nifti / write_nifti against nibabel itself: values in Volume order ((D, H, W)
= nibabel's (k, j, i) transposed), geometry (every voxel's LPS position from the Volume equals
the file's affine applied to its index, with x and y negated), round trips keeping affine, header
and dtype, the real hippocampus files, and every error path."""
import gzip
import struct

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import data_file
from medkern.io import NiftiError, Volume, read_nifti, write_nifti


def rotated_affine(rng):
    """A random rotation (QR of a Gaussian matrix) times random zooms, plus an offset."""
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    zooms = rng.uniform(0.4, 3.0, size=3)
    affine = np.eye(4)
    affine[:3, :3] = q * zooms
    affine[:3, 3] = rng.normal(scale=50, size=3)
    return affine


def save(path, data, affine, dtype=None):
    img = nib.Nifti1Image(data, affine)
    if dtype is not None:
        img.set_data_dtype(dtype)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
def test_values_are_nibabels_in_volume_order(tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(7, 5, 4)) * 100).astype(dtype)
    path = save(tmp_path / "a.nii.gz", data, rotated_affine(rng))
    v = read_nifti(path)
    assert v.pixels.dtype == dtype and v.shape == (4, 5, 7)
    for k, j, i in [(0, 0, 0), (3, 4, 6), (1, 2, 5), (2, 0, 3)]:
        assert v.pixels[k, j, i] == data[i, j, k]


def test_geometry_maps_every_voxel_to_the_files_position(tmp_path):
    rng = np.random.default_rng(2)
    affine = rotated_affine(rng)
    path = save(tmp_path / "g.nii", rng.normal(size=(6, 5, 4)).astype(np.float32), affine)
    affine = nib.load(str(path)).affine  # as stored (float32)
    v = read_nifti(path)
    dz, dy, dx = v.spacing
    for i, j, k in [(0, 0, 0), (5, 4, 3), (2, 1, 3), (1, 3, 0)]:
        ras = affine @ np.array([i, j, k, 1.0])
        lps = ras[:3] * np.array([-1, -1, 1])
        ours = np.asarray(v.origin) + v.direction @ np.array([dx * i, dy * j, dz * k])
        np.testing.assert_allclose(ours, lps, rtol=0, atol=1e-9)
    np.testing.assert_allclose(v.direction.T @ v.direction, np.eye(3), atol=1e-6)  # float32 affine


def test_scaled_file_keeps_stored_values_and_reports_the_scaling(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(2.5, -10.0)
    nib.save(img, str(tmp_path / "s.nii"))
    v = read_nifti(tmp_path / "s.nii")
    assert v.pixels.dtype == np.int16 and (v.slope, v.intercept) == (2.5, -10.0)
    np.testing.assert_allclose(v.rescaled(), nib.load(str(tmp_path / "s.nii")).get_fdata().T, rtol=1e-6)


def test_two_and_four_dimensional_files(tmp_path):
    rng = np.random.default_rng(3)
    flat = rng.normal(size=(6, 5)).astype(np.float32)
    v2 = read_nifti(save(tmp_path / "2d.nii", flat, np.diag([0.5, 0.7, 1, 1])))
    assert v2.shape == (5, 6) and v2.spacing == pytest.approx((0.7, 0.5)) and np.array_equal(v2.pixels, flat.T)
    multi = rng.normal(size=(6, 5, 4, 2)).astype(np.float32)
    v4 = read_nifti(save(tmp_path / "4d.nii.gz", multi, np.eye(4)))
    assert v4.shape == (2, 4, 5, 6) and v4.as_batch().shape == (1, 2, 4, 5, 6)
    assert np.array_equal(v4.pixels[1, 3, 2, 5], multi[5, 2, 3, 1])


def test_label_map_written_like_the_input_overlays_it(tmp_path):
    rng = np.random.default_rng(4)
    affine = rotated_affine(rng)
    image = read_nifti(save(tmp_path / "img.nii.gz", rng.normal(size=(7, 6, 5)).astype(np.float32), affine))
    label = torch.from_numpy(rng.integers(0, 3, size=image.shape))  # int64, as argmax gives
    out = write_nifti(tmp_path / "pred" / "img.nii.gz", label, like=image)
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, affine, atol=1e-6)
    assert back.get_data_dtype() == np.int32
    assert np.array_equal(np.asanyarray(back.dataobj).T, label.numpy())
    assert not list((tmp_path / "pred").glob(".*tmp*"))  # no temporary file left


def test_round_trip_keeps_dtype_values_and_header_fields(tmp_path):
    rng = np.random.default_rng(5)
    src = nib.Nifti1Image(rng.integers(-500, 500, size=(5, 4, 3)).astype(np.int16), rotated_affine(rng))
    src.header["descrip"] = b"medkern test"
    nib.save(src, str(tmp_path / "in.nii"))
    v = read_nifti(tmp_path / "in.nii")
    write_nifti(tmp_path / "out.nii", v.pixels, like=v)
    w = read_nifti(tmp_path / "out.nii")
    assert w.pixels.dtype == np.int16 and np.array_equal(w.pixels, v.pixels)
    np.testing.assert_allclose(w.affine, v.affine, atol=1e-6)
    assert w.header["descrip"] == v.header["descrip"]


def test_writing_like_a_dicom_volume_keeps_its_geometry(tmp_path):
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    dicom_like = Volume(pixels=np.zeros((3, 4, 5), np.int16), spacing=(2.5, 0.8, 0.6), origin=(10.0, -20.0, 30.0),
                        direction=direction)
    write_nifti(tmp_path / "d.nii.gz", np.ones((3, 4, 5), np.uint8), like=dicom_like)
    v = read_nifti(tmp_path / "d.nii.gz")
    np.testing.assert_allclose(v.spacing, dicom_like.spacing, rtol=1e-6)
    np.testing.assert_allclose(v.origin, dicom_like.origin, atol=1e-5)
    np.testing.assert_allclose(v.direction, direction, atol=1e-6)


def test_reads_the_hippocampus_files_as_nibabel_does():
    image = data_file("hippocampus/imagesTr/hippocampus_001.nii.gz")
    label = data_file("hippocampus/labelsTr/hippocampus_001.nii.gz")
    for path in (image, label):
        v = read_nifti(path)
        ref = nib.load(str(path))
        assert np.array_equal(v.rescaled(), ref.get_fdata().T.astype(np.float32))
        assert v.spacing == tuple(float(z) for z in ref.header.get_zooms()[::-1])
    assert set(np.unique(read_nifti(label).pixels)) <= {0, 1, 2}


def test_missing_file(tmp_path):
    with pytest.raises(NiftiError, match="missing.nii.gz: file not found"):
        read_nifti(tmp_path / "missing.nii.gz")


def test_corrupt_and_truncated_files(tmp_path):
    (tmp_path / "junk.nii").write_bytes(b"not a nifti header" * 30)
    with pytest.raises(NiftiError, match="junk.nii"):
        read_nifti(tmp_path / "junk.nii")
    good = save(tmp_path / "good.nii.gz", np.ones((9, 9, 9), np.float32), np.eye(4))
    raw = gzip.decompress(good.read_bytes())
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(NiftiError, match="cut.nii.gz"):
        read_nifti(tmp_path / "cut.nii.gz")
    noisy = save(tmp_path / "noisy.nii.gz", np.random.default_rng(0).normal(size=(9, 9, 9)).astype(np.float32),
                 np.eye(4))
    (tmp_path / "badgz.nii.gz").write_bytes(noisy.read_bytes()[:1000])
    with pytest.raises(NiftiError, match="badgz.nii.gz"):
        read_nifti(tmp_path / "badgz.nii.gz")


def test_rejects_one_and_five_dimensional_files(tmp_path):
    with pytest.raises(NiftiError, match="1d.nii.*2-D, 3-D or 4-D"):
        read_nifti(save(tmp_path / "1d.nii", np.ones(5, np.float32), np.eye(4)))
    with pytest.raises(NiftiError, match="5d.nii.*2-D, 3-D or 4-D"):
        read_nifti(save(tmp_path / "5d.nii", np.ones((2, 2, 2, 2, 2), np.float32), np.eye(4)))


def test_rejects_a_degenerate_affine(tmp_path):
    """nibabel refuses to write such a file, so the sform's second row is zeroed in the bytes
    (NIfTI-1 header: qform_code at byte 252, srow_y at 296)."""
    path = save(tmp_path / "flat.nii", np.ones((3, 3, 3), np.float32), np.eye(4))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<h", raw, 252, 0)
    struct.pack_into("<4f", raw, 296, 0, 0, 0, 0)
    path.write_bytes(bytes(raw))
    with pytest.raises(NiftiError, match="zero-length axis"):
        read_nifti(tmp_path / "flat.nii")


def test_write_rejects_bad_arguments(tmp_path):
    v = read_nifti(save(tmp_path / "v.nii", np.ones((4, 5, 6), np.float32), np.eye(4)))
    with pytest.raises(ValueError, match="array: spatial shape"):
        write_nifti(tmp_path / "o.nii", np.zeros((4, 5, 6), np.uint8), like=v)
    with pytest.raises(ValueError, match="path: .*nii"):
        write_nifti(tmp_path / "o.png", np.zeros((6, 5, 4), np.uint8))
    with pytest.raises(ValueError, match="array: expected"):
        write_nifti(tmp_path / "o.nii", np.zeros((0, 5, 4), np.uint8))
    with pytest.raises(ValueError, match="array: int64 values"):
        write_nifti(tmp_path / "o.nii", np.full((2, 2, 2), 2**40, np.int64))
    with pytest.raises(ValueError, match="spacing: expected 3 positive"):
        write_nifti(tmp_path / "o.nii", np.zeros((2, 2, 2), np.uint8), spacing=(1.0, 0.0, 1.0))
    assert not any(tmp_path.glob("o.*"))
