"""pytest-benchmark suite over the kernel cases of benchmarks/cases_*.py: each case's medkern and
peer callables as two benchmarks in one group, so pytest-benchmark's table sets them side by side.

    python -m pytest benchmarks/bench_suite.py [-k pooling] [--benchmark-columns=median]

(benchmarks/run.py prints the same cases as a ratio table.) Whole training epochs and the
preprocessing workloads are left to run.py and bench_preprocess.py: many rounds of them are slow.
"""
from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from run import load_cases  # noqa: E402

FAMILIES = ("conv2d", "pooling", "batch_norm")
CASES = [case for family in FAMILIES for case in load_cases(family, "cpu")]


@pytest.mark.parametrize("side", ["medkern", "peer"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}:{c.name}" for c in CASES])
def test_kernel(benchmark, case, side):
    benchmark.group = f"{case.group} {case.name} {case.shape}"
    benchmark(getattr(case, side))
