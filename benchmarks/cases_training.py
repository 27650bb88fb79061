"""Benchmark case: one training epoch of the seed CNN on PneumoniaMNIST's train split (4,708
images, batch 128, Adam), the medkern model against the same architecture in plain torch.nn,
both starting from the same weights and shuffling with the same seed, so they do the same work."""
from __future__ import annotations

import os
import pathlib

import torch

from common import BenchCase

ROOT = pathlib.Path(__file__).resolve().parents[1]
BATCH_SIZE = 128


def _pneumoniamnist_path() -> pathlib.Path:
    # the test-data copy when present (no network), else medkern's cache/download
    env = os.environ.get("MEDKERN_TEST_DATA")
    local = (pathlib.Path(env) if env else ROOT.parent / "shared" / "data") / "pneumoniamnist.npz"
    if local.is_file():
        return local
    from medkern.data import resolve_dataset
    return resolve_dataset("pneumoniamnist")


def _epoch_runner(layers, state: dict, split, device: str):
    from medkern.data import BatchLoader
    from medkern.models import SeedCNN
    from medkern.train import make_loss, make_optimizer, train_one_epoch

    model = SeedCNN(1, 2, layers=layers).to(device)
    model.load_state_dict(state)
    optimizer = make_optimizer("adam", model.parameters(), 1e-3)
    loader = BatchLoader(split, BATCH_SIZE, shuffle=True, seed=0, device=device)
    loss_fn = make_loss("binary")
    return lambda: train_one_epoch(model, loader, optimizer, loss_fn)


def cases(device: str = "cpu") -> list[BenchCase]:
    from medkern.data import load_npz
    from medkern.models import SeedCNN

    split = load_npz(_pneumoniamnist_path(), splits=("train",))["train"].to(device)
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in SeedCNN(1, 2, layers=torch.nn).state_dict().items()}
    return [BenchCase(
        group="training epoch", name="seedcnn.pneumoniamnist",
        shape=f"{len(split)}x1x28x28, batch {BATCH_SIZE}, adam",
        medkern=_epoch_runner(None, state, split, device),
        peer=_epoch_runner(torch.nn, state, split, device),
        device=device,
    )]


if __name__ == "__main__":
    import sys

    from common import run_cases

    target = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    for row in run_cases(cases(target), warmup=1, repeat=3, min_time=0.0):
        print(f"{row['group']:16s} {row['name']:26s} {row['shape']:40s} torch {row['peer_ms']:9.1f} ms  "
              f"medkern {row['medkern_ms']:9.1f} ms  ratio {row['ratio']:.2f}")
