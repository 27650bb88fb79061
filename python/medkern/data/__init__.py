"""Datasets and loaders: MedMNIST v2 npz files (checked downloads, a cache, preloaded tensors)."""
from .medmnist import (DATASETS, MEAN, SPLITS, STD, BatchLoader, ChecksumError, DataError, DatasetInfo, Split,
                       cache_dir, dataset_info, download, load_npz, resolve_dataset)

__all__ = ["DATASETS", "DatasetInfo", "DataError", "ChecksumError", "SPLITS", "MEAN", "STD", "Split",
           "BatchLoader", "cache_dir", "dataset_info", "download", "load_npz", "resolve_dataset"]
