"""The `medkern` command, called in-process through main(argv) (plus one subprocess run of
`python -m medkern --help`): train writes its outputs, evaluate and predict print what they
promise, and every expected error gives exit code 2 (usage) or 1 (runtime) with a one-line
message naming the argument and no traceback."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import medkern
from medkern import __version__
from medkern.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import data_file
    data = data_file("breastmnist.npz")
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--data", str(data), "--model", "seedcnn", "--epochs", "1", "--out", str(out),
                 "--device", "cpu", "--quiet"])
    assert code == 0
    return data, out


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_checkpoint_metrics_and_curves(trained):
    _, out = trained
    payload = torch.load(out / "best.pt", weights_only=True)
    assert payload["model"] == "seedcnn" and payload["num_classes"] == 2 and payload["in_channels"] == 1
    assert payload["normalization"] == {"mean": 0.5, "std": 0.5, "scale": 1 / 255}
    assert payload["args"]["epochs"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_auc", "test_acc", "val_auc", "val_acc", "epoch_seconds", "best_epoch", "history"):
        assert key in metrics
    assert metrics["best_epoch"] == 1 and len(metrics["epoch_seconds"]) == 1
    assert metrics["published_resnet18_28"] == {"auc": 0.901, "acc": 0.863}
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_summary_on_stdout(capsys, breastmnist, tmp_path):
    code, out, err = _run(capsys, ["train", "--data", str(breastmnist), "--epochs", "1",
                                   "--out", str(tmp_path), "--batch-size", "256", "--optimizer", "sgd",
                                   "--lr", "0.01", "--schedule", "constant", "--seed", "3"])
    assert code == 0
    assert "test  AUC" in out and "published MedMNIST v2 ResNet-18 (28) test: AUC 0.901  ACC 0.863" in out
    assert "epoch 1/1" in err  # per-epoch line without --quiet (no bar: stderr is not a terminal)
    # the first line says which path runs: the seed CNN's two conv+ReLU pairs run fused
    assert "fused: 2 conv+ReLU epilogues" in err.splitlines()[0]


def test_train_no_fuse_says_so(capsys, breastmnist, tmp_path):
    code, _, err = _run(capsys, ["train", "--data", str(breastmnist), "--epochs", "1", "--out", str(tmp_path),
                                 "--batch-size", "256", "--no-fuse"])
    assert code == 0 and "fusions off (--no-fuse)" in err.splitlines()[0]


def test_evaluate_prints_json(capsys, trained):
    data, out = trained
    code, stdout, _ = _run(capsys, ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                                    "--split", "val"])
    assert code == 0
    result = json.loads(stdout)
    assert result["split"] == "val" and result["n"] == 78
    # oracle: the raw val split normalised here ((x / 255 - 0.5) / 0.5), scored with scikit-learn
    from sklearn.metrics import roc_auc_score
    from medkern.train import load_checkpoint
    raw = np.load(data)
    x = torch.from_numpy((raw["val_images"].astype(np.float32) / 255 - 0.5) / 0.5)[:, None]
    y = raw["val_labels"].reshape(-1)
    model, _ = load_checkpoint(out / "best.pt", "cpu")
    with torch.no_grad():
        p = torch.softmax(model.eval()(x).double(), dim=1)[:, 1].numpy()
    assert result["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    assert result["acc"] == pytest.approx(np.mean((p > 0.5) == y), abs=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    assert result["auc"] == pytest.approx(metrics["val_auc"])


def test_predict_npz_jsonl_and_csv(capsys, trained):
    data, out = trained
    code, stdout, _ = _run(capsys, ["predict", "--checkpoint", str(out / "best.pt"), "--data", str(data)])
    assert code == 0
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert len(rows) == 156
    for row in rows:
        assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        assert row["predicted"] == int(np.argmax(row["probabilities"]))
    code, stdout, _ = _run(capsys, ["predict", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                                    "--split", "val", "--format", "csv"])
    lines = stdout.splitlines()
    assert code == 0 and lines[0] == "image,p0,p1,predicted" and len(lines) == 79
    assert sum(float(v) for v in lines[1].split(",")[1:3]) == pytest.approx(1.0, abs=1e-5)


def test_predict_image_files(capsys, trained, tmp_path):
    from PIL import Image
    data, out = trained
    raw = np.load(data)["test_images"]
    Image.fromarray(raw[0]).save(tmp_path / "a.png")
    Image.fromarray(raw[1]).resize((56, 56)).save(tmp_path / "b.png")  # resized back to 28x28
    code, stdout, _ = _run(capsys, ["predict", "--checkpoint", str(out / "best.pt"),
                                    str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    assert code == 0
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [r["image"] for r in rows] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    for row in rows:
        assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-6)
    # a lossless 28x28 PNG gives the same probabilities as the npz sample
    _, stdout, _ = _run(capsys, ["predict", "--checkpoint", str(out / "best.pt"), "--data", str(data)])
    first = json.loads(stdout.splitlines()[0])
    assert rows[0]["probabilities"] == pytest.approx(first["probabilities"], abs=1e-5)


def test_info_text_and_json(capsys):
    code, out, _ = _run(capsys, ["info"])
    assert code == 0 and "version" in out and __version__ in out
    code, out, _ = _run(capsys, ["info", "--json"])
    facts = json.loads(out)
    assert code == 0 and facts["version"] == __version__ and "simd_level" in facts


def test_version(capsys):
    code, out, _ = _run(capsys, ["--version"])
    assert code == 0 and out.strip() == f"medkern {__version__}"


# ---------------------------------------------------------------- errors

def _assert_clean_error(err, *fragments):
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_missing_data_file(capsys, tmp_path):
    code, _, err = _run(capsys, ["train", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path)])
    assert code == 2
    _assert_clean_error(err, "--data", "not found")
    assert len(err.strip().splitlines()) == 1


def test_unknown_model(capsys, breastmnist, tmp_path):
    code, _, err = _run(capsys, ["train", "--data", str(breastmnist), "--model", "vgg"])
    assert code == 2
    _assert_clean_error(err, "--model", "vgg")


def test_bad_device(capsys, breastmnist):
    code, _, err = _run(capsys, ["train", "--data", str(breastmnist), "--device", "gpu0"])
    assert code == 2
    _assert_clean_error(err, "--device", "gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_requested_without_gpu(capsys, breastmnist, tmp_path):
    code, _, err = _run(capsys, ["train", "--data", str(breastmnist), "--device", "cuda",
                                 "--out", str(tmp_path)])
    assert code == 1
    _assert_clean_error(err, "device", "no usable GPU")


def test_npz_missing_arrays(capsys, tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.zeros((4, 1), np.uint8))
    code, _, err = _run(capsys, ["train", "--data", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 1
    _assert_clean_error(err, "'data'", "val_images")


@pytest.mark.parametrize("argv,fragment", [
    (["train"], "--data"),                                       # neither --data nor --dataset
    (["train", "--dataset", "cifar10"], "--dataset"),
    (["train", "--data", "x.npz", "--epochs", "0"], "--epochs"),
    (["train", "--data", "x.npz", "--lr", "-1"], "--lr"),
    (["train", "--data", "x.npz", "--workers", "-2"], "--workers"),
    (["evaluate", "--data", "x.npz"], "--checkpoint"),
    (["bogus"], "bogus"),
    ([], "COMMAND"),
])
def test_usage_errors(capsys, argv, fragment):
    code, _, err = _run(capsys, argv)
    assert code == 2
    _assert_clean_error(err, fragment)


def test_missing_checkpoint(capsys, breastmnist, tmp_path):
    code, _, err = _run(capsys, ["evaluate", "--checkpoint", str(tmp_path / "none.pt"),
                                 "--data", str(breastmnist)])
    assert code == 2
    _assert_clean_error(err, "--checkpoint", "not found")


def test_foreign_checkpoint(capsys, breastmnist, tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "other.pt")
    code, _, err = _run(capsys, ["evaluate", "--checkpoint", str(tmp_path / "other.pt"),
                                 "--data", str(breastmnist)])
    assert code == 1
    _assert_clean_error(err, "'checkpoint'", "not written by medkern")


def test_predict_needs_exactly_one_input(capsys, trained, tmp_path):
    data, out = trained
    code, _, err = _run(capsys, ["predict", "--checkpoint", str(out / "best.pt")])
    assert code == 2
    _assert_clean_error(err, "--data", "IMAGE")
    code, _, err = _run(capsys, ["predict", "--checkpoint", str(out / "best.pt"), str(tmp_path / "gone.png")])
    assert code == 2
    _assert_clean_error(err, "IMAGE", "not found")


def test_python_m_medkern_help():
    env = dict(os.environ)
    # the medkern this test process imported (an installed copy or python/ with an in-place build)
    package_parent = str(pathlib.Path(medkern.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "medkern", "--help"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "info"):
        assert command in result.stdout


def test_train_and_evaluate_by_dataset_name(capsys, breastmnist, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDKERN_DATA", str(breastmnist.parent))  # local copies are used as they are, no download
    monkeypatch.setenv("MEDKERN_MEDMNIST_URL", "http://127.0.0.1:9")
    code, out, _ = _run(capsys, ["train", "--dataset", "BreastMNIST", "--epochs", "1", "--out", str(tmp_path),
                                 "--quiet"])
    assert code == 0 and "seedcnn on breastmnist" in out
    code, out, _ = _run(capsys, ["evaluate", "--checkpoint", str(tmp_path / "best.pt"), "--dataset", "breastmnist"])
    assert code == 0 and json.loads(out)["n"] == 156
