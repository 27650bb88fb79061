"""Drop-in modules with torch.nn's constructor arguments and state_dict keys, running on
medkern's kernels, and ``accelerate(model)`` which swaps them into an existing model."""
from .accelerate import accelerate
from .activation import ReLU
from .conv import Conv2d, Conv3d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .normalization import BatchNorm2d
from .pooling import AvgPool2d, AvgPool3d, MaxPool2d, MaxPool3d

__all__ = ["Conv2d", "Conv3d", "ConvTranspose2d", "ConvTranspose3d", "Linear", "MaxPool2d", "AvgPool2d", "MaxPool3d", "AvgPool3d", "BatchNorm2d", "ReLU",
           "accelerate"]
