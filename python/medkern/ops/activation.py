"""Placeholder: activation family not landed yet (falls through to torch)."""
import torch.nn.functional as F

relu = F.relu
