"""DecathlonDataset and ImageMaskFolder against nibabel / Pillow reading the same files: values,
shapes, label names, CSV rows and subjects, the shared hippocampus and hc18 folders, and every
way a case can be unusable (each error names its file; check() lists them all)."""
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import data_file
from medkern.data import CaseError, DecathlonDataset, ImageMaskFolder, read_png


def make_task(root, shapes, labels=None, affines=None):
    """A decathlon folder with one case per shape (random image, random 0-2 label)."""
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for k, shape in enumerate(shapes):
        name = f"case_{k:03d}.nii.gz"
        affine = affines[k] if affines else np.diag([1.0, 1.2, 1.5, 1.0])
        nib.save(nib.Nifti1Image(rng.normal(size=shape).astype(np.float32), affine), str(root / "imagesTr" / name))
        label_shape = (labels or {}).get(k, shape)
        nib.save(nib.Nifti1Image(rng.integers(0, 3, size=label_shape).astype(np.uint8), affine),
                 str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "Toy", "labels": {"0": "background", "1": "a", "2": "b"}, "modality": {"0": "MRI"},
            "training": training, "test": ["./imagesTs/x.nii.gz"]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_decathlon_cases_read_as_nibabel_does(tmp_path):
    root = make_task(tmp_path / "task", [(6, 5, 4), (7, 6, 5)])
    ds = DecathlonDataset(root)
    assert len(ds) == 2 and ds.name == "Toy" and ds.labels == {0: "background", 1: "a", 2: "b"}
    assert ds.modalities == {0: "MRI"}
    for k in range(2):
        case = ds[k]
        ref_image = nib.load(str(root / "imagesTr" / f"case_{k:03d}.nii.gz")).get_fdata()
        ref_label = nib.load(str(root / "labelsTr" / f"case_{k:03d}.nii.gz")).get_fdata()
        np.testing.assert_array_equal(case.image.pixels, ref_image.T.astype(np.float32))
        np.testing.assert_array_equal(case.label.pixels, ref_label.T)
        assert case.name == f"case_{k:03d}" and case.subject == case.name
        assert case.image.spacing == pytest.approx((1.5, 1.2, 1.0))
    assert ds[-1].name == "case_001"
    with pytest.raises(IndexError):
        ds[2]
    assert ds.check() == []


def test_decathlon_test_section_has_images_only(tmp_path):
    root = make_task(tmp_path / "task", [(4, 4, 4)])
    ds = DecathlonDataset(root, section="test")
    assert len(ds) == 1
    with pytest.raises(CaseError, match="x.nii.gz: file not found"):
        ds[0]


def test_hippocampus_task():
    root = data_file("hippocampus")
    ds = DecathlonDataset(root)
    assert len(ds) == 220 and ds.labels == {0: "background", 1: "Anterior", 2: "Posterior"}
    case = ds[5]
    ref = nib.load(str(root / "labelsTr" / f"{case.name}.nii.gz"))
    np.testing.assert_array_equal(case.label.pixels, np.asanyarray(ref.dataobj).T)
    assert case.image.shape == case.label.shape


def test_decathlon_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        DecathlonDataset(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="dataset.json: not a decathlon"):
        DecathlonDataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"training": [{"label": "x"}]}))
    with pytest.raises(ValueError, match="entry 0 .* no 'image'"):
        DecathlonDataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"training": ["./imagesTr/a.nii.gz"]}))
    with pytest.raises(ValueError, match="names no label"):
        DecathlonDataset(tmp_path)
    with pytest.raises(ValueError, match="section: expected"):
        DecathlonDataset(tmp_path, section="validation")


def test_decathlon_bad_cases_are_listed_and_named(tmp_path):
    shifted = np.diag([1.0, 1.2, 1.5, 1.0])
    root = make_task(tmp_path / "task", [(6, 5, 4)] * 5, labels={1: (6, 5, 3)})
    # case 2: label without its file; case 3: corrupt image; case 4: label with another affine
    (root / "labelsTr" / "case_002.nii.gz").unlink()
    (root / "imagesTr" / "case_003.nii.gz").write_bytes(b"\x1f\x8b broken")
    shifted[0, 3] = 5.0
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.uint8), shifted), str(root / "labelsTr" / "case_004.nii.gz"))
    ds = DecathlonDataset(root)
    assert ds[0].label is not None
    with pytest.raises(CaseError, match="case_001.nii.gz: label shape"):
        ds[1]
    with pytest.raises(CaseError, match="case_002.nii.gz: label file not found"):
        ds[2]
    with pytest.raises(CaseError, match="imagesTr/case_003.nii.gz"):
        ds[3]
    with pytest.raises(CaseError, match="case_004.nii.gz: label affine differs"):
        ds[4]
    problems = ds.check()
    assert [p.path.rsplit("/", 2)[-2:] for p in problems] == [
        ["labelsTr", "case_001.nii.gz"], ["labelsTr", "case_002.nii.gz"], ["imagesTr", "case_003.nii.gz"],
        ["labelsTr", "case_004.nii.gz"]]


def test_decathlon_rejects_non_integer_labels(tmp_path):
    root = make_task(tmp_path / "task", [(4, 4, 4)])
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), 0.5, np.float32), np.diag([1.0, 1.2, 1.5, 1.0])),
             str(root / "labelsTr" / "case_000.nii.gz"))
    with pytest.raises(CaseError, match="not class indices"):
        DecathlonDataset(root)[0]


def make_folder(root, n=4):
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = ["image,mask,subject,pixel_size_mm,target"]
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, size=(9, 13), dtype=np.uint8)).save(root / "images" / f"{k}.png")
        Image.fromarray((rng.random((9, 13)) > 0.5).astype(np.uint8) * 255).save(root / "masks" / f"{k}.png")
        lines.append(f"images/{k}.png,masks/{k}.png,s{k // 2},0.{k + 1},{10 * k}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_image_mask_folder_reads_rows_subjects_and_spacing(tmp_path):
    root = make_folder(tmp_path / "f")
    ds = ImageMaskFolder(root, spacing_column="pixel_size_mm")
    assert len(ds) == 4 and ds.subjects() == ["s0", "s0", "s1", "s1"]
    case = ds[3]
    np.testing.assert_array_equal(case.image.pixels, np.array(Image.open(root / "images/3.png")))
    np.testing.assert_array_equal(case.label.pixels, np.array(Image.open(root / "masks/3.png")) // 255)
    assert case.image.spacing == (0.4, 0.4) and case.row["target"] == "30"
    assert ImageMaskFolder(root)[0].image.spacing == (1.0, 1.0)
    paired = ImageMaskFolder(root, csv=None)
    assert len(paired) == 4 and paired[1].subject == "1"


def test_hc18_folder():
    root = data_file("hc18")
    ds = ImageMaskFolder(root, spacing_column="pixel_size_mm")
    assert len(ds) == 816
    case = ds[0]
    ref = np.array(Image.open(root / case.row["mask"]))
    np.testing.assert_array_equal(case.label.pixels, (ref > 0).astype(np.uint8))
    assert case.image.spacing[0] == pytest.approx(float(case.row["pixel_size_mm"]))
    assert len(set(ds.subjects())) < len(ds)  # second scans share their subject


def test_png_colour_palette_and_class_index_masks(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(read_png(tmp_path / "rgb.png").pixels.astype(np.float64) - luma).max() <= 1.0
    classes = rng.integers(0, 4, size=(5, 6), dtype=np.uint8)
    pal = Image.fromarray(classes, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_png(tmp_path / "pal.png", is_label=True).pixels, classes)
    Image.fromarray(classes).save(tmp_path / "idx.png")
    np.testing.assert_array_equal(read_png(tmp_path / "idx.png", is_label=True).pixels, classes)
    wide = (rng.random((5, 6)) * 4000).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "u16.png")
    np.testing.assert_array_equal(read_png(tmp_path / "u16.png").pixels, wide)


def test_image_mask_folder_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        ImageMaskFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="images: no image files"):
        ImageMaskFolder(tmp_path, csv=None)
    root = make_folder(tmp_path / "f")
    (root / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv: empty CSV"):
        ImageMaskFolder(root, csv="empty.csv")
    (root / "nomask.csv").write_text("image,mask\nimages/0.png,\n")
    with pytest.raises(ValueError, match="nomask.csv: line 2 has no 'mask'"):
        ImageMaskFolder(root, csv="nomask.csv")
    (root / "badsize.csv").write_text("image,mask,px\nimages/0.png,masks/0.png,-1\n")
    with pytest.raises(ValueError, match="badsize.csv: line 2: 'px' is not a positive number"):
        ImageMaskFolder(root, csv="badsize.csv", spacing_column="px")
    (root / "masks" / "1.png").unlink()
    (root / "images" / "2.png").write_bytes(b"\x89PNG broken")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "masks" / "3.png")
    ds = ImageMaskFolder(root)
    with pytest.raises(CaseError, match="masks/1.png: label file not found"):
        ds[1]
    with pytest.raises(CaseError, match="images/2.png: unreadable image"):
        ds[2]
    with pytest.raises(CaseError, match="masks/3.png: label shape"):
        ds[3]
    assert len(ds.check()) == 3


@pytest.mark.parametrize("perm", [(0, 1, 2), (1, 0, 2), (2, 1, 0), (1, 2, 0)])
def test_left_right_axis_follows_the_affine(tmp_path, perm):
    """The axis augmentation may mirror is the array axis along the patient's left-right, as
    nibabel's axis codes name it (NIfTI axis a is medkern's axis -(a + 1): (D, H, W) reverses it)."""
    from medkern.io import read_nifti
    from medkern.segmentation.data import left_right_axes
    affine = np.eye(4)
    affine[:3, :3] = np.eye(3)[:, perm] * np.array([1.0, -2.0, 3.0])
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(4, 5, 6).astype(np.float32), affine), str(path))
    codes = nib.aff2axcodes(affine)
    nifti_axis = next(a for a, c in enumerate(codes) if c in ("L", "R"))
    assert left_right_axes(read_nifti(path), 3) == (-(nifti_axis + 1),)
    assert left_right_axes(read_nifti(path), 2) is None


def test_hippocampus_mirrors_across_its_sagittal_plane_only():
    from medkern.segmentation import open_segmentation_data
    data = open_segmentation_data(data_file("hippocampus"), max_cases=2)
    codes = nib.aff2axcodes(nib.load(str(data_file("hippocampus") / "imagesTr" / "hippocampus_001.nii.gz")).affine)
    assert data.mirror_axes == (-(codes.index("L") if "L" in codes else codes.index("R")) - 1,)
