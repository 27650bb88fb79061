"""Datasets and loaders: MedMNIST v2 npz files (checked downloads, a cache, preloaded tensors),
DICOM series trees and `medkern preprocess` outputs as torch Datasets, segmentation cases
(decathlon NIfTI folders, 2-D image/mask folders), and batch augmentation
after collation (on the GPU when there is one)."""
from .batch_augment import BatchAugment, IndexedDataset, collate_with_indices
from .dicom_series import DicomSeriesDataset, SeriesInfo
from .medmnist import (DATASETS, MEAN, SPLITS, STD, BatchLoader, ChecksumError, DataError, DatasetInfo, Split,
                       cache_dir, dataset_info, download, load_npz, resolve_dataset)
from .preprocessed import PreprocessedDataset
from .segmentation import CaseError, DecathlonDataset, ImageMaskFolder, SegmentationCase, read_png

__all__ = ["DATASETS", "DatasetInfo", "DataError", "ChecksumError", "SPLITS", "MEAN", "STD", "Split",
           "BatchLoader", "cache_dir", "dataset_info", "download", "load_npz", "resolve_dataset",
           "PreprocessedDataset", "DicomSeriesDataset", "SeriesInfo", "BatchAugment", "IndexedDataset",
           "collate_with_indices", "CaseError", "DecathlonDataset", "ImageMaskFolder", "SegmentationCase", "read_png"]
