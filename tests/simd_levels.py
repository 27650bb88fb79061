"""Runs a test under one of the CPU kernels' SIMD levels. ``_C.set_simd_level`` clamps a request
to what this CPU supports, so a level the CPU lacks is skipped with the reason instead of running
the lower level's code under the requested level's name."""
import contextlib

import pytest

from medkern._backend import _C

SIMD_LEVELS = ["scalar", "avx2", "avx512"]


@contextlib.contextmanager
def simd_level(level: str):
    before = _C.simd_level()
    try:
        used = _C.set_simd_level(level)
        if used != level:
            pytest.skip(f"this CPU lacks {level}: set_simd_level('{level}') runs {used}")
        yield
    finally:
        _C.set_simd_level(before)
