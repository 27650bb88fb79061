"""3-D classification on MedMNIST-format volumes: the npz reader's volume layouts, cnn3d and
resnet18_3d against their torch.nn twins (outputs and gradients), `medkern train --model cnn3d`
on a synthetic volume task whose label is decided by where a bright blob sits (the trained model
must beat chance clearly), and the errors for a model that does not fit the data."""
import json

import numpy as np
import pytest
import torch

from medkern import models
from medkern.cli import main
from medkern.data.medmnist import DataError, images_to_tensor
from tolerances import assert_close


def test_volumes_and_images_are_told_apart():
    vol = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 28), dtype=np.uint8)
    t = images_to_tensor(vol)
    assert t.shape == (3, 1, 28, 28, 28)
    torch.testing.assert_close(t[1, 0, 4, 5, 6], torch.tensor((vol[1, 4, 5, 6] / 255.0 - 0.5) / 0.5,
                                                             dtype=torch.float32))
    rgb = np.zeros((2, 28, 28, 3), np.uint8)
    assert images_to_tensor(rgb).shape == (2, 3, 28, 28)
    assert images_to_tensor(np.zeros((2, 8, 9, 10, 2), np.uint8)).shape == (2, 2, 8, 9, 10)
    with pytest.raises(DataError, match="'images' must be"):
        images_to_tensor(np.zeros((2, 3, 4, 5, 6, 7), np.uint8))


@pytest.mark.parametrize("name", ["cnn3d", "resnet18_3d"])
def test_volume_classifiers_equal_their_torch_twins(name):
    torch.manual_seed(0)
    ours = models.build_model(name, 1, 3)
    twin = models.build_model(name, 1, 3, layers=torch.nn)
    assert list(ours.state_dict()) == list(twin.state_dict())
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(2, 1, 28, 28, 28, dtype=torch.float64)
    ours.double().eval(), twin.double().eval()
    assert_close(ours(x), twin(x), op="network")
    ours.train(), twin.train()
    ours(x).square().sum().backward()
    twin(x).square().sum().backward()
    grads = dict(twin.named_parameters())
    for key, p in ours.named_parameters():
        assert_close(p.grad, grads[key].grad, key, op="network_gradients")


def blob_task(path, n=(96, 24, 24), seed=0):
    """Label 1 when a bright 5^3 blob sits in the upper half of the volume, else 0."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        images = rng.integers(0, 60, size=(count, 28, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 2, size=(count, 1)).astype(np.uint8)
        for k in range(count):
            z = rng.integers(2, 9) if labels[k, 0] else rng.integers(16, 22)
            y, x = rng.integers(2, 22, size=2)
            images[k, z:z + 5, y:y + 5, x:x + 5] = 230
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(path, **arrays)
    return path


def test_train_cnn3d_learns_a_volume_task(tmp_path, capsys):
    data = blob_task(tmp_path / "blobs3d.npz")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "cnn3d", "--epochs", "3", "--batch-size", "16",
                 "--lr", "2e-3", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "cnn3d" and m["published_resnet18_28"] is None
    assert m["test_auc"] > 0.8, m["test_auc"]
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--data", str(data), "--split", "val"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 24


def test_models_that_do_not_fit_the_data_are_refused(tmp_path, capsys):
    data = blob_task(tmp_path / "blobs3d.npz", n=(4, 2, 2))
    assert main(["train", "--data", str(data), "--model", "seedcnn", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "a")]) == 1
    assert "28x28x28 volumes; seedcnn does not take them" in capsys.readouterr().err
    flat = tmp_path / "flat.npz"
    np.savez(flat, **{f"{s}_{k}": np.zeros((2, 28, 28) if k == "images" else (2, 1), np.uint8)
                      for s in ("train", "val", "test") for k in ("images", "labels")})
    assert main(["train", "--data", str(flat), "--model", "resnet18_3d", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "b")]) == 1
    assert "2-D images; resnet18_3d does not take them" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--model", "cnn3d", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "c")]) == 0
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert main(["predict", "--checkpoint", str(tmp_path / "c" / "best.pt"), str(image)]) == 2
    assert "predicts from --data" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'spatial_dims'"):
        models.SeedCNN(spatial_dims=4)
