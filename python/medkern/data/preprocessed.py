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
    manifest record too. Only items with status 'ok' are listed.

    Order: manifests are read in shard order, by number (``manifest.jsonl``, then
    ``manifest.shard0of2.jsonl``, ``shard1of2``, ..., ``shard2of10`` before ``shard10of10``);
    within a manifest, in its line order (the items' order). An item listed in more than one
    manifest (an output directory preprocessed again with another ``--shard`` count, whose runs
    write the same output file for the same item) is listed once, at its first place in that
    order, with the record of the manifest read last (the newest shard count's)."""

    def __init__(self, root: str | Path, transform: Callable | None = None, mmap: bool = True,
                 return_record: bool = False):
        from ..preprocess import _key, manifest_shard
        self.root = Path(root)
        numbered = [(manifest_shard(m), m) for m in self.root.glob("manifest*.jsonl")]
        # by shard count, then shard number, as numbers (shard 2 before shard 10)
        manifests = [m for _, m in sorted(((s[1], s[0]), m) for s, m in numbered if s is not None)]
        if not manifests:
            raise ValueError(f"argument 'root': no manifest*.jsonl in {self.root} (run `medkern preprocess` first)")
        by_key: dict = {}
        for m in manifests:
            for number, line in enumerate(m.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    key = _key(r)
                except (ValueError, KeyError, TypeError):
                    raise ValueError(f"argument 'root': {m} line {number} is not a manifest record") from None
                if r.get("status") == "ok":
                    by_key[key] = r  # a later manifest's record replaces, the first place is kept
        self.records = list(by_key.values())
        self.manifests = manifests
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
