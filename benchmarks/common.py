"""Shared benchmark plumbing: a case is (name, shape text, medkern callable, peer callable);
timing is warm-up then the median of several runs, both sides in the same process and run,
reported as the ratio medkern / peer (below 1.0 means medkern is faster)."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Iterable

# glibc settings that keep freed memory for reuse instead of unmapping it ("--allocator tuned")
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31),
                "MALLOC_TOP_PAD_": str(1 << 28)}


def rerun_with_allocator(allocator: str) -> int | None:
    """For ``--allocator tuned``: re-runs this script with TUNED_MALLOC set (glibc reads it at
    start-up) and returns its exit status; None when the script should go on in this process."""
    if allocator == "tuned" and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        return subprocess.call([sys.executable, *sys.argv], env=dict(os.environ, **TUNED_MALLOC))
    return None


def environment(allocator: str, **extra) -> dict:
    """Machine, versions and the settings both sides ran under, for a run's JSON and header."""
    import torch
    import medkern
    return {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "medkern": medkern.info(),
            "allocator": allocator, "malloc_env": {k: os.environ[k] for k in TUNED_MALLOC if k in os.environ},
            **extra}


def write_json(path: str | None, env: dict, rows: list[dict]) -> None:
    if path:
        pathlib.Path(path).write_text(json.dumps({"env": env, "rows": rows}, indent=1, default=str))


@dataclasses.dataclass
class BenchCase:
    group: str            # e.g. "conv2d fwd+bwd", "max_pool2d fwd"
    name: str             # e.g. "seedcnn.conv2"
    shape: str            # human-readable shapes/parameters
    medkern: Callable[[], object]
    peer: Callable[[], object]
    peer_name: str = "torch"
    device: str = "cpu"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def time_callable(fn: Callable[[], object], device: str = "cpu", warmup: int = 2, repeat: int = 7,
                  min_time: float = 0.05) -> float:
    """Median seconds per call; each sample runs enough calls to last at least ``min_time``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / once))
    samples = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def run_cases(cases: Iterable[BenchCase], **timing) -> list[dict]:
    """Times each case, alternating medkern and peer so drift hits both alike."""
    rows = []
    for case in cases:
        t_m = time_callable(case.medkern, case.device, **timing)
        t_p = time_callable(case.peer, case.device, **timing)
        t_m = min(t_m, time_callable(case.medkern, case.device, **timing))
        t_p = min(t_p, time_callable(case.peer, case.device, **timing))
        rows.append(dict(group=case.group, name=case.name, shape=case.shape, device=case.device,
                         peer=case.peer_name, peer_ms=t_p * 1e3, medkern_ms=t_m * 1e3, ratio=t_m / t_p))
    return rows
