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


def data_file(name: str) -> pathlib.Path:
    """The shared data file ``name``; the test skips when exactly that file is absent."""
    path = test_data_dir() / name
    if not path.exists():
        pytest.skip(f"test data {name} not found in {path.parent} (set MEDKERN_TEST_DATA)")
    return path


data_file.__test__ = False


@pytest.fixture
def breastmnist() -> pathlib.Path:
    return data_file("breastmnist.npz")


@pytest.fixture
def pneumoniamnist() -> pathlib.Path:
    return data_file("pneumoniamnist.npz")


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
