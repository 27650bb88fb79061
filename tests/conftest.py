"""Shared test fixtures: the data directory (../shared/data or $MEDKERN_TEST_DATA), the
cuda marker's skip, and a seeded generator per test."""
import os
import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_data_dir() -> pathlib.Path:
    env = os.environ.get("MEDKERN_TEST_DATA")
    return pathlib.Path(env) if env else ROOT.parent / "shared" / "data"


test_data_dir.__test__ = False  # a helper, not a test


@pytest.fixture
def data_dir() -> pathlib.Path:
    d = test_data_dir()
    if not (d / "pneumoniamnist.npz").exists():
        pytest.skip(f"test data not found in {d} (set MEDKERN_TEST_DATA)")
    return d


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
