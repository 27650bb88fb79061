"""Reference networks built from medkern.nn layers (or torch.nn for their plain-torch twins): the
seed CNN and MedMNIST's ResNet-18 for 28x28 images or 28x28x28 volumes, and nnU-Net's plain U-Net
(2-D and 3-D)."""
from __future__ import annotations

from types import ModuleType

import torch

from .resnet import BasicBlock, ResNet28, resnet18_28, resnet18_224
from .seed_cnn import SeedCNN, layer_namespace
from .unet import UNet

def _unet(spatial_dims: int):
    def build(in_channels: int, num_classes: int, layers=None, **options) -> UNet:
        return UNet(spatial_dims, in_channels, num_classes, layers=layers, **options)
    return build


def _volumetric(build):
    def build3d(in_channels: int, num_classes: int, layers=None, **options):
        return build(in_channels=in_channels, num_classes=num_classes, layers=layers, spatial_dims=3, **options)
    return build3d


MODELS = {"seedcnn": SeedCNN, "resnet18": resnet18_28, "cnn3d": _volumetric(SeedCNN),
          "resnet18_3d": _volumetric(resnet18_28), "unet2d": _unet(2), "unet3d": _unet(3)}
# classifiers taking (N, C, D, H, W) volumes
VOLUME_CLASSIFIERS = ("cnn3d", "resnet18_3d")
SEGMENTATION_MODELS = ("unet2d", "unet3d")


def build_model(name: str, in_channels: int = 1, num_classes: int = 2,
                layers: ModuleType | str | None = None, **options) -> torch.nn.Module:
    """A model by its CLI name ('seedcnn', 'resnet18', 'cnn3d', 'resnet18_3d', 'unet2d' or 'unet3d');
    ``options`` go to
    the constructor (the U-Nets' features, norm, deep_supervision, ...)."""
    if name not in MODELS:
        raise ValueError(f"argument 'model': unknown model '{name}'; choose one of {', '.join(MODELS)}")
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, layers=layers, **options)


__all__ = ["UNet", "SeedCNN", "ResNet28", "BasicBlock", "resnet18_28", "resnet18_224", "build_model", "MODELS", "SEGMENTATION_MODELS", "VOLUME_CLASSIFIERS", "layer_namespace"]
