"""conv2d benchmarks: pytest-benchmark over the cases of cases_conv2d.py (each case's medkern and
torch callables as separate benchmarks in one group), or `python benchmarks/bench_conv2d.py
[--batch N] [--only SUBSTR]` for a ratio table (medkern / torch, same process) and the
geometric mean per group."""
from __future__ import annotations

import argparse
import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cases_conv2d import cases  # noqa: E402
from common import run_cases  # noqa: E402

_CASES = cases(batch=32)  # pytest-benchmark runs many rounds: a smaller batch keeps it short


@pytest.mark.parametrize("side", ["medkern", "torch"])
@pytest.mark.parametrize("case", _CASES, ids=lambda c: f"{c.group}:{c.name}")
def test_conv2d(benchmark, case, side):
    benchmark.group = f"{case.group} {case.name}"
    benchmark(case.medkern if side == "medkern" else case.peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    rows = run_cases([c for c in cases(batch=args.batch) if args.only in c.name or args.only in c.group])
    print(f"{'group':16s} {'layer':26s} {'shape':38s} {'torch ms':>9s} {'medkern ms':>10s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['group']:16s} {r['name']:26s} {r['shape']:38s} {r['peer_ms']:9.3f} {r['medkern_ms']:10.3f} "
              f"{r['ratio']:6.2f}")
    for group in sorted({r["group"] for r in rows}):
        ratios = [r["ratio"] for r in rows if r["group"] == group]
        print(f"geometric mean {group}: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f}")


if __name__ == "__main__":
    main()
