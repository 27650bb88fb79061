"""Placeholder: conv2d family not landed yet (falls through to torch)."""
import torch.nn.functional as F

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)

def conv2d_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.relu(F.conv2d(input, weight, bias, stride, padding, dilation, groups))
