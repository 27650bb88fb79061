"""pytest-benchmark suite over cases_pooling (each case's medkern and torch side as separate
benchmarks); run as a script for the ratio table: python benchmarks/bench_pooling.py [batch]."""
from __future__ import annotations

import sys

import pytest

try:
    from benchmarks.cases_pooling import cases
    from benchmarks.common import run_cases
except ImportError:
    from cases_pooling import cases
    from common import run_cases

CASES = cases()


@pytest.mark.parametrize("side", ["medkern", "peer"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}:{c.name}" for c in CASES])
def test_pooling(benchmark, case, side):
    benchmark.group = f"{case.group} {case.name} {case.shape}"
    benchmark(getattr(case, side))


def print_table(rows) -> None:
    print(f"{'group':<26} {'case':<18} {'shape':<26} {'peer ms':>9} {'medkern ms':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['group']:<26} {r['name']:<18} {r['shape']:<26} {r['peer_ms']:9.3f} {r['medkern_ms']:11.3f} "
              f"{r['ratio']:6.2f}")


if __name__ == "__main__":
    print_table(run_cases(cases(batch=int(sys.argv[1]) if len(sys.argv) > 1 else 128)))
