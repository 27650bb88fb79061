"""ResNet-18 as MedMNIST trains it on 28x28 images: a 3x3 stride-1 stem (no max-pool, so the small
image keeps its resolution), BasicBlocks [2, 2, 2, 2] at 64/128/256/512 channels, global average
pool, fc. State_dict keys follow torchvision's resnet18, whichever layer namespace builds it.
``spatial_dims=3`` gives the same network on 28x28x28 volumes (3x3x3 convs, BatchNorm3d): the
``resnet18_3d`` of the CLI. ``resnet18_224`` is torchvision's ResNet-18 for 224x224 images (7x7
stride-2 stem and a 3x3 stride-2 max-pool), the same keys."""
from __future__ import annotations

from types import ModuleType

import torch

from .seed_cnn import layer_namespace

__all__ = ["BasicBlock", "ResNet28", "resnet18_28", "resnet18_224"]


class BasicBlock(torch.nn.Module):
    expansion = 1

    def __init__(self, nn: ModuleType, in_planes: int, planes: int, stride: int = 1, spatial_dims: int = 2):
        super().__init__()
        conv, norm = getattr(nn, f"Conv{spatial_dims}d"), getattr(nn, f"BatchNorm{spatial_dims}d")
        self.conv1 = conv(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = torch.nn.Sequential(
                conv(in_planes, planes, 1, stride=stride, bias=False), norm(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet28(torch.nn.Module):
    def __init__(self, blocks=(2, 2, 2, 2), in_channels: int = 1, num_classes: int = 2,
                 layers: ModuleType | str | None = None, spatial_dims: int = 2, imagenet_stem: bool = False):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"argument 'spatial_dims' must be 2 or 3, got {spatial_dims}")
        nn = layer_namespace(layers)
        stem = dict(kernel_size=7, stride=2, padding=3) if imagenet_stem else dict(kernel_size=3, stride=1, padding=1)
        self.conv1 = getattr(nn, f"Conv{spatial_dims}d")(in_channels, 64, bias=False, **stem)
        self.bn1 = getattr(nn, f"BatchNorm{spatial_dims}d")(64)
        self.relu = nn.ReLU()
        # the 224x224 network's 3x3 stride-2 max-pool after the stem (no parameters, so no key)
        self.maxpool = getattr(nn, f"MaxPool{spatial_dims}d")(3, stride=2, padding=1) if imagenet_stem else None
        planes_in = 64
        stages = []
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            stage = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BasicBlock(nn, planes_in, planes, stride, spatial_dims))
                planes_in = planes
            stages.append(torch.nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, num_classes)
        self.spatial_axes = tuple(range(2, 2 + spatial_dims))  # a constant, so torch.fx traces the pool
        for m in self.modules():
            # torchvision's initialisation, so both namespaces start from the same distribution
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        # global average pool as a mean over the spatial dims: no kernel needed, same result as AdaptiveAvgPool2d(1)
        return self.fc(x.mean(dim=self.spatial_axes))


def resnet18_28(in_channels: int = 1, num_classes: int = 2, layers: ModuleType | str | None = None,
                spatial_dims: int = 2) -> ResNet28:
    return ResNet28((2, 2, 2, 2), in_channels, num_classes, layers, spatial_dims)


def resnet18_224(in_channels: int = 3, num_classes: int = 1000, layers: ModuleType | str | None = None,
                 spatial_dims: int = 2) -> ResNet28:
    """torchvision's resnet18 layout (7x7 stride-2 stem, max-pool) for 224x224 inputs."""
    return ResNet28((2, 2, 2, 2), in_channels, num_classes, layers, spatial_dims, imagenet_stem=True)
