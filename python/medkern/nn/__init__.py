"""Drop-in modules with torch.nn's constructor arguments and state_dict keys, running on
medkern's kernels (the NormAct variants apply ReLU / LeakyReLU in the normalization's pass), and
``accelerate(model)`` which swaps them into an existing model and fuses norm + activation."""
from .accelerate import accelerate
from .activation import LeakyReLU, ReLU
from .conv import Conv2d, Conv3d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .normalization import (BatchNorm2d, BatchNorm3d, BatchNormAct2d, BatchNormAct3d, GroupNorm, GroupNormAct,
                            InstanceNorm2d, InstanceNorm3d, InstanceNormAct2d, InstanceNormAct3d, NormAct,
                            fuse_norm_act)
from .pooling import AvgPool2d, AvgPool3d, MaxPool2d, MaxPool3d

__all__ = ["Conv2d", "Conv3d", "ConvTranspose2d", "ConvTranspose3d", "Linear", "MaxPool2d", "AvgPool2d", "MaxPool3d",
           "AvgPool3d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm2d", "InstanceNorm3d", "GroupNorm", "NormAct",
           "BatchNormAct2d", "BatchNormAct3d", "InstanceNormAct2d", "InstanceNormAct3d", "GroupNormAct", "fuse_norm_act",
           "ReLU", "LeakyReLU",
           "accelerate"]
