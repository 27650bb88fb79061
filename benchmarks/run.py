"""Benchmark runner: times every case from benchmarks/cases_*.py against its peer in the same
run and prints a table of ratios (medkern time / peer time; below 1.0 means medkern is faster),
with the geometric mean per group. Optionally writes the rows as JSON.

    python benchmarks/run.py [--only conv2d,pooling] [--device cpu|cuda] [--json out.json]
                             [--allocator default|tuned]

Allocator: with glibc's defaults, buffers above the mmap threshold are mapped afresh and
page-faulted on every call, which can dominate small layers for both sides. ``--allocator
tuned`` re-runs this script with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised so freed
memory is reused; both medkern and the peer always run under the same setting.
"""
from __future__ import annotations

import argparse
import importlib
import math
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import environment, rerun_with_allocator, write_json  # noqa: E402


def discover(only: list[str] | None, device: str = "cpu") -> list[str]:
    """The case families to run: those named by --only, else every kernel family of the device
    (the GPU rows of cases_cuda.py only with --device cuda; the preprocessing workloads have
    their own driver, bench_preprocess.py, with the peers' per-call timing)."""
    names = sorted(p.stem[len("cases_"):] for p in HERE.glob("cases_*.py"))
    if only:
        return [n for n in names if n in only]
    skip = {"preprocess"} | ({"cuda"} if device != "cuda" else set())
    return [n for n in names if n not in skip]


def load_cases(family: str, device: str):
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(f"cases_{family}")
    try:
        return module.cases(device=device)
    except TypeError:
        return module.cases()


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def print_table(rows: list[dict]) -> None:
    header = f"{'group':<22} {'case':<28} {'shape':<40} {'peer':>9} {'peer ms':>9} {'medkern ms':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['group']:<22} {r['name']:<28} {r['shape'][:40]:<40} {r['peer']:>9} {r['peer_ms']:9.3f} "
              f"{r['medkern_ms']:10.3f} {r['ratio']:7.2f}")
    print()
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r["ratio"])
    for g, ratios in groups.items():
        print(f"geometric-mean ratio  {g:<24} {geomean(ratios):6.2f}   ({len(ratios)} cases)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated families (file names cases_<family>.py)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--json", help="write rows and environment as JSON here")
    parser.add_argument("--allocator", choices=["default", "tuned"], default="default")
    parser.add_argument("--threads", type=int, help="CPU threads for both medkern and torch")
    args = parser.parse_args(argv)

    status = rerun_with_allocator(args.allocator)
    if status is not None:
        return status

    import torch
    import medkern
    if args.threads:
        torch.set_num_threads(args.threads)
        medkern.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    from common import run_cases

    only = args.only.split(",") if args.only else None
    rows = []
    for family in discover(only, args.device):
        cases = load_cases(family, args.device)
        if not cases:
            continue
        print(f"# {family}: {len(cases)} cases", file=sys.stderr, flush=True)
        rows += run_cases(cases)
    env = environment(args.allocator)
    print(f"torch {env['torch']} ({env['torch_threads']} threads), medkern {env['medkern']['version']} "
          f"(simd {env['medkern']['simd_level']}, {env['medkern']['threads']} threads), allocator {args.allocator}")
    print_table(rows)
    write_json(args.json, env, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
