"""medkern.transforms: preprocessing transforms for (N, C, H, W) / (N, C, D, H, W) batches and
the fused ``Pipeline``. Each transform also runs alone (the unfused float64 reference)."""
from .base import Transform
from .filter import GaussianBlur, RandomGaussianBlur
from .geometry import (Affine, CenterCrop, CropOrPad, Flip, RandomAffine, RandomCrop, RandomFlip,
                       ResampleToSpacing, Resize, Rot90, ElasticDeform)
from .intensity import (BiasField, Clip, Gamma, GaussianNoise, MinMax, PercentileClip, RandomGamma,
                        RandomIntensity, Rescale, Window, ZScore)
from .pipeline import Pipeline

__all__ = ["Transform", "Pipeline", "Rescale", "Window", "Clip", "Gamma", "GaussianNoise", "ZScore", "MinMax",
           "PercentileClip",
           "Flip", "RandomFlip", "Rot90", "Affine", "RandomAffine", "Resize", "ResampleToSpacing",
           "CropOrPad", "CenterCrop", "RandomCrop", "ElasticDeform", "BiasField", "RandomGamma", "RandomIntensity",
           "GaussianBlur", "RandomGaussianBlur"]
