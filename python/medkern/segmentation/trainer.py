"""``medkern train --task segmentation``: a U-Net trained on patches of a segmentation folder.

Per-case z-scored cases in memory; each step draws a batch of patches (foreground oversampled,
keyed by (seed, epoch, index)), moves it to the training device and augments image and label
together there in one fused Pipeline call (``BatchAugment``: rotation and scale, flips, elastic
deformation in 3-D, intensity scale/shift, noise), then a gamma step that keeps each patch's
mean and spread (nnU-Net's); Dice + cross-entropy loss, Adam with cosine decay. Validation after
each epoch predicts every validation case whole with the sliding window and reports Dice per
class. OUT: best.pt, metrics.json, curves.png, preview.png."""
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

import numpy as np
import torch

from .data import open_segmentation_data, split_by_subject
from .inference import sliding_window
from .losses import DiceCELoss
from .metrics import dice_per_class, mean_ignoring_nan
from .patches import PatchSampler, plan_patch

__all__ = ["SegmentationConfig", "train_segmentation", "augmentation_pipeline", "gamma_retain_stats"]

DEFAULT_FEATURES = (32, 64, 128, 256)


@dataclasses.dataclass
class SegmentationConfig:
    data: str
    model: str | None = None          # unet3d | unet2d; default from the data's dimensionality
    out: str = "runs/segmentation"
    epochs: int = 40
    batch_size: int = 2
    patch: tuple | None = None        # default: the median case shape rounded up to the divisor
    iterations: int | None = None     # steps per epoch; default: training cases / batch size
    features: tuple = DEFAULT_FEATURES
    lr: float = 3e-3
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    augment: str = "default"          # default | none
    max_cases: int | None = None      # read only the first N cases (smoke tests)
    csv: str = "labels.csv"
    progress: bool = True
    accelerate: bool = True           # medkern.accelerate: swap in medkern's layers and fusions


def augmentation_pipeline(spatial_dims: int, seed: int, enabled: bool = True, mirror_axes=None):
    """The fused augmentation of segmentation training (None when disabled); ``mirror_axes``: the
    spatial axes (negative) mirrored, each on its own draw (default: all of them)."""
    from .. import transforms as T
    if not enabled:
        return None
    axes = tuple(range(-spatial_dims, 0))
    # mirroring per axis, each with its own draw: every mirror image test-time augmentation
    # (predict --tta) makes is seen in training; a volume mirrors only across its sagittal plane
    # (open_segmentation_data's mirror_axes)
    chain = [T.RandomAffine(degrees=15 if spatial_dims == 3 else 30, scale=(0.85, 1.25), p=0.5)]
    chain += [T.RandomFlip(axes=(axis,), p=0.5) for axis in (axes if mirror_axes is None else mirror_axes)]
    if spatial_dims == 3:
        chain.append(T.ElasticDeform(num_control_points=5, max_displacement=2.0, p=0.2))
    chain += [T.RandomIntensity(scale=(0.75, 1.25), shift=(-0.1, 0.1), p=0.3), T.GaussianNoise((0.0, 0.1))]
    return T.Pipeline(chain, seed=seed)


def gamma_retain_stats(x: torch.Tensor, indices: torch.Tensor, seed: int, gamma=(0.7, 1.5), p: float = 0.3):
    """Per sample, with probability p: rescale to [0, 1], raise to gamma (log-uniform in the
    range), map back to the sample's own min and max (nnU-Net's gamma augmentation). Draws from
    a generator keyed by (seed, index), so they replay with the rest of the augmentation."""
    g = torch.ones(x.shape[0], dtype=torch.float32)
    for k, i in enumerate(indices.tolist()):
        u = np.random.default_rng([seed, 7, int(i)]).random(2)
        if u[0] < p:
            g[k] = float(np.exp(np.log(gamma[0]) + (np.log(gamma[1]) - np.log(gamma[0])) * u[1]))
    if bool((g == 1).all()):
        return x
    flat = x.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    shape = (-1,) + (1,) * (x.dim() - 1)
    span = (hi - lo).clamp_min(1e-8).view(shape)
    y = ((x - lo.view(shape)) / span).clamp_(0, 1).pow(g.to(x.device).view(shape)) * span + lo.view(shape)
    return y


def _dice_of_case(model, case, patch, num_classes, device) -> np.ndarray:
    logits = sliding_window(model, case.image, patch, num_classes=num_classes, device=device)
    return dice_per_class(logits.argmax(0).cpu().numpy(), case.label, num_classes), logits


def train_segmentation(config: SegmentationConfig, log: Callable[[str], None] | None = None) -> dict:
    from tqdm.auto import tqdm

    from .. import nn as medkern_nn
    from ..data.batch_augment import BatchAugment
    from ..models import build_model
    from ..train.checkpoint import save_checkpoint
    from ..train.trainer import json_safe, resolve_device
    from .plots import plot_segmentation_curves, plot_preview

    log = log or (lambda message: None)
    if config.epochs < 1:
        raise ValueError(f"argument 'epochs' must be >= 1, got {config.epochs}")
    if config.batch_size < 1:
        raise ValueError(f"argument 'batch_size' must be >= 1, got {config.batch_size}")
    if config.augment not in ("default", "none"):
        raise ValueError(f"argument 'augment' must be 'default' or 'none', got {config.augment!r}")
    device = resolve_device(config.device)
    show = config.progress and sys.stderr.isatty()
    data = open_segmentation_data(config.data, csv=config.csv, max_cases=config.max_cases, seed=config.seed,
                                  log=log, progress=show)
    model_name = config.model or f"unet{data.spatial_dims}d"
    if model_name not in ("unet2d", "unet3d"):
        raise ValueError(f"argument 'model' must be unet2d or unet3d for segmentation, got {model_name!r}")
    if int(model_name[4]) != data.spatial_dims:
        raise ValueError(f"argument 'model': {model_name} does not fit {data.spatial_dims}-D data in {data.root}")
    train_idx, val_idx = split_by_subject(data.subjects, config.val_fraction, config.seed)
    train_cases = [data.cases[i] for i in train_idx]
    val_cases = [data.cases[i] for i in val_idx]
    options = {"features": tuple(config.features), "deep_supervision": False}
    torch.manual_seed(config.seed)
    model = build_model(model_name, data.in_channels, data.num_classes, **options)
    divisor = model.size_divisor
    patch = tuple(config.patch) if config.patch else plan_patch([c.image.shape[1:] for c in train_cases], divisor)
    if len(patch) != data.spatial_dims or any(p % d for p, d in zip(patch, divisor)):
        raise ValueError(f"argument 'patch': {patch} must have {data.spatial_dims} sizes, multiples of {divisor}")
    if config.accelerate:
        model = medkern_nn.accelerate(model)
    model = model.to(device)
    iterations = config.iterations or max(1, math.ceil(len(train_cases) / config.batch_size))
    log(f"segmentation: {model_name} on {data.name} ({len(train_cases)} train / {len(val_cases)} val cases, "
        f"{data.num_classes} classes: {', '.join(data.class_names[k] for k in sorted(data.class_names))}) on "
        f"{device}; patch {'x'.join(map(str, patch))}, batch {config.batch_size}, {iterations} steps/epoch, "
        f"features {tuple(config.features)}" + (f"; {len(data.skipped)} cases skipped" if data.skipped else ""))
    sampler = PatchSampler(train_cases, patch, seed=config.seed)
    pipeline = augmentation_pipeline(data.spatial_dims, config.seed, config.augment == "default",
                                     mirror_axes=data.mirror_axes)
    augment = BatchAugment(pipeline, device=device, mask_key=1) if pipeline is not None else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * iterations)
    loss_fn = DiceCELoss(data.num_classes)
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    args = {k: v for k, v in dataclasses.asdict(config).items() if k != "progress"}
    args["patch"] = list(patch)
    meta = dict(model_name=model_name, in_channels=data.in_channels, num_classes=data.num_classes,
                task="segmentation", args=args, model_options=options,
                normalization={"kind": "zscore-per-case", "patch": list(patch), "spatial_dims": data.spatial_dims,
                               "mirror_axes": None if data.mirror_axes is None else list(data.mirror_axes),
                               "class_names": {str(k): v for k, v in data.class_names.items()}})
    foreground = [data.class_names[k] for k in sorted(data.class_names) if k > 0]
    history, epoch_seconds = [], []
    best_score, best_state, best_epoch = -math.inf, None, 0
    per_epoch = iterations * config.batch_size
    for epoch in range(1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        with tqdm(total=iterations, desc=f"epoch {epoch}/{config.epochs}", unit="step", leave=False,
                  disable=not show, file=sys.stderr) as bar:
            for step in range(iterations):
                first = (epoch - 1) * per_epoch + step * config.batch_size
                images, labels = sampler.batch(epoch, first, config.batch_size)
                indices = torch.arange(first, first + config.batch_size)
                x = torch.from_numpy(images)
                y = torch.from_numpy(labels)[:, None]
                if augment is not None:
                    x, y = augment((x, y), indices=indices)
                    x = gamma_retain_stats(x, indices, config.seed)
                else:
                    x, y = x.to(device), y.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y[:, 0].long())
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.detach()
                bar.update(1)
        train_loss = float(total) / iterations
        seconds = time.perf_counter() - start
        epoch_seconds.append(seconds)
        dice = np.full((len(val_cases), len(foreground)), math.nan)
        for k, case in enumerate(val_cases):
            dice[k] = _dice_of_case(model, case, patch, data.num_classes, device)[0]
        per_class = {name: mean_ignoring_nan(dice[:, j]) for j, name in enumerate(foreground)}
        val_dice = mean_ignoring_nan(list(per_class.values())) if val_cases else math.nan
        history.append({"epoch": epoch, "train_loss": train_loss, "val_dice": val_dice,
                        "val_dice_per_class": per_class, "seconds": seconds, "lr": optimizer.param_groups[0]["lr"]})
        log(f"epoch {epoch}/{config.epochs}  loss {train_loss:.4f}  val Dice {val_dice:.4f} "
            f"({', '.join(f'{n} {v:.3f}' for n, v in per_class.items())})  ({seconds:.1f} s)")
        score = -math.inf if math.isnan(val_dice) else val_dice
        if best_state is None or score > best_score:
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
            save_checkpoint(out / "best.pt", model, epoch=epoch, metrics={"val_dice": val_dice}, **meta)
    model.load_state_dict(best_state)
    best = history[best_epoch - 1]
    metrics = {"task": "segmentation", "dataset": data.name, "data_path": str(data.root), "model": model_name,
               "device": str(device), "num_classes": data.num_classes, "class_names": meta["normalization"]["class_names"],
               "patch": list(patch), "train_cases": len(train_cases), "val_cases": len(val_cases),
               "skipped": [str(e) for e in data.skipped],
               "val_dice": best["val_dice"], "val_dice_per_class": best["val_dice_per_class"],
               "best_epoch": best_epoch, "epoch_seconds": epoch_seconds, "train_seconds": sum(epoch_seconds),
               "args": args, "history": history}
    with open(out / "metrics.json.tmp", "w") as f:
        json.dump(json_safe(metrics), f, indent=2, allow_nan=False)
    os.replace(out / "metrics.json.tmp", out / "metrics.json")
    plot_segmentation_curves(history, out / "curves.png", title=f"{model_name} on {data.name}")
    if val_cases:
        _, logits = _dice_of_case(model, val_cases[0], patch, data.num_classes, device)
        plot_preview(val_cases[0].image[0], val_cases[0].label, logits.argmax(0).cpu().numpy(), out / "preview.png",
                     title=f"{val_cases[0].name}")
    return metrics
