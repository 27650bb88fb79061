"""A torch Dataset over the outputs of `medkern preprocess`: the manifest(s) in the output
directory list the finished items; arrays are memory-mapped so a DataLoader worker reads only
what it indexes. Augmentation belongs after collation: run a ``medkern.transforms.Pipeline`` on
the (GPU) batch with ``indices=`` the dataset indices, so results do not depend on the workers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["PreprocessedDataset"]


class PreprocessedDataset:
    """``dataset[i]`` -> (float32 tensor (C, *spatial), i); with ``return_record=True`` the
    manifest record too. Only items with status 'ok' are listed, in manifest order (shards'
    manifests concatenated in shard order)."""

    def __init__(self, root: str | Path, transform: Callable | None = None, mmap: bool = True,
                 return_record: bool = False):
        self.root = Path(root)
        manifests = sorted(self.root.glob("manifest*.jsonl"))
        if not manifests:
            raise ValueError(f"argument 'root': no manifest*.jsonl in {self.root} (run `medkern preprocess` first)")
        self.records = []
        for m in manifests:
            for line in m.read_text().splitlines():
                r = json.loads(line)
                if r.get("status") == "ok":
                    self.records.append(r)
        self.transform, self.mmap, self.return_record = transform, mmap, return_record

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        import torch
        r = self.records[index]
        path = Path(r["output"])
        if not path.is_absolute() or not path.exists():
            path = self.root / path.name  # the output directory was moved
        if path.suffix == ".npz":
            with np.load(path) as data:
                array = data["image"]
        else:
            array = np.load(path, mmap_mode="r" if self.mmap else None)
        x = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        if self.transform is not None:
            x = self.transform(x)
        return (x, index, r) if self.return_record else (x, index)
