"""Training pieces: MedMNIST-convention metrics against scikit-learn, npz loading and its errors,
the permutation batch loader, checkpoints readable with weights_only=True, determinism, and the
seed CNN actually learning PneumoniaMNIST (the slow test)."""
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medkern import models
from medkern.data import BatchLoader, DataError, Split, load_npz
from medkern.train import (CheckpointError, TrainConfig, auc_accuracy, load_checkpoint, save_checkpoint,
                           scores_from_logits, train)


def _write_npz(path, n=(40, 12, 12), classes=3, shape=(28, 28), multi_label=0, drop=None, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
        if multi_label:
            arrays[f"{split}_labels"] = rng.integers(0, 2, size=(count, multi_label), dtype=np.uint8)
        else:
            arrays[f"{split}_labels"] = (np.arange(count) % classes).astype(np.uint8)[:, None]
    if drop:
        del arrays[drop]
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------- metrics

def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    scores = np.stack([1 - p1, p1], axis=1)
    auc, acc = auc_accuracy(y[:, None], scores, "binary")
    assert auc == pytest.approx(roc_auc_score(y, p1))
    assert acc == pytest.approx(np.mean((p1 > 0.5) == y))


def test_multiclass_metrics_are_ovr_macro():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 300)
    scores = torch.softmax(torch.randn(300, 4) + torch.nn.functional.one_hot(torch.from_numpy(y), 4), 1).numpy()
    auc, acc = auc_accuracy(torch.from_numpy(y), torch.from_numpy(scores), "multi-class")
    expected = np.mean([roc_auc_score(y == c, scores[:, c]) for c in range(4)])
    assert auc == pytest.approx(expected)
    assert acc == pytest.approx(np.mean(scores.argmax(1) == y))


def test_multilabel_metrics_average_over_labels():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (100, 5))
    scores = rng.random((100, 5))
    auc, acc = auc_accuracy(y, scores, "multi-label")
    assert auc == pytest.approx(np.mean([roc_auc_score(y[:, j], scores[:, j]) for j in range(5)]))
    assert acc == pytest.approx(np.mean((scores > 0.5) == y))


def test_auc_is_nan_for_a_single_class():
    auc, acc = auc_accuracy(np.ones(10, dtype=np.int64), np.full((10, 2), 0.5), "binary")
    assert math.isnan(auc) and acc == 0.0


def test_scores_from_logits():
    logits = torch.randn(6, 3)
    assert torch.allclose(scores_from_logits(logits, "multi-class").sum(1), torch.ones(6))
    assert torch.equal(scores_from_logits(logits, "multi-label"), torch.sigmoid(logits))


# ---------------------------------------------------------------- data

def test_load_npz_normalises_like_medmnist(breastmnist):
    splits = load_npz(breastmnist)
    raw = np.load(breastmnist)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [546, 78, 156]
    train = splits["train"]
    assert train.images.shape == (546, 1, 28, 28) and train.images.dtype == torch.float32
    assert train.labels.shape == (546,) and train.labels.dtype == torch.int64
    expected = (torch.from_numpy(raw["train_images"]).float() / 255 - 0.5) / 0.5
    assert torch.allclose(train.images[:, 0], expected)
    assert train.images.min() >= -1 and train.images.max() <= 1


def test_load_npz_rgb_and_multilabel(tmp_path):
    path = _write_npz(tmp_path / "rgb.npz", shape=(28, 28, 3), multi_label=4)
    splits = load_npz(path)
    assert splits["val"].images.shape == (12, 3, 28, 28)
    assert splits["val"].labels.shape == (12, 4) and splits["val"].labels.dtype == torch.float32
    raw = np.load(path)
    assert torch.allclose(splits["val"].images[3, 2], torch.from_numpy(raw["val_images"][3, :, :, 2]).float() / 127.5 - 1)


def test_load_npz_missing_array_names_it(tmp_path):
    path = _write_npz(tmp_path / "broken.npz", drop="val_labels")
    with pytest.raises(DataError, match="'data'.*val_labels"):
        load_npz(path)


def test_load_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="'data'.*not found"):
        load_npz(tmp_path / "absent.npz")


def test_load_npz_not_an_npz(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match="'data'"):
        load_npz(path)


def test_load_npz_bad_image_rank(tmp_path):
    np.savez(tmp_path / "flat.npz", train_images=np.zeros((4, 784), np.uint8), train_labels=np.zeros((4, 1)))
    with pytest.raises(DataError, match="train_images"):
        load_npz(tmp_path / "flat.npz", splits=("train",))


def test_batch_loader_covers_every_sample_once_per_epoch():
    split = Split(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))
    loader = BatchLoader(split, batch_size=4, shuffle=True, seed=5)
    assert len(loader) == 3
    epochs = [torch.cat([y for _, y in loader]) for _ in range(2)]
    for seen in epochs:
        assert sorted(seen.tolist()) == list(range(10))
    assert not torch.equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    again = BatchLoader(split, batch_size=4, shuffle=True, seed=5)
    assert torch.equal(torch.cat([y for _, y in again]), epochs[0])  # same seed, same order
    for x, y in loader:  # images stay paired with their labels
        assert torch.equal(x.view(-1).long(), y)
    assert [len(y) for _, y in BatchLoader(split, batch_size=4, drop_last=True)] == [4, 4]
    assert torch.equal(torch.cat([y for _, y in BatchLoader(split, 3)]), torch.arange(10))


def test_batch_loader_with_workers_matches_samples():
    split = Split(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))
    seen = torch.cat([y for _, y in BatchLoader(split, batch_size=4, shuffle=True, seed=1, workers=1)])
    assert sorted(seen.tolist()) == list(range(10))


@pytest.mark.parametrize("kwargs,name", [(dict(batch_size=0), "batch_size"), (dict(workers=-1), "workers")])
def test_batch_loader_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BatchLoader(Split(torch.zeros(2, 1, 1, 1), torch.zeros(2)), **kwargs)


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_roundtrip_weights_only(tmp_path):
    model = models.build_model("resnet18", 3, 5)
    model.eval()
    path = save_checkpoint(tmp_path / "c.pt", model, model_name="resnet18", in_channels=3, num_classes=5,
                           task="multi-class", args={"out": tmp_path, "lr": 1e-3}, epoch=2)
    payload = torch.load(path, weights_only=True)
    assert payload["model"] == "resnet18" and payload["num_classes"] == 5 and payload["args"]["out"] == str(tmp_path)
    assert payload["normalization"]["mean"] == 0.5 and payload["normalization"]["std"] == 0.5
    loaded, meta = load_checkpoint(path)
    x = torch.randn(2, 3, 28, 28)
    assert torch.equal(loaded(x), model(x))
    assert meta["task"] == "multi-class" and "state_dict" not in meta
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="'checkpoint'.*not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not written by medkern"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="'checkpoint'"):
        load_checkpoint(tmp_path / "junk.pt")


# ---------------------------------------------------------------- training

def _config(path, out, **kw):
    return TrainConfig(data=str(path), out=str(out), progress=False, device="cpu", **kw)


def test_training_is_deterministic_given_seed(breastmnist, tmp_path):
    runs = [train(_config(breastmnist, tmp_path / f"r{i}", epochs=1, seed=7)) for i in range(2)]
    assert runs[0]["history"][0]["train_loss"] == runs[1]["history"][0]["train_loss"]
    assert runs[0]["test_auc"] == runs[1]["test_auc"]
    other = train(_config(breastmnist, tmp_path / "r2", epochs=1, seed=8))
    assert other["history"][0]["train_loss"] != runs[0]["history"][0]["train_loss"]


@pytest.mark.parametrize("kind", ["multi-class", "multi-label"])
def test_training_other_tasks_on_synthetic_data(tmp_path, kind):
    path = _write_npz(tmp_path / "synthetic.npz", classes=3, multi_label=4 if kind == "multi-label" else 0)
    metrics = train(_config(path, tmp_path / "out", epochs=2, optimizer="sgd", lr=0.01, save_last=True))
    assert metrics["task"] == kind and metrics["num_classes"] == (4 if kind == "multi-label" else 3)
    # the reported test metrics, recomputed from the saved best model with scikit-learn alone
    model, _ = load_checkpoint(tmp_path / "out" / "best.pt", "cpu")
    test = load_npz(path, splits=("test",))["test"]
    with torch.no_grad():
        logits = model.eval()(test.images).double()
    y = test.labels.numpy()
    if kind == "multi-label":
        p = torch.sigmoid(logits).numpy()
        auc = np.mean([roc_auc_score(y[:, j], p[:, j]) for j in range(y.shape[1])])
        acc = np.mean((p > 0.5) == (y > 0.5))
    else:
        p = torch.softmax(logits, dim=1).numpy()
        auc = roc_auc_score(y, p, multi_class="ovr", average="macro")
        acc = np.mean(p.argmax(axis=1) == y)
    assert metrics["test_auc"] == pytest.approx(auc, abs=1e-6)
    assert metrics["test_acc"] == pytest.approx(acc, abs=1e-9)
    assert metrics["published_resnet18_28"] is None
    assert (tmp_path / "out" / "last.pt").is_file()
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["best_epoch"] in (1, 2) and len(saved["epoch_seconds"]) == 2


def test_train_rejects_bad_config(breastmnist, tmp_path):
    with pytest.raises(ValueError, match="epochs"):
        train(_config(breastmnist, tmp_path, epochs=0))
    with pytest.raises(ValueError, match="optimizer"):
        train(_config(breastmnist, tmp_path, epochs=1, optimizer="lbfgs"))
    with pytest.raises(ValueError, match="device"):
        train(TrainConfig(data=str(breastmnist), out=str(tmp_path), progress=False, device="tpu"))


@pytest.mark.slow
def test_seed_cnn_learns_pneumoniamnist(pneumoniamnist, tmp_path):
    metrics = train(_config(pneumoniamnist, tmp_path, model="seedcnn", epochs=2, seed=0))
    assert metrics["val_auc"] >= 0.90, metrics["history"]
    assert metrics["test_auc"] >= 0.85
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "curves.png").is_file()


def test_empty_validation_split_trains_and_reports_null(tmp_path):
    """An empty val split: no AUC to choose by, so epoch 1 is kept; the metrics say null."""
    path = _write_npz(tmp_path / "no-val.npz", n=(30, 0, 9), classes=2)
    metrics = train(_config(path, tmp_path / "out", epochs=2))
    assert math.isnan(metrics["val_auc"]) and math.isnan(metrics["val_acc"]) and metrics["best_epoch"] == 1
    assert not math.isnan(metrics["test_auc"])
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["val_auc"] is None


def test_loader_workers_get_host_tensors_only(tmp_path, monkeypatch):
    """--workers N with a GPU: the split handed to DataLoader worker processes is in host memory,
    batches go to the device in the main process. A device torch can allocate on without a GPU
    ('meta') stands in for CUDA: whatever the training device, the workers' tensors are CPU tensors."""
    import medkern.train.trainer as trainer
    path = _write_npz(tmp_path / "w.npz", n=(16, 4, 4), classes=2)
    seen = {}

    class Recorder(torch.utils.data.DataLoader):
        def __init__(self, dataset, *args, **kwargs):
            seen["devices"] = {t.device.type for t in dataset.tensors}
            raise RuntimeError("recorded")
    monkeypatch.setattr(torch.utils.data, "DataLoader", Recorder)
    monkeypatch.setattr(trainer, "resolve_device", lambda requested: torch.device("meta"))
    with pytest.raises(RuntimeError, match="recorded"):
        train(_config(path, tmp_path / "out", epochs=1, workers=2))
    assert seen["devices"] == {"cpu"}


def test_undefined_auc_is_null_in_metrics_json(tmp_path):
    path = _write_npz(tmp_path / "one-class.npz", classes=1)  # every label 0: AUC undefined
    metrics = train(_config(path, tmp_path / "out", epochs=2))
    assert math.isnan(metrics["val_auc"]) and metrics["best_epoch"] == 1

    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text(), parse_constant=reject)
    assert saved["val_auc"] is None and saved["test_auc"] is None
