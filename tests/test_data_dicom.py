"""medkern.data over DICOM: DicomSeriesDataset on trees built from pydicom's bundled test files
(references read with pydicom + numpy), BatchAugment / IndexedDataset / collate_with_indices
against the Pipeline run per sample, loaders with 0 and 2 workers, compressed transfer syntaxes
(decode path and the missing-handler error), and one test per error path."""
import os
import shutil

import numpy as np
import pydicom
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from medkern._backend import cuda_usable
from medkern.data import BatchAugment, DicomSeriesDataset, IndexedDataset, SeriesInfo, collate_with_indices
from medkern.io import DicomError, read_dicom
from medkern.transforms import GaussianNoise, Pipeline, RandomAffine, RandomFlip, ZScore


from tolerances import PREPROCESS_TOLERANCES  # noqa: E402
from test_io_dicom import CT2, pydicom_file  # noqa: E402  (tests/ is on sys.path under pytest)
UID_ROOT = "1.2.826.0.1.3680043.8.498.77"


def write_ct_series(path, k, slope=1.0):
    """A one-file series: CT_small with its own SeriesInstanceUID and seeded random pixels."""
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    pixels = np.random.default_rng(k).integers(0, 3000, size=(ds.Rows, ds.Columns)).astype(np.int16)
    ds.PixelData = pixels.tobytes()
    ds.SeriesInstanceUID = f"{UID_ROOT}.{k + 1}"
    ds.SOPInstanceUID = f"{UID_ROOT}.{k + 1}.1"
    ds.RescaleSlope = slope
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path)


def expected_image(files):
    """(1, D, H, W) float32 HU read with pydicom alone, slices ordered by z position."""
    datasets = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    slices = [d.pixel_array.astype(np.float32) * np.float32(float(d.RescaleSlope)) + np.float32(float(d.RescaleIntercept))
              for d in datasets]
    return np.stack(slices)[None]


@pytest.fixture
def tree(tmp_path):
    """root/b_ct2/ (3 evenly spaced CT slices), root/a/ct0.dcm, root/c/ct1.dcm (slope 2),
    root/notes.txt (not DICOM): 3 series, in relative-path order a/, b_ct2/, c/."""
    root = tmp_path / "root"
    for name in sorted(os.listdir(CT2))[1:]:
        os.makedirs(root / "b_ct2", exist_ok=True)
        shutil.copy(os.path.join(CT2, name), root / "b_ct2" / name)
    write_ct_series(root / "c" / "ct1.dcm", 1, slope=2.0)  # written before a/: order must not follow creation
    write_ct_series(root / "a" / "ct0.dcm", 0)
    (root / "notes.txt").write_text("not DICOM")
    return root


@pytest.fixture
def same_shape_tree(tmp_path):
    """Six one-file series of the same (1, 1, 128, 128) shape, for batching."""
    root = tmp_path / "same"
    for k in range(6):
        write_ct_series(root / f"s{k}" / "image.dcm", 10 + k)
    return root


def random_pipeline(seed=3):
    return Pipeline([RandomFlip((-1,)), RandomAffine(20, (0.9, 1.1), 0.1), GaussianNoise(0.05)], seed=seed)


# ---- DicomSeriesDataset ------------------------------------------------------------------------
def test_items_match_pydicom_in_relative_path_order(tree):
    ds = DicomSeriesDataset(tree)
    assert len(ds) == 3 and isinstance(ds, torch.utils.data.Dataset)
    ct2_files = sorted(str(tree / "b_ct2" / n) for n in os.listdir(tree / "b_ct2"))
    expected = [([str(tree / "a" / "ct0.dcm")], f"{UID_ROOT}.1", str(tree / "a" / "ct0.dcm")),
                (ct2_files, str(pydicom.dcmread(ct2_files[0]).SeriesInstanceUID), str(tree / "b_ct2")),
                ([str(tree / "c" / "ct1.dcm")], f"{UID_ROOT}.2", str(tree / "c" / "ct1.dcm"))]
    for i, (files, uid, path) in enumerate(expected):
        item = ds[i]
        assert item["series_uid"] == uid and item["path"] == path and item["index"] == i
        assert item["image"].dtype == torch.float32 and item["image"].ndim == 4
        np.testing.assert_array_equal(item["image"].numpy(), expected_image(files))
        assert ds.series[i] == SeriesInfo(uid=uid, files=tuple(files), path=path)
    head = pydicom.dcmread(ct2_files[0])
    np.testing.assert_allclose(ds[1]["spacing"].numpy(), [1.25, *map(float, head.PixelSpacing)], rtol=1e-4)
    assert ds[0]["spacing"].dtype == torch.float64 and ds[0]["spacing"][0] == 1.0  # a single frame
    assert ds[2]["image"].shape == (1, 1, 128, 128)
    assert [os.path.basename(p) for p, _ in ds.ignored] == ["notes.txt"] and ds.skipped == []
    assert ds[-1]["series_uid"] == ds[2]["series_uid"]
    with pytest.raises(IndexError):
        ds[3]


def test_raw_stored_dtype_without_rescale(tree):
    ds = DicomSeriesDataset(tree, rescale=False)
    item = ds[2]  # slope 2 would change the values if it were applied
    assert item["image"].dtype == torch.int16
    np.testing.assert_array_equal(item["image"].numpy()[0, 0], pydicom.dcmread(tree / "c" / "ct1.dcm").pixel_array)


def test_label_fn_gets_series_info_once_per_series(tree):
    seen = []

    def label_fn(info):
        seen.append(info)
        return len(info.files)

    ds = DicomSeriesDataset(tree, label_fn=label_fn)
    assert [s.uid for s in seen] == [s.uid for s in ds.series] and all(isinstance(s, SeriesInfo) for s in seen)
    assert [ds[i]["label"] for i in range(3)] == [1, 3, 1] and ds.labels == [1, 3, 1]
    assert "label" not in DicomSeriesDataset(tree)[0]


def test_pipeline_transform_is_keyed_by_dataset_index(tree):
    p = random_pipeline()
    ds = DicomSeriesDataset(tree, transform=p)
    plain = DicomSeriesDataset(tree)
    backwards = [ds[i]["image"] for i in reversed(range(len(ds)))][::-1]
    for i in range(len(ds)):
        x, spacing = plain[i]["image"], plain[i]["spacing"].numpy()
        want = p(x[None], spacing=spacing, indices=[i])[0]
        torch.testing.assert_close(ds[i]["image"], want, rtol=0, atol=0)
        torch.testing.assert_close(backwards[i], want, rtol=0, atol=0)
    # the key matters: index 2 augmented as if it were sample 0 differs
    x2 = plain[2]["image"][None]
    assert not torch.equal(ds[2]["image"], p(x2, spacing=plain[2]["spacing"].numpy(), indices=[0])[0])


def test_other_callable_transform_gets_the_image(tree):
    ds = DicomSeriesDataset(tree, transform=lambda image: image * 2 + 1)
    np.testing.assert_array_equal(ds[0]["image"].numpy(), expected_image([str(tree / "a" / "ct0.dcm")]) * 2 + 1)


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_workers_give_the_per_item_result(same_shape_tree, workers):
    p = random_pipeline(seed=11)
    ds = DicomSeriesDataset(same_shape_tree, transform=p)
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(5))
    seen = {}
    for batch in loader:
        assert batch["image"].shape[1:] == (1, 1, 128, 128) and batch["spacing"].shape[1:] == (3,)
        for k, index in enumerate(batch["index"].tolist()):
            seen[index] = (batch["image"][k], batch["series_uid"][k])
    assert sorted(seen) == list(range(6))
    plain = DicomSeriesDataset(same_shape_tree)
    for i in range(6):
        ref = torch.from_numpy(expected_image(plain.series[i].files))
        want = p(ref[None], spacing=plain[i]["spacing"].numpy(), indices=[i])[0]
        torch.testing.assert_close(seen[i][0], want, rtol=0, atol=0)
        assert seen[i][1] == plain.series[i].uid


def test_cache_keeps_images_after_the_files_are_gone(tree):
    cached = DicomSeriesDataset(tree, cache=True)
    uncached = DicomSeriesDataset(tree)
    first = cached[0]["image"].clone()
    os.remove(tree / "a" / "ct0.dcm")
    torch.testing.assert_close(cached[0]["image"], first, rtol=0, atol=0)
    with pytest.raises(DicomError, match="ct0.dcm"):
        uncached[0]


# ---- DicomSeriesDataset errors -----------------------------------------------------------------
def test_bad_root_is_a_value_error_naming_root(tmp_path):
    with pytest.raises(ValueError, match="'root'.*does not exist"):
        DicomSeriesDataset(tmp_path / "missing")
    (tmp_path / "file.dcm").write_text("x")
    with pytest.raises(ValueError, match="'root'.*not a directory"):
        DicomSeriesDataset(tmp_path / "file.dcm")


def test_empty_or_non_dicom_directory_is_a_value_error_naming_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="'root'.*no readable DICOM series"):
        DicomSeriesDataset(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"'root'.*1 non-DICOM file\(s\) ignored"):
        DicomSeriesDataset(tmp_path / "junk")


def test_wrong_transform_or_label_fn_type_names_the_argument(tree):
    with pytest.raises(TypeError, match="'transform'"):
        DicomSeriesDataset(tree, transform="flip")
    with pytest.raises(TypeError, match="'label_fn'"):
        DicomSeriesDataset(tree, label_fn={"a": 1})


def test_corrupt_pixel_data_raises_on_read_or_is_skipped(tree):
    shutil.copy(pydicom_file("MR_truncated.dcm"), tree / "bad.dcm")
    ds = DicomSeriesDataset(tree)
    assert len(ds) == 4
    bad = [i for i in range(4) if ds.series[i].files == (str(tree / "bad.dcm"),)]
    with pytest.raises(DicomError, match=r"bad\.dcm.*truncated") as info:
        ds[bad[0]]
    assert info.value.path == str(tree / "bad.dcm")
    with pytest.warns(UserWarning, match=r"skipped 1 .*bad\.dcm"):
        skipping = DicomSeriesDataset(tree, skip_errors=True)
    assert len(skipping) == 3 and [p for p, _ in skipping.skipped] == [str(tree / "bad.dcm")]
    for i in range(3):  # the survivors keep their relative order and values
        np.testing.assert_array_equal(skipping[i]["image"].numpy(), expected_image(skipping.series[i].files))
        assert skipping[i]["index"] == i


def test_truncated_header_is_its_own_unreadable_series(tree):
    # pydicom reads what it can of a cut header: no SeriesInstanceUID, no pixels
    data = open(pydicom_file("CT_small.dcm"), "rb").read()
    (tree / "cut.dcm").write_bytes(data[:400])
    ds = DicomSeriesDataset(tree)
    cut = [i for i in range(len(ds)) if ds.series[i].files == (str(tree / "cut.dcm"),)]
    assert len(ds) == 4 and len(cut) == 1
    with pytest.raises(DicomError, match=r"cut\.dcm.*no pixel data"):
        ds[cut[0]]
    with pytest.warns(UserWarning, match=r"cut\.dcm"):
        skipping = DicomSeriesDataset(tree, skip_errors=True, cache=True)
    assert len(skipping) == 3 and len(skipping._cache) == 3  # read once at construction, kept
    np.testing.assert_array_equal(skipping[1]["image"].numpy(), expected_image(skipping.series[1].files))


def test_header_scan_failure_raises_at_construction_or_is_skipped(tree, monkeypatch):
    import medkern.data.dicom_series as module
    real_scan = module.scan_series

    def scan_with_a_damaged_header(root):
        groups, failed = real_scan(root)
        return groups, failed + [(str(tree / "damaged.dcm"), "unreadable or truncated header (EOFError: cut)")]

    monkeypatch.setattr(module, "scan_series", scan_with_a_damaged_header)
    with pytest.raises(DicomError, match=r"damaged\.dcm.*truncated header.*skip_errors") as info:
        DicomSeriesDataset(tree)
    assert info.value.path == str(tree / "damaged.dcm")
    with pytest.warns(UserWarning, match=r"skipped 1 .*damaged\.dcm"):
        ds = DicomSeriesDataset(tree, skip_errors=True)
    assert len(ds) == 3 and [os.path.basename(p) for p, _ in ds.ignored] == ["notes.txt"]


def test_all_series_unreadable_with_skip_errors_names_root(tmp_path):
    (tmp_path / "only").mkdir()
    shutil.copy(pydicom_file("MR_truncated.dcm"), tmp_path / "only" / "bad.dcm")
    with pytest.warns(UserWarning, match="bad.dcm"), pytest.raises(ValueError, match="'root'"):
        DicomSeriesDataset(tmp_path / "only", skip_errors=True)


# ---- compressed transfer syntaxes ---------------------------------------------------------------
def _decodes(name):
    try:
        pydicom.dcmread(pydicom_file(name)).pixel_array
        return True
    except Exception:
        return False


def test_compressed_series_decodes_like_the_uncompressed_one(tmp_path):
    if not _decodes("MR_small_jp2klossless.dcm"):
        pytest.skip("no JPEG 2000 pixel data handler installed")
    (tmp_path / "j2k").mkdir()
    shutil.copy(pydicom_file("MR_small_jp2klossless.dcm"), tmp_path / "j2k" / "mr.dcm")
    ds = DicomSeriesDataset(tmp_path / "j2k", rescale=False)
    np.testing.assert_array_equal(ds[0]["image"].numpy()[0, 0], pydicom.dcmread(pydicom_file("MR_small.dcm")).pixel_array)


def test_jpeg_extra_decodes_jpeg_ls():
    pytest.importorskip("pylibjpeg")
    pytest.importorskip("libjpeg")
    v = read_dicom(pydicom_file("MR_small_jpeg_ls_lossless.dcm"))
    np.testing.assert_array_equal(v.pixels, pydicom.dcmread(pydicom_file("MR_small.dcm")).pixel_array)


def _jpeg2000_decoder(name):
    pixels = pytest.importorskip("pydicom.pixels")
    if not hasattr(pixels, "get_decoder"):
        pytest.skip("pydicom < 3 has no pluggable decoders to take away")
    return pixels.get_decoder(pydicom.dcmread(pydicom_file(name), stop_before_pixels=True).file_meta.TransferSyntaxUID)


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_missing_handler_names_file_and_the_jpeg_extra(tmp_path, monkeypatch, name):
    decoder = _jpeg2000_decoder(name)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-openjpeg>=2.0")})
    (tmp_path / "c").mkdir()
    shutil.copy(pydicom_file(name), tmp_path / "c" / name)
    ds = DicomSeriesDataset(tmp_path / "c")  # headers only: construction works
    with pytest.raises(DicomError) as info:
        ds[0]
    msg = str(info.value)
    assert name in msg and "no pixel data handler" in msg and "pip install medkern[jpeg]" in msg
    assert "pylibjpeg-openjpeg" in msg  # pydicom's list of what is missing is kept
    with pytest.warns(UserWarning, match=f"{name}.*medkern\\[jpeg\\]"):
        with pytest.raises(ValueError, match="'root'"):
            DicomSeriesDataset(tmp_path / "c", skip_errors=True)


def test_failing_installed_handler_is_a_decode_error_not_a_missing_one(monkeypatch):
    decoder = _jpeg2000_decoder("JPEG2000.dcm")

    def broken(src, runner):
        raise ValueError("corrupt codestream")

    monkeypatch.setattr(decoder, "_available", {"pillow": broken})
    with pytest.raises(DicomError) as info:
        read_dicom(pydicom_file("JPEG2000.dcm"))
    msg = str(info.value)
    assert "JPEG2000.dcm" in msg and "cannot decode" in msg and "corrupt codestream" in msg
    assert "no pixel data handler" not in msg


# ---- IndexedDataset, collate_with_indices, BatchAugment --------------------------------------------
@pytest.fixture
def images():
    g = torch.Generator().manual_seed(7)
    return torch.rand(10, 1, 13, 11, generator=g) * 100 - 20, torch.arange(10) % 3


def per_sample(pipeline, x, indices):
    return torch.cat([pipeline(x[k:k + 1], indices=[int(i)]) for k, i in enumerate(indices)])


def test_tensor_batch_equals_pipeline_per_sample(images):
    x, _ = images
    p = random_pipeline()
    augment = BatchAugment(p, device="cpu")
    idx = torch.tensor([7, 2, 9, 0, 4])
    out = augment(x[idx], idx)
    assert out.device.type == "cpu" and out.dtype == torch.float32 and out.shape == (5, 1, 13, 11)
    torch.testing.assert_close(out, per_sample(p, x[idx], idx), **PREPROCESS_TOLERANCES["rebatched"])
    assert not torch.allclose(out, p(x[idx]))  # keyed 0..4 instead: different draws


@pytest.mark.parametrize("workers,batch_size", [(0, 3), (0, 4), (2, 3), (2, 10)])
def test_any_batch_split_and_worker_count_give_the_same_output(images, workers, batch_size):
    x, y = images
    p = random_pipeline(seed=21)
    augment = BatchAugment(p, device="cpu")
    reference = per_sample(p, x, range(10))
    loader = DataLoader(IndexedDataset(TensorDataset(x, y)), batch_size=batch_size, shuffle=True,
                        num_workers=workers, collate_fn=collate_with_indices,
                        generator=torch.Generator().manual_seed(batch_size))
    result = torch.full_like(x, float("nan"))
    for (batch_x, batch_y), indices in loader:
        assert indices.dtype == torch.int64
        out_x, out_y = augment((batch_x, batch_y), indices)
        torch.testing.assert_close(out_y, y[indices], rtol=0, atol=0)  # labels pass through
        result[indices] = out_x
    torch.testing.assert_close(result, reference, **PREPROCESS_TOLERANCES["rebatched"])


def test_dict_batch_from_dicom_dataset_matches_the_per_item_transform(same_shape_tree):
    p = Pipeline([RandomFlip((-1, -2)), GaussianNoise(3.0), ZScore()], seed=4)
    augment = BatchAugment(p, device="cpu")
    per_item = DicomSeriesDataset(same_shape_tree, transform=p)
    loader = DataLoader(DicomSeriesDataset(same_shape_tree), batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    count = 0
    for batch in loader:
        out = augment(batch)  # indices from batch["index"]
        assert list(out) == list(batch) and out["series_uid"] == batch["series_uid"]
        torch.testing.assert_close(out["spacing"], batch["spacing"], rtol=0, atol=0)
        for k, i in enumerate(batch["index"].tolist()):
            torch.testing.assert_close(out["image"][k], per_item[i]["image"], **PREPROCESS_TOLERANCES["rebatched"])
            count += 1
    assert count == 6


def test_structures_are_preserved(images):
    x, y = images
    p = random_pipeline()
    augment = BatchAugment(p, device="cpu", key="pixels", index_key="ids")
    idx = torch.arange(3, 6)
    want = per_sample(p, x[3:6], idx)
    out_list = augment([x[3:6], y[3:6], "note"], idx)
    assert isinstance(out_list, list) and out_list[2] == "note"
    torch.testing.assert_close(out_list[0], want, **PREPROCESS_TOLERANCES["rebatched"])
    out_dict = augment({"ids": idx, "pixels": x[3:6]})
    assert list(out_dict) == ["ids", "pixels"]
    torch.testing.assert_close(out_dict["pixels"], want, **PREPROCESS_TOLERANCES["rebatched"])
    out_np_idx = augment(x[3:6], np.arange(3, 6))
    torch.testing.assert_close(out_np_idx, want, **PREPROCESS_TOLERANCES["rebatched"])


def test_default_device_and_repr():
    augment = BatchAugment(random_pipeline())
    assert augment.device.type == ("cuda" if cuda_usable() else "cpu")
    assert "BatchAugment(" in repr(augment) and augment.non_blocking is True
    assert BatchAugment(random_pipeline(), device=torch.device("cpu"), non_blocking=False).non_blocking is False


def test_indexed_dataset_and_collate(images):
    x, y = images
    base = TensorDataset(x, y)
    indexed = IndexedDataset(base)
    assert len(indexed) == 10 and indexed[4][1] == 4 and torch.equal(indexed[4][0][0], x[4])
    (bx, by), indices = collate_with_indices([indexed[i] for i in (8, 1, 5)])
    assert indices.tolist() == [8, 1, 5] and torch.equal(bx, x[[8, 1, 5]]) and torch.equal(by, y[[8, 1, 5]])


# ---- BatchAugment / collate errors --------------------------------------------------------------
def test_wrong_batch_type_is_a_type_error_naming_batch(images):
    x, _ = images
    augment = BatchAugment(random_pipeline(), device="cpu")
    for bad in (x.numpy(), "images", 3, (), [x.numpy(), 1]):
        with pytest.raises(TypeError, match="'batch'"):
            augment(bad, torch.arange(10))


def test_indices_errors_name_indices(images):
    x, _ = images
    augment = BatchAugment(random_pipeline(), device="cpu")
    with pytest.raises(ValueError, match="'indices' is required"):
        augment(x)
    with pytest.raises(ValueError, match="'indices' is required"):
        augment({"image": x})
    with pytest.raises(ValueError, match="'indices' has 3 entries for a batch of 10"):
        augment(x, [0, 1, 2])
    with pytest.raises(TypeError, match="'indices' must hold integers"):
        augment(x, np.linspace(0, 1, 10))


def test_other_argument_errors(images):
    x, _ = images
    with pytest.raises(TypeError, match="'pipeline'"):
        BatchAugment("flip")
    with pytest.raises(TypeError, match="'device'"):
        BatchAugment(random_pipeline(), device=3)
    with pytest.raises(ValueError, match="'batch' has no key 'image'"):
        BatchAugment(random_pipeline(), device="cpu")({"pixels": x}, torch.arange(10))
    with pytest.raises(TypeError, match="'items'"):
        collate_with_indices([x[0], x[1]])
    with pytest.raises(TypeError, match="'dataset'"):
        IndexedDataset(5)


@pytest.mark.cuda
def test_gpu_batch_augment_matches_cpu(images):
    x, y = images
    p = random_pipeline(seed=9)
    idx = torch.arange(10)
    cpu = BatchAugment(p, device="cpu")((x, y), idx)
    gpu = BatchAugment(p, device="cuda")((x.pin_memory(), y.pin_memory()), idx)
    assert gpu[0].device.type == "cuda" and gpu[1].device.type == "cuda"
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], **PREPROCESS_TOLERANCES["gpu_vs_cpu"])
    torch.testing.assert_close(gpu[1].cpu(), y, rtol=0, atol=0)


def test_segmentation_masks_follow_the_geometry(images):
    """mask_key: the mask goes through the same geometry (nearest) as the per-sample pipeline
    call with label=, for tuple and dict batches; the images are unchanged by it."""
    x, _ = images
    masks = (x > 30).to(torch.uint8)
    p = random_pipeline(seed=3)
    idx = torch.tensor([4, 1, 8])
    img_t, mask_t = BatchAugment(p, device="cpu", mask_key=1)((x[idx], masks[idx]), idx)
    for k, i in enumerate(idx.tolist()):
        ref_img, ref_mask = p(x[i:i + 1], indices=[i], label=masks[i:i + 1])
        torch.testing.assert_close(img_t[k:k + 1], ref_img, **PREPROCESS_TOLERANCES["rebatched"])
        torch.testing.assert_close(mask_t[k:k + 1], ref_mask)
    assert mask_t.dtype == torch.uint8
    out = BatchAugment(p, device="cpu", mask_key="mask")({"image": x[idx], "mask": masks[idx], "index": idx})
    torch.testing.assert_close(out["mask"], mask_t)
    torch.testing.assert_close(out["image"], img_t)
    with pytest.raises(ValueError, match="'mask_key'"):
        BatchAugment(p, device="cpu", mask_key="mask")((x[idx], masks[idx]), idx)
    with pytest.raises(ValueError, match="mask key"):
        BatchAugment(p, device="cpu", mask_key="seg")({"image": x[idx], "index": idx})
