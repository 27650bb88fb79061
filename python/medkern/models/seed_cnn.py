"""The seed CNN for 28x28 MedMNIST images: two 3x3 conv+ReLU+2x2 max-pool stages and a linear
classifier. Layers come from a namespace (medkern.nn by default, torch.nn for the reference twin), so
the medkern model and its plain-torch twin share one definition and one state_dict layout."""
from __future__ import annotations

import inspect
from types import ModuleType

import torch

__all__ = ["SeedCNN", "layer_namespace", "conv_relu"]


def layer_namespace(layers: ModuleType | str | None) -> ModuleType:
    """``None``/"medkern" -> medkern.nn, "torch" -> torch.nn, or any module with the same names."""
    if layers is None or layers == "medkern":
        from .. import nn as medkern_nn
        return medkern_nn
    if layers == "torch":
        return torch.nn
    return layers


def _supports_fused_relu(conv_class) -> bool:
    try:
        return "fuse_relu" in inspect.signature(conv_class.__init__).parameters
    except (TypeError, ValueError):
        return False


def conv_relu(layers: ModuleType, in_channels: int, out_channels: int, spatial_dims: int = 2,
              **conv_args) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(conv, activation): a fused conv+ReLU with an Identity where the conv class offers
    ``fuse_relu``, else a conv then a ReLU. Either way the state_dict keys are the conv's only."""
    conv = getattr(layers, f"Conv{spatial_dims}d")
    if _supports_fused_relu(conv):
        return conv(in_channels, out_channels, fuse_relu=True, **conv_args), torch.nn.Identity()
    return conv(in_channels, out_channels, **conv_args), layers.ReLU()


class SeedCNN(torch.nn.Module):
    """Conv(in->32, 3x3)+ReLU, MaxPool 2, Conv(32->64, 3x3)+ReLU, MaxPool 2, Flatten,
    Linear(64*5*5 -> classes); 28x28 inputs give 26 -> 13 -> 11 -> 5 spatially. With
    ``spatial_dims=3`` the same network on 28x28x28 volumes (3x3x3 convs, 2x2x2 pools,
    Linear(64*5*5*5 -> classes)): the ``cnn3d`` of the CLI."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, layers: ModuleType | str | None = None,
                 spatial_dims: int = 2):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"argument 'spatial_dims' must be 2 or 3, got {spatial_dims}")
        nn = layer_namespace(layers)
        pool = getattr(nn, f"MaxPool{spatial_dims}d")
        self.conv1, self.relu1 = conv_relu(nn, in_channels, 32, spatial_dims, kernel_size=3)
        self.pool1 = pool(2)
        self.conv2, self.relu2 = conv_relu(nn, 32, 64, spatial_dims, kernel_size=3)
        self.pool2 = pool(2)
        self.fc = nn.Linear(64 * 5 ** spatial_dims, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))
