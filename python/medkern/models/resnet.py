"""ResNet-18 as MedMNIST trains it on 28x28 images: a 3x3 stride-1 stem (no max-pool, so the small
image keeps its resolution), BasicBlocks [2, 2, 2, 2] at 64/128/256/512 channels, global average
pool, fc. State_dict keys follow torchvision's resnet18, whichever layer namespace builds it."""
from __future__ import annotations

from types import ModuleType

import torch

from .seed_cnn import layer_namespace

__all__ = ["BasicBlock", "ResNet28", "resnet18_28"]


class BasicBlock(torch.nn.Module):
    expansion = 1

    def __init__(self, nn: ModuleType, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = torch.nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet28(torch.nn.Module):
    def __init__(self, blocks=(2, 2, 2, 2), in_channels: int = 1, num_classes: int = 2,
                 layers: ModuleType | str | None = None):
        super().__init__()
        nn = layer_namespace(layers)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        planes_in = 64
        stages = []
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            stage = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BasicBlock(nn, planes_in, planes, stride))
                planes_in = planes
            stages.append(torch.nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            # torchvision's initialisation, so both namespaces start from the same distribution
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        # global average pool as a mean over H, W: no kernel needed, same result as AdaptiveAvgPool2d(1)
        return self.fc(x.mean(dim=(2, 3)))


def resnet18_28(in_channels: int = 1, num_classes: int = 2, layers: ModuleType | str | None = None) -> ResNet28:
    return ResNet28((2, 2, 2, 2), in_channels, num_classes, layers)
