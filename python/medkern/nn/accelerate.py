"""``accelerate(model)``: swap the torch.nn layers of an existing model for medkern's, in place.

The swap changes each layer's class to its medkern subclass, so parameters, buffers, hooks and
optimizer references stay exactly the same objects; outputs and gradients match the original.
Layers medkern cannot take (a subclass with its own forward, an unsupported option or dtype)
stay torch's, and the returned report says which and why.

Then it fuses across layers (fusion.py: found with torch.fx, or among nn.Sequential entries where
the model does not trace): a normalization layer (BatchNorm2d/3d, InstanceNorm2d/3d, GroupNorm)
whose output only a ReLU / LeakyReLU takes becomes its NormAct variant (one pass forward and
backward) and the activation an Identity; a BatchNorm that only takes a convolution's output is
folded into that convolution in eval mode. Parameters and state_dict keys do not change. The
report lists each fusion.
"""
from __future__ import annotations

import warnings

import torch

from .activation import LeakyReLU, ReLU
from .conv import Conv2d, Conv3d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .fusion import apply_fusions
from .normalization import BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm2d, InstanceNorm3d
from .pooling import AvgPool2d, AvgPool3d, MaxPool2d, MaxPool3d

# exact torch class -> medkern class (subclasses of torch's layers keep their own forward)
_SWAPS = {
    torch.nn.Conv2d: Conv2d,
    torch.nn.Conv3d: Conv3d,
    torch.nn.ConvTranspose2d: ConvTranspose2d,
    torch.nn.ConvTranspose3d: ConvTranspose3d,
    torch.nn.Linear: Linear,
    torch.nn.MaxPool2d: MaxPool2d,
    torch.nn.AvgPool2d: AvgPool2d,
    torch.nn.MaxPool3d: MaxPool3d,
    torch.nn.AvgPool3d: AvgPool3d,
    torch.nn.BatchNorm2d: BatchNorm2d,
    torch.nn.BatchNorm3d: BatchNorm3d,
    torch.nn.InstanceNorm2d: InstanceNorm2d,
    torch.nn.InstanceNorm3d: InstanceNorm3d,
    torch.nn.GroupNorm: GroupNorm,
    torch.nn.ReLU: ReLU,
    torch.nn.LeakyReLU: LeakyReLU,
}
_SUPPORTED_DTYPES = (torch.float32, torch.float64)


def _reason_to_keep(module: torch.nn.Module) -> str | None:
    """Why medkern cannot take this layer, or None when it can."""
    for name, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
        if tensor.is_floating_point() and tensor.dtype not in _SUPPORTED_DTYPES:
            return f"{name} has dtype {tensor.dtype} (medkern's layers take float32/float64)"
    return None


def accelerate(model: torch.nn.Module, *, verbose: bool = True, strict: bool = False,
               fuse: bool = True) -> torch.nn.Module:
    """Replace supported torch.nn layers of ``model`` by medkern's, in place, and return ``model``.

    ``model.medkern_report`` afterwards holds ``{"accelerated": [names], "kept": {name: reason},
    "fused": ["layers (kinds: what runs fused; how found)"]}``.
    ``fuse=False`` swaps the layers only.
    With ``verbose`` a warning lists the layers kept as torch's; with ``strict`` that is an error.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"argument 'model' must be a torch.nn.Module, got {type(model).__name__}")
    accelerated: list[str] = []
    kept: dict[str, str] = {}
    for name, module in model.named_modules():
        target = _SWAPS.get(type(module))
        if target is None:
            if isinstance(module, tuple(_SWAPS)) and not isinstance(module, tuple(_SWAPS.values())):
                kept[name or "<model>"] = f"{type(module).__name__} subclasses a torch layer with its own forward"
            continue
        reason = _reason_to_keep(module)
        if reason:
            kept[name or "<model>"] = reason
            continue
        module.__class__ = target
        accelerated.append(name or "<model>")
    if kept and strict:
        raise ValueError("accelerate(strict=True): these layers stay torch's: "
                         + "; ".join(f"{n}: {r}" for n, r in kept.items()))
    if kept and verbose:
        warnings.warn("medkern.accelerate kept these layers as torch's: "
                      + "; ".join(f"{n}: {r}" for n, r in kept.items()), UserWarning, stacklevel=2)
    model.medkern_report = {"accelerated": accelerated, "kept": kept, "fused": apply_fusions(model) if fuse else []}
    return model
