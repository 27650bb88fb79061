"""Checkpoints holding only tensors and plain Python values (model name, class count, arguments,
normalisation), so ``torch.load(path, weights_only=True)`` reads them without unpickling code.
Writes go to a temporary file then an atomic rename: an interrupted save never corrupts best.pt."""
from __future__ import annotations

import os
import pathlib

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing or not one medkern wrote."""


def _plain(value):
    # weights_only loading accepts only builtins and tensors: turn paths and the like into str
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, model_name: str, in_channels: int,
                    num_classes: int, task: str, args: dict | None = None, epoch: int | None = None,
                    metrics: dict | None = None, normalization: dict | None = None,
                    model_options: dict | None = None) -> pathlib.Path:
    from ..data import MEAN, STD

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "medkern-checkpoint", "format_version": FORMAT_VERSION,
        "model": model_name, "in_channels": int(in_channels), "num_classes": int(num_classes), "task": task,
        "normalization": _plain(normalization or {"mean": MEAN, "std": STD, "scale": 1.0 / 255.0}),
        "model_options": _plain(model_options or {}), "args": _plain(args or {}), "epoch": epoch, "metrics": _plain(metrics or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    layers=None) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on ``device``, metadata without the state_dict)."""
    from ..models import build_model

    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"argument 'checkpoint': file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or corrupt files
        raise CheckpointError(f"argument 'checkpoint': {path} is not a readable checkpoint ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != "medkern-checkpoint":
        raise CheckpointError(f"argument 'checkpoint': {path} was not written by medkern train")
    options = payload.get("model_options") or {}
    model = build_model(payload["model"], payload["in_channels"], payload["num_classes"], layers=layers, **options)
    model.load_state_dict(payload["state_dict"])
    if layers is None or layers == "medkern":  # medkern's fusions (state_dict keys do not change)
        from ..nn.accelerate import accelerate
        accelerate(model, verbose=False)
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta
