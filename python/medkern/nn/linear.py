"""Placeholder: medkern.nn.Linear not landed yet (plain torch.nn.Linear)."""
import torch

class Linear(torch.nn.Linear):
    pass
