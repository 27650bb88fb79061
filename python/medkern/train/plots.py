"""Training curves as a PNG (matplotlib's Agg backend: no display needed): training loss on the
left, validation AUC and accuracy on the right, one point per epoch."""
from __future__ import annotations

import os

__all__ = ["plot_curves", "save_epoch_figure"]


def plot_curves(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # a Figure not tied to pyplot's global state

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5), dpi=100)
    loss_ax, metric_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    metric_ax.plot(epochs, [h["val_auc"] for h in history], marker="o", label="val AUC")
    metric_ax.plot(epochs, [h["val_acc"] for h in history], marker="s", label="val accuracy")
    metric_ax.set(xlabel="epoch", title="validation", ylim=(0.0, 1.02))
    metric_ax.legend(loc="lower right")
    save_epoch_figure(fig, (loss_ax, metric_ax), path, title)


def save_epoch_figure(fig, axes, path: str | os.PathLike, title: str = "") -> None:
    """Grid, integer epoch ticks, the title, then the PNG: the finish every per-epoch figure shares."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
