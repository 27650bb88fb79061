"""Training and evaluation of the reference networks on MedMNIST-format npz files: the recipe
(Adam or SGD+momentum, cosine learning-rate decay per step, cross-entropy), per-epoch validation
AUC/accuracy, the best-val-AUC checkpoint, metrics.json and curves.png. Splits are preloaded as
tensors on the training device, so an epoch is the model's work plus one index_select per batch."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import pathlib
import sys
import time
from typing import Callable

import torch

from ..data import medmnist
from ..data.medmnist import BatchLoader, DataError, Split
from .checkpoint import load_checkpoint, save_checkpoint
from .metrics import auc_accuracy, scores_from_logits

__all__ = ["TrainConfig", "DatasetSpec", "train", "train_one_epoch", "predict_logits", "evaluate_split", "evaluate_checkpoint",
           "open_dataset", "make_optimizer", "make_loss"]


@dataclasses.dataclass
class TrainConfig:
    data: str | None = None          # a MedMNIST-format npz file ...
    dataset: str | None = None       # ... or a MedMNIST name, resolved/downloaded into the cache
    model: str = "seedcnn"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"          # "adam" or "sgd" (momentum 0.9)
    weight_decay: float = 0.0
    schedule: str = "cosine"         # "cosine" (per step, to 0 at the end) or "constant"
    seed: int = 0
    device: str = "auto"
    out: str = "runs/medkern"
    workers: int = 0
    progress: bool = True            # tqdm bars on stderr (only shown on a terminal)
    save_last: bool = False
    fuse: bool = True                # medkern.accelerate's fusions (conv+ReLU, norm+activation, BatchNorm folding)
    cuda_graphs: bool = False        # replay full-size training steps from a CUDA graph (cuda_graph.py)


@dataclasses.dataclass
class DatasetSpec:
    """What the file holds and how to train on it."""
    name: str                        # dataset name (the file's stem when it is not a known one)
    path: pathlib.Path
    task: str                        # binary | multi-class | multi-label | ordinal
    in_channels: int
    num_classes: int                 # outputs of the network
    published: tuple[float, float] | None   # MedMNIST v2 ResNet-18 (28) test AUC/ACC


def json_safe(value):
    """NaN/inf -> None, so metrics files and printed results stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def open_dataset(data: str | None, dataset: str | None, splits=medmnist.SPLITS,
                 progress: bool = True) -> tuple[DatasetSpec, dict[str, Split]]:
    """Loads the splits of ``data`` (a path) or ``dataset`` (a MedMNIST name) and describes them."""
    if (data is None) == (dataset is None):
        raise DataError("give exactly one of argument 'data' (an npz file) or 'dataset' (a MedMNIST name)")
    path = pathlib.Path(data) if data is not None else medmnist.resolve_dataset(dataset, progress=progress)
    stem = path.stem.lower()
    info = medmnist.DATASETS.get(dataset.lower() if dataset else stem)
    multi_label = None if info is None else info.task == "multi-label"
    loaded = medmnist.load_npz(path, splits=splits, multi_label=multi_label)
    first = next(iter(loaded.values()))
    labels_2d = first.labels.ndim == 2
    if labels_2d:
        task, classes = "multi-label", int(first.labels.shape[1])
    else:
        top = max(int(s.labels.max()) for s in loaded.values() if len(s)) if any(len(s) for s in loaded.values()) else 1
        classes = max(top + 1, 2, info.classes if info else 0)
        task = info.task if info else ("binary" if classes == 2 else "multi-class")
    spec = DatasetSpec(name=info.name if info else stem, path=path, task=task,
                       in_channels=int(first.images.shape[1]), num_classes=classes,
                       published=(info.published_auc, info.published_acc)
                       if info and info.published_auc is not None else None)
    return spec, loaded


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"argument 'optimizer' must be 'adam' or 'sgd', got '{name}'")


def make_loss(task: str) -> torch.nn.Module:
    return torch.nn.BCEWithLogitsLoss() if task == "multi-label" else torch.nn.CrossEntropyLoss()


def train_one_epoch(model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer, loss_fn: Callable,
                    scheduler=None, bar=None, graphed: Callable | None = None) -> float:
    """One pass over ``loader``; returns the mean training loss. The running loss stays a tensor
    (no per-batch host sync) and is read once at the end. ``graphed`` (a LazyGraphedStep) runs the
    batches it accepts from a CUDA graph; the rest run eagerly."""
    model.train()
    total, seen = None, 0
    for step, (x, y) in enumerate(loader):
        loss = graphed(x, y) if graphed is not None else None
        if loss is None:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        batch_loss = loss.detach() * x.shape[0]
        total = batch_loss if total is None else total + batch_loss
        seen += x.shape[0]
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return float(total / seen) if seen else math.nan


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    outs = [model(images[i:i + batch_size].to(device)) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate_split(model: torch.nn.Module, split: Split, task: str, batch_size: int = 512) -> tuple[float, float]:
    """(AUC, accuracy) of ``model`` on ``split``; both NaN for an empty split (undefined there)."""
    if len(split) == 0:
        return math.nan, math.nan
    logits = predict_logits(model, split.images, batch_size)
    return auc_accuracy(split.labels, scores_from_logits(logits.float(), task), task)


def resolve_device(requested: str) -> torch.device:
    """``auto|cpu|cuda[:N]`` -> a torch.device; errors name the 'device' argument."""
    from .. import _backend
    try:
        return torch.device(_backend.choose_device(requested))
    except (RuntimeError, ValueError) as err:
        message = str(err)
        raise type(err)(message if message.startswith("argument") else f"argument 'device': {message}") from None


def _progress_enabled(requested: bool) -> bool:
    return requested and sys.stderr.isatty()


def train(config: TrainConfig, log: Callable[[str], None] | None = None) -> dict:
    """Trains ``config.model`` and writes best.pt, metrics.json and curves.png into ``config.out``.
    Returns the metrics dict (also written to metrics.json)."""
    from tqdm.auto import tqdm

    from ..models import build_model
    from .plots import plot_curves

    log = log or (lambda message: None)
    if config.epochs < 1:
        raise ValueError(f"argument 'epochs' must be >= 1, got {config.epochs}")
    if config.lr <= 0:
        raise ValueError(f"argument 'lr' must be > 0, got {config.lr}")
    if config.schedule not in ("cosine", "constant"):
        raise ValueError(f"argument 'schedule' must be 'cosine' or 'constant', got '{config.schedule}'")
    device = resolve_device(config.device)
    spec, splits = open_dataset(config.data, config.dataset, progress=_progress_enabled(config.progress))
    # loader workers read host memory only (CUDA tensors cannot go to worker processes): with
    # workers the train split stays on the host, pinned, and each batch is copied here
    splits = {name: s if name == "train" and config.workers > 0 else s.to(device) for name, s in splits.items()}
    if len(splits["train"]) == 0:
        raise DataError(f"argument 'data': {spec.path.name} has an empty train split")

    from ..models import VOLUME_CLASSIFIERS
    volumes = splits["train"].images.dim() == 5
    if volumes != (config.model in VOLUME_CLASSIFIERS):
        kind = "28x28x28 volumes" if volumes else "2-D images"
        fits = ", ".join(VOLUME_CLASSIFIERS) if volumes else "seedcnn, resnet18"
        raise DataError(f"argument 'model': {spec.path.name} holds {kind}; {config.model} does not take them "
                        f"(use {fits})")
    torch.manual_seed(config.seed)
    model = build_model(config.model, spec.in_channels, spec.num_classes).to(device)
    fused = "accelerate's fusions off (--no-fuse)"
    if config.fuse:
        from ..nn.accelerate import accelerate
        from ..nn.fusion import fusion_summary
        fused = fusion_summary(accelerate(model, verbose=False))
    graphed = None
    if config.cuda_graphs:
        from .cuda_graph import LazyGraphedStep, make_capturable_optimizer
        if device.type != "cuda":
            raise ValueError(f"argument 'cuda_graphs': CUDA graphs need a CUDA device, training runs on {device}")
        optimizer = make_capturable_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay,
                                              device)
    else:
        optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
    loader = BatchLoader(splits["train"], config.batch_size, shuffle=True, seed=config.seed,
                         workers=config.workers, device=device)
    scheduler = None
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(loader))
    loss_fn = make_loss(spec.task)
    if config.cuda_graphs:
        graphed = LazyGraphedStep(model, optimizer, loss_fn, config.batch_size)

    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    args = {k: v for k, v in dataclasses.asdict(config).items() if k != "progress"}
    checkpoint_meta = dict(model_name=config.model, in_channels=spec.in_channels, num_classes=spec.num_classes,
                           task=spec.task, args=args)
    history, epoch_seconds = [], []
    best_auc, best_epoch, best_state = -math.inf, 0, None
    show_bar = _progress_enabled(config.progress)
    log(f"training {config.model} on {spec.name} ({len(splits['train'])} train / {len(splits['val'])} val, "
        f"{spec.num_classes} classes, {spec.task}) on {device}, medkern kernels, {fused}"
        + (", CUDA graphs" if config.cuda_graphs else ""))
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        with tqdm(total=len(loader), desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False,
                  disable=not show_bar, file=sys.stderr) as bar:
            # a disabled bar is not passed: its per-batch updates would still read the loss (a GPU sync)
            train_loss = train_one_epoch(model, loader, optimizer, loss_fn, scheduler, bar if show_bar else None,
                                         graphed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        val_auc, val_acc = evaluate_split(model, splits["val"], spec.task)
        epoch_seconds.append(seconds)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_auc": val_auc, "val_acc": val_acc,
                        "seconds": seconds, "lr": optimizer.param_groups[0]["lr"]})
        log(f"epoch {epoch}/{config.epochs}  loss {train_loss:.4f}  val AUC {val_auc:.4f}  "
            f"val acc {val_acc:.4f}  ({seconds:.1f} s)")
        score = -math.inf if math.isnan(val_auc) else val_auc
        if best_state is None or score > best_auc:
            best_auc, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
            save_checkpoint(out / "best.pt", model, epoch=epoch,
                            metrics={"val_auc": val_auc, "val_acc": val_acc}, **checkpoint_meta)
        if config.save_last:
            save_checkpoint(out / "last.pt", model, epoch=epoch,
                            metrics={"val_auc": val_auc, "val_acc": val_acc}, **checkpoint_meta)

    model.load_state_dict(best_state)
    best = history[best_epoch - 1]
    test_auc, test_acc = evaluate_split(model, splits["test"], spec.task)
    metrics = {
        "dataset": spec.name, "data_path": str(spec.path), "model": config.model, "task": spec.task,
        "num_classes": spec.num_classes, "device": str(device),
        "test_auc": test_auc, "test_acc": test_acc,
        "val_auc": best["val_auc"], "val_acc": best["val_acc"], "best_epoch": best_epoch,
        "epoch_seconds": epoch_seconds, "train_seconds": sum(epoch_seconds),
        "published_resnet18_28": (None if spec.published is None
                                  else {"auc": spec.published[0], "acc": spec.published[1]}),
        "args": args, "history": history,
    }
    with open(out / "metrics.json.tmp", "w") as f:
        json.dump(json_safe(metrics), f, indent=2, allow_nan=False)
    os.replace(out / "metrics.json.tmp", out / "metrics.json")
    plot_curves(history, out / "curves.png", title=f"{config.model} on {spec.name}")
    return metrics


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | None, dataset: str | None,
                        split: str = "test", device: str = "auto", batch_size: int = 512) -> dict:
    """{"auc", "acc", "split", "n"} of a saved model on one split."""

    if split not in medmnist.SPLITS:
        raise ValueError(f"argument 'split' must be one of {', '.join(medmnist.SPLITS)}, got '{split}'")
    dev = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, dev)
    spec, splits = open_dataset(data, dataset, splits=(split,))
    if spec.in_channels != meta["in_channels"]:
        raise DataError(f"argument 'data': images have {spec.in_channels} channels but the checkpoint's "
                        f"model expects {meta['in_channels']}")
    auc, acc = evaluate_split(model, splits[split], meta["task"], batch_size)
    return {"auc": auc, "acc": acc, "split": split, "n": len(splits[split]),
            "dataset": spec.name, "model": meta["model"]}
