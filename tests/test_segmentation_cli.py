"""`medkern train --task segmentation`, `predict` and `evaluate` end to end on a few real cases
(hippocampus NIfTI volumes, hc18 PNG images) with a tiny network: the outputs exist and hold
what they should (label maps on the input's grid with its affine, metrics JSON), and every bad
input is reported with the file it concerns while the rest goes on."""
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import data_file
from medkern.cli import main

TINY = ["--epochs", "2", "--features", "4,8,16", "--batch-size", "2", "--quiet"]


@pytest.fixture(scope="module")
def hippocampus_run(tmp_path_factory):
    root = data_file("hippocampus")
    out = tmp_path_factory.mktemp("seg3d")
    code = main(["train", "--task", "segmentation", "--data", str(root), "--max-cases", "6", "--patch", "16x24x16",
                 "--out", str(out), *TINY])
    assert code == 0
    return root, out


def test_training_writes_checkpoint_metrics_and_figures(hippocampus_run, capsys):
    _, out = hippocampus_run
    for name in ("best.pt", "metrics.json", "curves.png", "preview.png"):
        assert (out / name).stat().st_size > 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["val_dice_per_class"]) == {"Anterior", "Posterior"}
    assert len(m["epoch_seconds"]) == 2 and m["train_seconds"] == pytest.approx(sum(m["epoch_seconds"]))
    assert m["patch"] == [16, 24, 16] and m["train_cases"] + m["val_cases"] == 6
    assert 0.0 <= m["val_dice"] <= 1.0


def test_predict_writes_label_maps_on_the_inputs_grid(hippocampus_run, tmp_path, capsys):
    root, out = hippocampus_run
    inputs = sorted((root / "imagesTr").iterdir())[:2]
    folder = tmp_path / "in"
    folder.mkdir()
    for p in inputs:
        shutil.copy(p, folder / p.name)
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b broken")
    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--output-dir", str(pred), "--tta",
                 str(folder)]) == 0
    captured = capsys.readouterr()
    assert "broken.nii.gz" in captured.err
    for p in inputs:
        written, source = nib.load(str(pred / p.name)), nib.load(str(p))
        assert written.shape == source.shape
        np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
        assert set(np.unique(np.asanyarray(written.dataobj))) <= {0, 1, 2}
    assert main(["evaluate", "--pred", str(pred), "--ref", str(root)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["case"] for c in report["cases"]] == [p.name[:-7] for p in inputs]
    assert set(report["per_class"]) == {"Anterior", "Posterior"} and len(report["missing"]) == 218


def test_evaluate_a_checkpoint_on_a_folder(hippocampus_run, tmp_path, capsys):
    root, out = hippocampus_run
    task = tmp_path / "task"
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"] = meta["training"][:2]
    for entry in meta["training"]:
        shutil.copy(root / entry["image"], task / entry["image"])
        shutil.copy(root / entry["label"], task / entry["label"])
    (task / "dataset.json").write_text(json.dumps(meta))
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(task)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 2 and set(report["per_class"]) == {"Anterior", "Posterior"}


def test_two_dimensional_segmentation_on_hc18(tmp_path, capsys):
    root = data_file("hc18")
    out = tmp_path / "seg2d"
    assert main(["train", "--task", "segmentation", "--data", str(root), "--max-cases", "8", "--patch", "32x48",
                 "--out", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "unet2d" and set(m["val_dice_per_class"]) == {"foreground"}
    pred = tmp_path / "pred"
    image = root / "images" / "000.png"
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--output-dir", str(pred), str(image)]) == 0
    mask = np.array(Image.open(pred / "000.png"))
    assert mask.shape == np.array(Image.open(image)).shape and set(np.unique(mask)) <= {0, 255}


def test_bad_inputs_are_named(tmp_path, capsys, hippocampus_run):
    _, out = hippocampus_run
    assert main(["train", "--task", "segmentation", "--data", str(tmp_path), "--quiet"]) == 1
    assert "neither a dataset.json" in capsys.readouterr().err
    assert main(["train", "--task", "segmentation", "--quiet"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["train", "--task", "segmentation", "--data", str(tmp_path), "--model", "resnet18"]) == 2
    assert main(["train", "--data", str(tmp_path / "x.npz"), "--model", "unet3d"]) == 2
    assert "segmentation network" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(out / "best.pt"), str(tmp_path)]) == 2
    assert "--output-dir" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--output-dir", str(tmp_path / "o"),
                 str(tmp_path / "missing.nii.gz")]) == 1
    assert "missing.nii.gz not found" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "flat.png")
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--output-dir", str(tmp_path / "o"),
                 str(tmp_path / "flat.png")]) == 1
    assert "does not fit the model" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path)]) == 2
    assert main(["evaluate", "--pred", str(tmp_path / "none"), "--ref", str(data_file("hippocampus"))]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert main(["train", "--task", "segmentation", "--data", str(data_file("hippocampus")), "--patch", "15x24x16",
                 "--max-cases", "3", "--quiet", "--out", str(tmp_path / "p")]) == 1
    assert "multiples of" in capsys.readouterr().err
    assert main(["train", "--task", "segmentation", "--data", str(data_file("hippocampus")), "--model", "unet2d",
                 "--max-cases", "3", "--quiet", "--out", str(tmp_path / "q")]) == 1
    assert "unet2d does not fit 3-D data" in capsys.readouterr().err


def test_evaluate_the_held_out_split_reproduces_the_training_dice(hippocampus_run, capsys):
    """--split val scores the cases the training held out (its seed, fraction and --max-cases):
    the same Dice as metrics.json's best epoch; --tta adds mirrored passes; --split test has no
    meaning for segmentation data and is refused."""
    root, out = hippocampus_run
    m = json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(root), "--split", "val",
                 "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == m["val_cases"] and report["split"] == "val" and report["tta"] is False
    for name, value in m["val_dice_per_class"].items():
        got = report["per_class"][name]["dice"]
        assert (got is None and value is None) or got == pytest.approx(value, abs=1e-6)
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(root), "--split", "val",
                 "--tta", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] is True
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(root), "--split", "test"]) == 2
