"""Reference networks for 28x28 medical images, built from medkern.nn layers (or torch.nn for
their plain-torch twins): the seed CNN and MedMNIST's ResNet-18."""
from __future__ import annotations

from types import ModuleType

import torch

from .resnet import BasicBlock, ResNet28, resnet18_28
from .seed_cnn import SeedCNN, layer_namespace

MODELS = {"seedcnn": SeedCNN, "resnet18": resnet18_28}


def build_model(name: str, in_channels: int = 1, num_classes: int = 2,
                layers: ModuleType | str | None = None) -> torch.nn.Module:
    """A model by its CLI name ('seedcnn' or 'resnet18')."""
    if name not in MODELS:
        raise ValueError(f"argument 'model': unknown model '{name}'; choose one of {', '.join(MODELS)}")
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, layers=layers)


__all__ = ["SeedCNN", "ResNet28", "BasicBlock", "resnet18_28", "build_model", "MODELS", "layer_namespace"]
