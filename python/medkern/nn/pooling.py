"""Placeholder: pooling modules not landed yet (plain torch.nn)."""
import torch

class MaxPool2d(torch.nn.MaxPool2d):
    pass

class AvgPool2d(torch.nn.AvgPool2d):
    pass
