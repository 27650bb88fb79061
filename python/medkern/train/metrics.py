"""AUC and accuracy as MedMNIST reports them: binary -> AUC of the positive-class score and
accuracy at 0.5; multi-class (and ordinal) -> one-vs-rest macro AUC and argmax accuracy;
multi-label -> mean per-label AUC and mean per-label accuracy at 0.5. scikit-learn does the AUC."""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["scores_from_logits", "auc_accuracy"]


def scores_from_logits(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Probabilities: sigmoid per label for multi-label tasks, softmax over classes otherwise."""
    return torch.sigmoid(logits) if task == "multi-label" else torch.softmax(logits, dim=1)


def auc_accuracy(labels, scores, task: str) -> tuple[float, float]:
    """(auc, acc). AUC is NaN when the labels hold a single class (it is undefined there)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    p = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    if task == "multi-label":
        aucs = [roc_auc_score(y[:, j], p[:, j]) for j in range(y.shape[1]) if len(np.unique(y[:, j])) == 2]
        auc = float(np.mean(aucs)) if aucs else math.nan
        acc = float(np.mean((p > 0.5) == (y > 0.5)))
        return auc, acc
    y = y.reshape(-1)
    if len(np.unique(y)) < 2:
        auc = math.nan
    elif p.shape[1] == 2:
        auc = float(roc_auc_score(y, p[:, 1]))
    else:
        present = np.unique(y)
        if len(present) < p.shape[1]:
            # OvR over the classes present; sklearn rejects columns for absent classes
            q = p[:, present] / p[:, present].sum(axis=1, keepdims=True)
            auc = float(roc_auc_score(y, q, multi_class="ovr", average="macro", labels=present))
        else:
            auc = float(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    pred = (p[:, 1] > 0.5).astype(np.int64) if p.shape[1] == 2 else p.argmax(axis=1)
    return auc, float(np.mean(pred == y))
