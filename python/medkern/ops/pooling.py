"""Placeholder: pooling family not landed yet (falls through to torch)."""
import torch.nn.functional as F

max_pool2d = F.max_pool2d
avg_pool2d = F.avg_pool2d
