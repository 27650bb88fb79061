"""Segmentation figures (matplotlib's Agg backend): training loss and validation Dice per epoch,
and a preview of one validation case (image, reference, prediction; the slice with the most
reference foreground for volumes)."""
from __future__ import annotations

import os

import numpy as np

from ..train.plots import save_epoch_figure

__all__ = ["plot_segmentation_curves", "plot_preview"]


def _figure(size):
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    return Figure(figsize=size, dpi=100)


def plot_segmentation_curves(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    fig = _figure((9, 3.5))
    loss_ax, dice_ax = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="Dice + CE loss", title="training loss")
    dice_ax.plot(epochs, [h["val_dice"] for h in history], marker="o", label="mean")
    names = list(history[0]["val_dice_per_class"]) if history else []
    for name in names:
        dice_ax.plot(epochs, [h["val_dice_per_class"][name] for h in history], linestyle="--", label=name)
    dice_ax.set(xlabel="epoch", title="validation Dice", ylim=(0.0, 1.0))
    dice_ax.legend(loc="lower right")
    save_epoch_figure(fig, (loss_ax, dice_ax), path, title)


def plot_preview(image: np.ndarray, reference: np.ndarray, prediction: np.ndarray, path: str | os.PathLike,
                 title: str = "") -> None:
    """image / reference / prediction are (H, W) or (D, H, W) arrays of one case."""
    if image.ndim == 3:
        k = int(np.argmax((reference > 0).reshape(reference.shape[0], -1).sum(1)))
        image, reference, prediction = image[k], reference[k], prediction[k]
        title = f"{title} (slice {k})"
    fig = _figure((9, 3.4))
    top = max(int(reference.max()), int(prediction.max()), 1)
    for ax, (name, data) in zip(fig.subplots(1, 3), (("image", None), ("reference", reference),
                                                     ("prediction", prediction))):
        ax.imshow(image, cmap="gray")
        if data is not None:
            ax.imshow(np.ma.masked_equal(data, 0), cmap="autumn", alpha=0.5, vmin=1, vmax=top)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
