"""Augmentation after collation: DataLoader workers only read and collate, the whole batch goes
to the GPU in one (pinned, non-blocking) copy and one fused Pipeline call augments it there.

The Pipeline's draws are keyed by (seed, sample index); handing it the samples' dataset indices
(IndexedDataset + collate_with_indices, or the "index" entry of DicomSeriesDataset items) makes
the output independent of batch split, shuffling and worker count.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from .._backend import choose_device

__all__ = ["IndexedDataset", "collate_with_indices", "BatchAugment"]


class IndexedDataset(torch.utils.data.Dataset):
    """``IndexedDataset(dataset)[i]`` -> ``(dataset[i], i)``: the index travels with the sample
    through the DataLoader. Collate with ``collate_with_indices`` to get ``(batch, indices)``."""

    def __init__(self, dataset: Any):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"argument 'dataset' must support len() and indexing, got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index], int(index)


def collate_with_indices(items: Sequence) -> tuple:
    """DataLoader ``collate_fn`` for IndexedDataset: a list of ``(sample, index)`` ->
    ``(default_collate(samples), int64 tensor of indices)``."""
    items = list(items)
    for k, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"argument 'items': item {k} is not a (sample, index) pair "
                            f"(wrap the dataset in medkern.data.IndexedDataset)")
    samples = [sample for sample, _ in items]
    indices = torch.tensor([int(index) for _, index in items], dtype=torch.int64)
    return torch.utils.data.default_collate(samples), indices


def _resolve_device(device: Any) -> torch.device:
    if device is None:
        return torch.device(choose_device("auto"))
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        return torch.device(choose_device(device) if device in ("auto", "cpu") or device.startswith("cuda")
                            else device)
    raise TypeError(f"argument 'device' must be None, a str or a torch.device, got {type(device).__name__}")


class BatchAugment:
    """``BatchAugment(pipeline, device=None, non_blocking=True, key="image", index_key="index")``.

    ``augment(batch, indices=None, spacing=None)`` moves the images of a collated batch to
    ``device`` (default: CUDA when usable, else the CPU) and returns
    ``pipeline(images, spacing=spacing, indices=indices)`` in the batch's own structure:

    - a tensor (N, C, ...) -> the augmented tensor;
    - a tuple/list ``(images, labels, ...)`` -> the same type with the images augmented;
    - a dict -> a dict with ``batch[key]`` augmented; ``indices`` may come from
      ``batch[index_key]`` (DicomSeriesDataset items carry it).

    Other tensors (labels, spacing) are moved to ``device`` too but not changed; anything else
    passes through as is, except a segmentation: with ``mask_key`` set (a dict key, or 1 for the
    second element of a tuple batch) that tensor (N, C, *spatial, integer or bool) follows the
    images' geometry with nearest-neighbour sampling (``pipeline(..., label=mask)``). ``indices`` are the samples' dataset indices (required: they are what
    makes the output independent of batching); use ``collate_with_indices`` to get them. With
    ``non_blocking`` the copies overlap with host work when the loader pins memory
    (``DataLoader(..., pin_memory=True)``); the pipeline runs on the current CUDA stream, after
    the copy. ``pipeline`` is a ``medkern.transforms.Pipeline`` (or any callable with its
    ``(batch, spacing=, indices=)`` signature). Draws are keyed by (seed, index) alone, so every epoch
    repeats them unless the pipeline's ``seed`` changes (e.g. ``augment.pipeline.seed = seed + epoch``).
    """

    def __init__(self, pipeline: Callable, device: Any = None, non_blocking: bool = True, key: str = "image",
                 index_key: str = "index", mask_key: Any = None):
        if not callable(pipeline):
            raise TypeError(f"argument 'pipeline' must be a medkern Pipeline (callable), got {type(pipeline).__name__}")
        self.pipeline = pipeline
        self.device = _resolve_device(device)
        self.non_blocking = bool(non_blocking)
        self.key, self.index_key, self.mask_key = key, index_key, mask_key

    def __repr__(self) -> str:
        return f"BatchAugment({self.pipeline!r}, device='{self.device}', non_blocking={self.non_blocking})"

    def _move(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(self.device, non_blocking=self.non_blocking)
        return value

    def _augment(self, images: Any, indices: Any, spacing: Any, mask: Any = None) -> Any:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"argument 'batch': the images must be a torch.Tensor, got {type(images).__name__}")
        if indices is None:
            raise ValueError("argument 'indices' is required: pass the samples' dataset indices "
                             "(medkern.data.IndexedDataset + collate_with_indices)")
        if isinstance(indices, torch.Tensor):
            idx = indices.detach().cpu().numpy()
        else:
            idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"argument 'indices' must hold integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        if images.ndim == 0 or idx.shape[0] != images.shape[0]:
            raise ValueError(f"argument 'indices' has {idx.shape[0]} entries for a batch of "
                             f"{images.shape[0] if images.ndim else 0} images")
        if mask is not None:
            if not isinstance(mask, torch.Tensor):
                raise TypeError(f"argument 'batch': the mask must be a torch.Tensor, got {type(mask).__name__}")
            return self.pipeline(self._move(images), spacing=spacing, indices=idx, label=self._move(mask))
        return self.pipeline(self._move(images), spacing=spacing, indices=idx)

    def __call__(self, batch: Any, indices: Any = None, spacing: Any = None) -> Any:
        if isinstance(batch, torch.Tensor):
            return self._augment(batch, indices, spacing)
        if isinstance(batch, dict):
            if self.key not in batch:
                raise ValueError(f"argument 'batch' has no key '{self.key}' (keys: {sorted(map(str, batch))}); "
                                 f"set BatchAugment(key=...)")
            if indices is None:
                indices = batch.get(self.index_key)
            if self.mask_key is not None and self.mask_key not in batch:
                raise ValueError(f"argument 'batch' has no mask key '{self.mask_key}' (keys: {sorted(map(str, batch))})")
            out = {k: self._move(v) for k, v in batch.items() if k not in (self.key, self.mask_key)}
            if self.mask_key is None:
                out[self.key] = self._augment(batch[self.key], indices, spacing)
            else:
                out[self.key], out[self.mask_key] = self._augment(batch[self.key], indices, spacing,
                                                                  batch[self.mask_key])
            return {k: out[k] for k in batch}  # keep the caller's key order
        if isinstance(batch, (tuple, list)) and len(batch) > 0:
            if self.mask_key is not None:
                if self.mask_key != 1 or len(batch) < 2:
                    raise ValueError(f"argument 'mask_key' must be 1 (the second element) for a tuple batch of "
                                     f"{len(batch)} elements, got {self.mask_key!r}")
                images, mask = self._augment(batch[0], indices, spacing, batch[1])
                rest = [mask] + [self._move(v) for v in batch[2:]]
                return type(batch)([images, *rest]) if isinstance(batch, list) else tuple([images, *rest])
            images = self._augment(batch[0], indices, spacing)
            rest = [self._move(v) for v in batch[1:]]
            return type(batch)([images, *rest]) if isinstance(batch, list) else tuple([images, *rest])
        raise TypeError(f"argument 'batch' must be a tensor, a non-empty (images, labels, ...) tuple/list or "
                        f"a dict, got {type(batch).__name__}")
