"""Placeholder: medkern.nn.ReLU not landed yet (plain torch.nn.ReLU)."""
import torch

class ReLU(torch.nn.ReLU):
    pass
